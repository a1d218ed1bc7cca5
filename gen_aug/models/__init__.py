"""Model families behind one interface, in a registry: `build_model("cgan", config)`.

A model is what sampling needs (the EMA generator of `cgan`, the decoder of `cvae` with the encoder
its variants of real images start from, the EMA U-Net of `cdm` with its sampler):
`generate(z, labels)` is a pure function of its inputs, so image i never depends on the batch
it is drawn in. `model.trainer(...)` builds what training adds (discriminator, optimisers).
"""

from gen_aug.models import cdm, cgan, cvae  # noqa: F401  (importing a family registers it)
from gen_aug.models.cdm import one_step, sampler_settings, with_sampler
from gen_aug.models.registry import MODELS, build_model, model_class, register_model

# What the rest of genaug may use: no module outside models/ imports a family's own module.
__all__ = ["MODELS", "build_model", "model_class", "one_step", "register_model", "sampler_settings", "with_sampler"]
