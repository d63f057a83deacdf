"""Python values to and from the JSON the native module speaks (the Rust SDK's ``serde``
shape): times are RFC 3339 strings in UTC, durations are seconds, dataclasses are objects.
Only fields that are set are sent, so the server's defaults apply to the rest."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, Union

from .errors import InputError

T = TypeVar("T")


def to_wire(value: Any, where: str = "") -> Any:
    """``value`` as plain JSON data; a naive ``datetime`` is refused (it names no instant)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InputError(
                f"{where or 'a time'}: {value.isoformat()} is a naive datetime; give it a "
                "time zone (datetime(..., tzinfo=timezone.utc))"
            )
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_wire(getattr(value, f.name), _join(where, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, Mapping):
        return {
            str(k): to_wire(v, _join(where, str(k))) for k, v in value.items() if v is not None
        }
    if isinstance(value, (list, tuple)):
        return [to_wire(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise InputError(f"{where or 'a value'}: cannot send a {type(value).__name__}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def dumps(value: Any) -> str:
    """``value`` as JSON text for the native module."""
    try:
        return json.dumps(to_wire(value), allow_nan=False)
    except ValueError as e:  # NaN or infinity: JSON has no such number, nor has a score
        raise InputError(f"a number is not finite: {e}") from None


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (nanoseconds are cut to microseconds, Python's resolution)."""
    text = text.replace("Z", "+00:00")
    dot = text.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[: dot + 1] + text[dot + 1 : end][:6].ljust(6, "0") + text[end:]
    return datetime.fromisoformat(text)


def from_wire(tp: Any, value: Any) -> Any:
    """``value`` (plain JSON data) as type ``tp`` (a dataclass, a list or optional of one,
    ``datetime``, ``timedelta`` or a plain type)."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return from_wire(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        (item,) = typing.get_args(tp)
        return [from_wire(item, v) for v in value]
    if origin is dict or tp is Any:
        return value
    if tp is datetime:
        return parse_time(value)
    if tp is timedelta:
        return timedelta(seconds=value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp) if f.init}
        return tp(**{k: from_wire(hints[k], v) for k, v in value.items() if k in known})
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def decode(tp: type[T], value: Any) -> T:
    """``from_wire`` with the result typed."""
    return typing.cast(T, from_wire(tp, value))
