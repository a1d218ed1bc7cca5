"""The generic value and type checks every module uses: dataclasses built from plain tables, and one error style.

This module imports nothing of gen_aug but its error type, so models, job files and options can all use it.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping

from gen_aug.errors import GenaugError

# Field metadata of an option that a command line or a caller sets, never a job file: `genaug run` fills it in.
NOT_IN_JOB = {"job_key": False}
# Longer lists are refused before their items are checked: no setting needs more, and a crafted file
# with a million entries must be refused at once, not after building a message per entry.
MAX_LIST_ITEMS = 1_000
SHOWN_CHARACTERS = 80  # of a value quoted in an error: enough to recognise it, never megabytes


def from_dict(cls: type, table: Mapping, where: str, *, job: bool = False):
    """Build dataclass `cls` from `table`, naming `where` and the key in every error.

    With `job`, the table is a job file's section: fields marked NOT_IN_JOB are unknown keys there.
    """
    fields = {
        field.name: field for field in dataclasses.fields(cls)
        if field.init and (not job or field.metadata.get("job_key", True))
    }
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
    values = {key: checked(_field_type(cls, key), value, f"{where}: {key} = {shown(value)}") for key, value in table.items()}
    try:
        return cls(**values)
    except GenaugError as error:
        raise GenaugError(f"{where}: {error}") from None


def _field_type(cls: type, name: str):
    """One field's annotation, resolved alone: others may name types imported only for type checkers."""
    annotation = next(field.type for field in dataclasses.fields(cls) if field.name == name)
    if not isinstance(annotation, str):
        return annotation
    return eval(annotation, vars(sys.modules[cls.__module__]))  # what typing.get_type_hints does, field by field


def checked(kind, value, what: str):
    """`value` if it is of type `kind` (int, float, str, bool, Literal, tuple[X, ...], X | None); ints pass as floats."""
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union else (kind,)
    for option in options:
        if option is type(None) and value is None:
            return value
        if typing.get_origin(option) is tuple and isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                raise GenaugError(f"{what}: {len(value):,} items (expected at most {MAX_LIST_ITEMS:,})")
            item_kind = typing.get_args(option)[0]
            return tuple(checked(item_kind, item, f"{what}: item {shown(item)}") for item in value)
        if typing.get_origin(option) is dict and isinstance(value, Mapping):
            if len(value) > MAX_LIST_ITEMS:
                raise GenaugError(f"{what}: {len(value):,} keys (expected at most {MAX_LIST_ITEMS:,})")
            key_kind, item_kind = typing.get_args(option)
            return {checked(key_kind, key, f"{what}: key {shown(key)}"): checked(item_kind, item, f"{what}: {key}")
                    for key, item in value.items()}
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
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        return "a list of " + {int: "whole numbers", float: "numbers", str: "strings"}.get(item, str(item))
    if typing.get_origin(kind) is dict:
        return "a table of " + _type_name(typing.get_args(kind)[1])
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(kind, str(kind))


def require(condition: bool, key: str, value, expected: str) -> None:
    """Raise the house-style error `key = value (expected ...)` unless `condition` holds."""
    if not condition:
        raise GenaugError(f"{key} = {shown(value)} (expected {expected})")


def shown(value) -> str:
    """`repr(value)`, cut to SHOWN_CHARACTERS; a long list is cut before it is written out."""
    if isinstance(value, (list, tuple)) and len(value) > SHOWN_CHARACTERS:
        return repr(value[:SHOWN_CHARACTERS])[: SHOWN_CHARACTERS - 4] + " ...]"
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 4] + " ..."
