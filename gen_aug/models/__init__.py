"""Model families behind one interface, in a registry: `build_model("cgan", config)`.

A model is the sampling network alone (the EMA generator of `cgan`, the decoder of `cvae`):
`generate(z, labels)` is a pure function of its inputs, so image i never depends on the batch
it is drawn in. `model.trainer(...)` builds what training adds (discriminator or encoder, optimisers).
"""

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


from gen_aug.models import cgan, cvae  # noqa: E402  (registers the families)
