"""Reading one field of a TaskQueue spec: the type and bound checks every part of the parser
shares, and ``SpecError``, whose message names the field and says how to fix it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SpecError(ValueError):
    """A TaskQueue spec that cannot be acted on. ``field`` is the path, e.g. spec.queues."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def get_field(obj: Mapping[str, Any], key: str, path: str, kind: type, default: Any = None) -> Any:
    value = obj.get(key, default)
    if value is None:
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SpecError(f"{path}.{key}", f"must be {kind.__name__}, got {value!r}")
    return value


def get_int(obj: Mapping[str, Any], key: str, path: str, default: int, lo: int) -> int:
    value: int = get_field(obj, key, path, int, default)
    if value < lo:
        raise SpecError(f"{path}.{key}", f"must be >= {lo}, got {value}")
    return value
