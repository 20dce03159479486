"""Helpers shared by the test tiers (real redis-server processes, worker subprocesses)."""
