"""Class-conditional diffusion (EDM, Karras et al. 2022): diffusers' UNet2DModel, EDM preconditioning, CFG, Heun.

The network is diffusers' UNet2DModel with a class embedding; one extra class, `num_classes`, is
"no class", which training uses for `label_dropout` of the images, so one network serves the
conditional and the unconditional denoiser (classifier-free guidance, Ho & Salimans 2021).
Sampling is deterministic: EDM's Heun solver with no churn, from initial noise that is the latent,
C x P x P values per image (P the padded side) drawn from (seed, index) like every family's; so image
i is the same for any worker count, batching or resume. One call costs `evaluations_per_image`
network evaluations per image.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from gen_aug.checks import require
from gen_aug.errors import GenaugError
from gen_aug.models.layers import ModelConfig, SamplingModel, center_crop, center_pad, padded_resolution
from gen_aug.models.registry import register_model
from gen_aug.models.trainer import Trainer


MAX_DEPTH = 16  # ResNet blocks per level; EDM's largest U-Nets use 4, so more is a crafted file, not a model


@dataclass(frozen=True)
class CDMConfig(ModelConfig):
    # The latent is the initial noise, so z_dim is unused here: the latent is channels x side x side values.
    width: int = 32  # U-Net channels at the finest level; coarser levels double it, up to 4x
    depth: int = 1  # ResNet blocks per level, down and up
    levels: int | None = None  # resolution levels (the U-Net halves the side levels - 1 times); None: 3, or fewer
    # where the side is too small for them (the coarsest level is at least 4x4)
    attention: tuple[int, ...] = (1,)  # levels (0 = finest) with self-attention after their blocks
    sigma_data: float = 0.5  # EDM: standard deviation of the images in [-1, 1]
    sigma_min: float = 0.002  # smallest noise level the sampler visits (image units)
    sigma_max: float = 80.0  # initial noise level: the latent times this
    rho: float = 7.0  # EDM's step-spacing exponent: larger spends more steps at low noise
    p_mean: float = -1.2  # training noise levels: ln(sigma) ~ Normal(p_mean, p_std)
    p_std: float = 1.2
    label_dropout: float = 0.1  # share of training images shown as "no class", for guidance
    guidance: float = 1.0  # classifier-free guidance weight w: D = D_c + w (D_c - D_u); 0 is plain conditional
    steps: int = 18  # sampler steps; Heun costs 2 x steps - 1 evaluations per image (x2 with guidance)
    sampler: Literal["heun", "euler"] = "heun"  # EDM's 2nd-order Heun, or 1st-order Euler (steps evaluations)
    lr: float = 5e-4  # Adam learning rate
    ema_decay: float = 0.999  # per step, for the copy that samples

    def __post_init__(self):
        super().__post_init__()
        require(1 <= self.depth <= MAX_DEPTH, "depth", self.depth, f"1 to {MAX_DEPTH}")
        side = padded_resolution(self.resolution)
        most = int(math.log2(side)) - 1
        if self.levels is not None:
            require(1 <= self.levels <= most, "levels", self.levels, f"1 to {most} at {side} px (the coarsest "
                    "level is at least 4x4)")
        require(all(0 <= level < self.num_levels for level in self.attention), "attention", list(self.attention),
                f"levels from 0 to {self.num_levels - 1}")
        for key in ("sigma_data", "sigma_min", "rho", "p_std", "lr"):
            require(getattr(self, key) > 0, key, getattr(self, key), "a positive number")
        require(self.sigma_max > self.sigma_min, "sigma_max", self.sigma_max, f"more than sigma_min = {self.sigma_min}")
        require(0 <= self.label_dropout < 1, "label_dropout", self.label_dropout, "0 <= label_dropout < 1")
        require(math.isfinite(self.guidance) and self.guidance >= 0, "guidance", self.guidance,
                "0 (plain conditional) or a finite weight above")
        # Guidance subtracts the unconditional denoiser, which only label dropout trains.
        require(not self.guidance or self.label_dropout > 0, "guidance", self.guidance,
                "0 for a model trained with label_dropout = 0 (its 'no class' denoiser never learnt)")
        require(1 <= self.steps <= 1000, "steps", self.steps, "1 to 1000")
        require(self.sampler in ("heun", "euler"), "sampler", self.sampler, "heun or euler")
        require(0 <= self.ema_decay < 1, "ema_decay", self.ema_decay, "0 <= ema_decay < 1")

    @property
    def num_levels(self) -> int:
        return self.levels if self.levels is not None else min(3, int(math.log2(padded_resolution(self.resolution))) - 1)


def unet(config: CDMConfig) -> nn.Module:
    from diffusers import UNet2DModel

    levels = range(config.num_levels)
    widths = tuple(config.width * min(2**level, 4) for level in levels)
    down = tuple("AttnDownBlock2D" if level in config.attention else "DownBlock2D" for level in levels)
    up = tuple("AttnUpBlock2D" if level in config.attention else "UpBlock2D" for level in reversed(levels))
    return UNet2DModel(
        sample_size=padded_resolution(config.resolution), in_channels=config.channels, out_channels=config.channels,
        block_out_channels=widths, layers_per_block=config.depth, down_block_types=down, up_block_types=up,
        num_class_embeds=config.num_classes + 1, norm_num_groups=math.gcd(8, config.width),
        attention_head_dim=math.gcd(32, config.width),  # divides every level's channels
    )


@register_model("cdm")
class CDM(SamplingModel):
    """The sampling network of the diffusion model: the EMA of the trained U-Net, with EDM's preconditioning."""

    config_class = CDMConfig

    def __init__(self, config: CDMConfig):
        nn.Module.__init__(self)
        self.config = config
        self.side = padded_resolution(config.resolution)
        self.z_dim = config.channels * self.side**2
        self.net = unet(config)

    @property
    def evaluations_per_image(self) -> int:
        per_pass = 2 * self.config.steps - 1 if self.config.sampler == "heun" else self.config.steps
        return per_pass * (2 if self.config.guidance else 1)

    def denoise(self, noisy: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """EDM's D(x; sigma): noisy (N, C, P, P), sigma (N,), labels (N,) (num_classes: no class) -> clean estimate."""
        sigma_data = self.config.sigma_data
        sigma = sigma.reshape(-1, 1, 1, 1).to(noisy.dtype)
        total = sigma.square() + sigma_data**2
        c_skip, c_out, c_in = sigma_data**2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt()
        c_noise = sigma.flatten().log() / 4
        output = self.net(c_in * noisy, c_noise, class_labels=labels).sample
        return c_skip * noisy + c_out * output.to(noisy.dtype)

    def guided(self, noisy: torch.Tensor, sigma: float, labels: torch.Tensor) -> torch.Tensor:
        """The guided denoiser at one noise level; conditional and unconditional passes share one batch."""
        sigmas = torch.full((len(noisy),), sigma, device=noisy.device)
        guidance = self.config.guidance
        if not guidance:
            return self.denoise(noisy, sigmas, labels)
        unconditional = torch.full_like(labels, self.config.num_classes)
        both = self.denoise(torch.cat([noisy, noisy]), torch.cat([sigmas, sigmas]), torch.cat([labels, unconditional]))
        conditional, free = both.chunk(2)
        return conditional + guidance * (conditional - free)

    def sigmas(self) -> list[float]:
        """EDM's noise levels: steps values from sigma_max down to sigma_min, spaced by rho, then 0."""
        c = self.config
        if c.steps == 1:
            return [c.sigma_max, 0.0]
        ramp = [i / (c.steps - 1) for i in range(c.steps)]
        low, high = c.sigma_min ** (1 / c.rho), c.sigma_max ** (1 / c.rho)
        return [(high + t * (low - high)) ** c.rho for t in ramp] + [0.0]

    def generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """z float32 (N, C*P*P), the initial noise; labels int64 (N,) -> images (N, C, H, W) in [-1, 1]."""
        x = self._noise(z) * self.config.sigma_max
        return center_crop(self._sample(x, self.sigmas(), labels), self.config.resolution).clamp(-1, 1)

    def vary(self, images: torch.Tensor, z: torch.Tensor, labels: torch.Tensor, strength: float) -> torch.Tensor:
        """SDEdit on EDM: variants of real `images` (N, C, H, W) in [-1, 1], rendered under `labels`.

        Each image is noised with z to the level from which a fraction `strength` of the sampler's
        steps remains, and the same deterministic sampler runs those steps. Strength 0 returns the
        images; strength 1 starts from the noise alone and is exactly `generate(z, labels)`.
        """
        levels = self.sigmas()
        remaining = round(strength * (len(levels) - 1))  # of the sampler's steps
        if remaining == 0:
            return images.clamp(-1, 1)
        if remaining == len(levels) - 1:
            return self.generate(z, labels)
        start = len(levels) - 1 - remaining
        x = center_pad(images.to(z.dtype), self.side) + self._noise(z) * levels[start]
        return center_crop(self._sample(x, levels[start:], labels), self.config.resolution).clamp(-1, 1)

    def _noise(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(len(z), self.config.channels, self.side, self.side)

    def _sample(self, x: torch.Tensor, levels: list[float], labels: torch.Tensor) -> torch.Tensor:
        """EDM's sampler from x at levels[0] down through the rest of `levels` (the last is 0)."""
        for sigma, following in zip(levels[:-1], levels[1:]):
            slope = (x - self.guided(x, sigma, labels)) / sigma
            stepped = x + (following - sigma) * slope
            if self.config.sampler == "heun" and following > 0:  # average with the slope at the end of the step
                corrected = (stepped - self.guided(stepped, following, labels)) / following
                stepped = x + (following - sigma) * (slope + corrected) / 2
            x = stepped
        return x

    def trainer(self, num_images: int, device: torch.device, amp_dtype: torch.dtype | None = None) -> "CDMTrainer":
        return CDMTrainer(self, device, amp_dtype)


class CDMTrainer(Trainer):
    """EDM's loss: denoise images at noise levels drawn log-normally, weighted so every level counts alike."""

    def __init__(self, ema: CDM, device: torch.device, amp_dtype: torch.dtype | None):
        super().__init__(device, amp_dtype)
        config = ema.config
        self.ema = self.place(ema).requires_grad_(False)
        self.model = copy.deepcopy(self.ema).requires_grad_(True)
        self.parts = {
            "model": self.model,
            "ema": self.ema,
            "optimizer": torch.optim.Adam(self.model.parameters(), config.lr),
        }
        self.config = config

    def step(self, real, labels, generator):
        c = self.config
        images = center_pad(real, self.model.side)
        draw = torch.randn(len(images), generator=generator, device=generator.device)
        sigma = (draw * c.p_std + c.p_mean).exp()
        weight = (sigma.square() + c.sigma_data**2) / (sigma * c.sigma_data).square()
        noise = torch.randn(images.shape, generator=generator, device=generator.device) * sigma.reshape(-1, 1, 1, 1)
        dropped = torch.rand(len(labels), generator=generator, device=generator.device) < c.label_dropout
        shown = torch.where(dropped, torch.full_like(labels, c.num_classes), labels)
        with self.autocast():
            denoised = self.model.denoise(images + noise, sigma, shown).float()
        loss = (weight.reshape(-1, 1, 1, 1) * (denoised - images).square()).mean()
        optimizer = self.parts["optimizer"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        self.steps += 1
        self.update_ema(self.ema, self.model, self.config.ema_decay)
        return {"loss": loss.detach()}


def sampler_settings(model: nn.Module, steps: int | None, guidance: float | None) -> dict | None:
    """How a job samples a snapshot: for cdm its sampler, steps and guidance (the overrides given, else its own)."""
    if not isinstance(model, CDM):
        for flag, value in (("--steps", steps), ("--guidance", guidance)):
            if value is not None:
                raise GenaugError(f"{flag} {value}: the snapshot is a {model.family} model, which draws in one network "
                                  "evaluation (expected a cdm snapshot, or no such option)")
        return None
    config = model.config
    return {"sampler": config.sampler, "steps": config.steps if steps is None else steps,
            "guidance": config.guidance if guidance is None else guidance}


@contextlib.contextmanager
def one_step(model: nn.Module):
    """For the block, a diffusion model samples in one step: same batch shapes and kernels, a fraction of the cost."""
    if not isinstance(model, CDM):
        yield model
        return
    saved = model.config
    model.config = dataclasses.replace(saved, steps=1)
    try:
        yield model
    finally:
        model.config = saved


def with_sampler(model: nn.Module, sampler: dict | None) -> nn.Module:
    """The model, sampling as `sampler_settings` recorded (the config's checks apply to the values)."""
    if sampler is not None:
        model.config = dataclasses.replace(model.config, **sampler)
    return model
