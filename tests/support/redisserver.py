"""The test Redis: kubeq's own ``kubeq.testing.server`` (also behind the pytest plugin)."""

from kubeq.testing.server import RedisServer, free_port

__all__ = ["RedisServer", "free_port"]
