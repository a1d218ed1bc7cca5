"""The model registry: a dict of families and the decorator that fills it, with a helpful error for unknown names."""


from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from gen_aug.checks import from_dict
from gen_aug.errors import GenaugError

MODELS: dict[str, type] = {}


def register_model(name: str):
    """Class decorator: adds a model family to MODELS under `name` and sets its `family`."""

    def register(cls: type) -> type:
        cls.family = name
        MODELS[name] = cls
        return cls

    return register


def model_class(family: str) -> type:
    if family not in MODELS:
        raise GenaugError(f"unknown model {family!r}; choose from {', '.join(sorted(MODELS))}")
    return MODELS[family]


def build_model(family: str, config: Mapping) -> nn.Module:
    """An untrained model of `family` from a plain dict of its config keys (checked, with defaults)."""
    cls = model_class(family)
    return cls(from_dict(cls.config_class, config, f"model {family}"))
