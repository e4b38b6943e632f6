"""What the config Structs declare, read for the problem lines of :func:`cryptoj.config.validate`:
each Struct's inspected fields (cached per type), its resolved annotations, and the human
description of a type with its constraints (``a number in (0, 1]``)."""

from __future__ import annotations

import functools
import typing
from typing import Any

import msgspec

_STRUCT_INFOS: dict[type[msgspec.Struct], msgspec.inspect.StructType] = {}


def struct_info(struct_type: type[msgspec.Struct]) -> msgspec.inspect.StructType:
    """The struct's fields, inspected once per type: inspecting ``Config`` also records every
    struct nested in it (inspecting each again cost most of the daemon's config load)."""
    info = _STRUCT_INFOS.get(struct_type)
    if info is None:
        found = msgspec.inspect.type_info(struct_type)
        assert isinstance(found, msgspec.inspect.StructType)
        _remember(found)
        info = found
    return info


def _remember(info: msgspec.inspect.StructType) -> None:
    if info.cls in _STRUCT_INFOS:
        return
    _STRUCT_INFOS[info.cls] = info
    for field in info.fields:
        if isinstance(field.type, msgspec.inspect.StructType):
            _remember(field.type)


@functools.cache
def _type_hints(struct_type: type[msgspec.Struct]) -> dict[str, Any]:
    """The struct's resolved annotations, once per type (not once per field)."""
    return typing.get_type_hints(struct_type, include_extras=True)


def field_type(struct_type: type[msgspec.Struct], name: str) -> Any:
    """The resolved annotation of the field ``name`` (constraints included)."""
    return _type_hints(struct_type)[name]


def show_value(value: Any) -> str:
    """A value as a problem line quotes it (``got 'two'``, ``got nothing (null)``)."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing (null)"
    return f"{value!r}"


def describe(t: msgspec.inspect.Type) -> str:
    """A human description of an inspected msgspec type, with its constraints."""
    i = msgspec.inspect
    if isinstance(t, (i.FloatType, i.IntType)):
        kind = "a number" if isinstance(t, i.FloatType) else "a whole number"
        lo = (
            "(" + str(_num(t.gt))
            if t.gt is not None
            else ("[" + str(_num(t.ge)) if t.ge is not None else None)
        )
        hi = (
            str(_num(t.lt)) + ")"
            if t.lt is not None
            else (str(_num(t.le)) + "]" if t.le is not None else None)
        )
        if lo and hi:
            return f"{kind} in {lo}, {hi}"
        if lo:
            return f"{kind} {'>' if lo[0] == '(' else '>='} {lo[1:]}"
        if hi:
            return f"{kind} {'<' if hi[-1] == ')' else '<='} {hi[:-1]}"
        return kind
    if isinstance(t, i.BoolType):
        return "true or false"
    if isinstance(t, i.StrType):
        return f"text matching {t.pattern}" if t.pattern else "text"
    if isinstance(t, i.LiteralType):
        return "one of " + ", ".join(repr(v) for v in t.values)
    if isinstance(t, i.UnionType):
        return " or ".join(describe(x) for x in t.types)
    if isinstance(t, i.NoneType):
        return "null"
    if isinstance(t, (i.VarTupleType, i.ListType)):
        return f"a list of {describe(t.item_type)}"
    if isinstance(t, i.EnumType):
        return "one of " + ", ".join(repr(m.value) for m in t.cls)
    return "a valid value"


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x
