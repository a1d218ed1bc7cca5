"""Class-conditional GAN: DCGAN-shaped generator, projection discriminator with spectral norm, hinge loss."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gen_aug.config import require
from gen_aug.models import register_model
from gen_aug.models.augment import diff_augment, parse_policy
from gen_aug.models.layers import DownTrunk, ModelConfig, SamplingModel
from gen_aug.models.trainer import Trainer

AUGMENT_BELOW_IMAGES = 20_000  # 'auto' augments sets smaller than this: scarce data is what DiffAugment is for
CUTOUT_FROM_PIXELS = 16  # on 8x8 digits, erasing half the side cost diversity and class likeness; DiffAugment used it at 32


@dataclass(frozen=True)
class CGANConfig(ModelConfig):
    # Two time-scale rule (Heusel et al. 2017): a faster discriminator keeps the generator from
    # collapsing onto a few images per class (on 8x8 digits, per-class spread went from a third
    # of the real images' to two thirds, with the deeper discriminator trunk).
    lr_g: float = 1e-4  # Adam learning rate of the generator
    lr_d: float = 4e-4  # Adam learning rate of the discriminator
    beta1: float = 0.0  # no momentum, as usual with spectral-norm discriminators
    beta2: float = 0.99
    ema_decay: float = 0.999  # per step, for the generator copy that samples
    loss: Literal["hinge", "nonsaturating"] = "hinge"
    augment: str = "auto"  # 'auto', 'off' or a comma list of translation, cutout, color

    def __post_init__(self):
        super().__post_init__()
        if self.augment != "auto":
            parse_policy(self.augment)
        require(0 <= self.ema_decay < 1, "ema_decay", self.ema_decay, "0 <= ema_decay < 1")
        for key in ("lr_g", "lr_d"):
            require(getattr(self, key) > 0, key, getattr(self, key), "a positive number")
        for key in ("beta1", "beta2"):
            require(0 <= getattr(self, key) < 1, key, getattr(self, key), "0 <= beta < 1")


@register_model("cgan")
class CGAN(SamplingModel):
    """The sampling network of the GAN: the EMA of the trained generator."""

    config_class = CGANConfig

    def generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """z float32 (N, z_dim), labels int64 (N,) -> images (N, C, H, W) in [-1, 1]."""
        return torch.tanh(self.net(z, labels))

    def trainer(self, num_images: int, device: torch.device, amp_dtype: torch.dtype | None = None) -> "CGANTrainer":
        return CGANTrainer(self, num_images, device, amp_dtype)


class ProjectionDiscriminator(nn.Module):
    """Images, labels -> realness (N,): a linear score plus the projection <embed(label), features>."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.trunk = DownTrunk(config, wrap=spectral_norm)
        self.score = spectral_norm(nn.Linear(self.trunk.features, 1))
        self.embed = spectral_norm(nn.Embedding(config.num_classes, self.trunk.features))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = self.trunk(images)  # (N, F)
        return self.score(features).squeeze(1) + (self.embed(labels) * features).sum(dim=1)


def auto_policy(config: CGANConfig, num_images: int) -> str:
    if num_images >= AUGMENT_BELOW_IMAGES:
        return "off"
    return "translation,cutout,color" if config.resolution >= CUTOUT_FROM_PIXELS else "translation,color"


class CGANTrainer(Trainer):
    def __init__(self, ema: CGAN, num_images: int, device: torch.device, amp_dtype: torch.dtype | None):
        super().__init__(device, amp_dtype)
        config = ema.config
        self.ema = self.place(ema).requires_grad_(False)
        self.generator = copy.deepcopy(ema).requires_grad_(True)
        self.discriminator = self.place(ProjectionDiscriminator(config))
        betas = (config.beta1, config.beta2)
        self.parts = {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "ema": self.ema,
            "optimizer_g": torch.optim.Adam(self.generator.parameters(), config.lr_g, betas=betas),
            "optimizer_d": torch.optim.Adam(self.discriminator.parameters(), config.lr_d, betas=betas),
        }
        self.policy = parse_policy(auto_policy(config, num_images) if config.augment == "auto" else config.augment)
        self.loss = config.loss
        self.ema_decay = config.ema_decay

    def step(self, real, labels, generator):
        optimizer_g, optimizer_d = self.parts["optimizer_g"], self.parts["optimizer_d"]
        z = torch.randn(len(labels), self.generator.z_dim, generator=generator, device=generator.device)
        with self.autocast():
            fake = self.generator.generate(z, labels)  # the discriminator's and then the generator's step use it
            self.discriminator.requires_grad_(True)
            real_score = self.discriminator(diff_augment(real, self.policy, generator), labels)
            fake_score = self.discriminator(diff_augment(fake.detach(), self.policy, generator), labels)
            loss_d = self._discriminator_loss(real_score.float(), fake_score.float())
        optimizer_d.zero_grad(set_to_none=True)
        loss_d.backward()
        optimizer_d.step()

        with self.autocast():
            self.discriminator.requires_grad_(False)  # its weights are fixed during the generator's step
            score = self.discriminator(diff_augment(fake, self.policy, generator), labels).float()
            loss_g = -score.mean() if self.loss == "hinge" else F.softplus(-score).mean()
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()

        self.steps += 1
        self._update_ema()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "d_real": real_score.detach().float().mean()}

    def _discriminator_loss(self, real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
        if self.loss == "hinge":
            return F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()
        return F.softplus(-real_score).mean() + F.softplus(fake_score).mean()

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Ramp the decay up so that short runs sample from recent weights, not from the initial ones.
        decay = min(self.ema_decay, (1 + self.steps) / (10 + self.steps))
        for averaged, current in zip(self.ema.parameters(), self.generator.parameters()):
            averaged.lerp_(current, 1 - decay)
