"""Job files (jobs/*.toml) as frozen dataclasses, one per section; unknown or mistyped keys are errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping

from gen_aug.errors import GenaugError


def from_dict(cls: type, table: Mapping, where: str):
    """Build dataclass `cls` from `table`, naming `where` and the key in every error."""
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    for key in table:
        if key not in fields:
            raise GenaugError(f"{where}: unknown key {key!r} (expected one of {', '.join(sorted(fields))})")
    missing = [
        name
        for name, field in fields.items()
        if name not in table and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise GenaugError(f"{where}: missing key {missing[0]!r}")
    values = {key: _checked(hints[key], value, f"{where}: {key} = {value!r}") for key, value in table.items()}
    try:
        return cls(**values)
    except GenaugError as error:
        raise GenaugError(f"{where}: {error}") from None


def _checked(kind, value, what: str):
    """`value` if it is of type `kind` (int, float, str, bool, Literal, X | None); ints pass as floats."""
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union else (kind,)
    for option in options:
        if option is type(None) and value is None:
            return value
        if typing.get_origin(option) is typing.Literal and value in typing.get_args(option):
            return value
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
    raise GenaugError(f"{what} (expected {' or '.join(_type_name(option) for option in options)})")


def _type_name(kind) -> str:
    if typing.get_origin(kind) is typing.Literal:
        return " or ".join(repr(choice) for choice in typing.get_args(kind))
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(kind, str(kind))


def require(condition: bool, key: str, value, expected: str) -> None:
    """Raise the house-style error `key = value (expected ...)` unless `condition` holds."""
    if not condition:
        raise GenaugError(f"{key} = {value!r} (expected {expected})")
