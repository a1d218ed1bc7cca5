"""Class-conditional GAN: DCGAN-shaped generator, projection discriminator with spectral norm, hinge loss."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gen_aug.checks import require
from gen_aug.models.registry import register_model
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
    # Minibatch standard deviation (Karras et al. 2018): the discriminator sees how much images in a
    # group of this many differ, so a generator that draws one image per class is told apart.
    # 0 turns it off.
    minibatch_std_group: int = 4
    # Mode seeking (Mao et al. 2019): the generator is also rewarded for images that differ as much
    # as their latents do, pairing half the batch with a second draw for the same class. On MNIST the
    # generator drew one image per class without it (minibatch std alone did not stop that), white
    # blobs at weight 1 and 0.3, and varied, clean digits at 0.1. 0 turns it off.
    mode_seeking_weight: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        if self.augment != "auto":
            parse_policy(self.augment)
        require(self.mode_seeking_weight >= 0, "mode_seeking_weight", self.mode_seeking_weight, "0 (off) or more")
        require(self.minibatch_std_group >= 0, "minibatch_std_group", self.minibatch_std_group, "0 (off) or a group size")
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

    def __init__(self, config: CGANConfig):
        super().__init__()
        self.trunk = DownTrunk(config, wrap=spectral_norm)
        self.group = config.minibatch_std_group
        if self.group:
            channels = self.trunk.features // 16  # the trunk ends at 4x4
            self.after_std = spectral_norm(nn.Conv2d(channels + 1, channels, 3, padding=1))
        self.score = spectral_norm(nn.Linear(self.trunk.features, 1))
        self.embed = spectral_norm(nn.Embedding(config.num_classes, self.trunk.features))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = self.trunk(images)  # (N, F)
        if self.group:
            h = features.unflatten(1, (-1, 4, 4))
            h = torch.cat([h, minibatch_std(h, self.group)], dim=1)
            features = F.leaky_relu(self.after_std(h), 0.2).flatten(1)
        return self.score(features).squeeze(1) + (self.embed(labels) * features).sum(dim=1)


def minibatch_std(h: torch.Tensor, group: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, 1, H, W): each image's group's standard deviation, averaged over features.

    Images are grouped by position modulo N // group, as in StyleGAN; the group shrinks to the
    largest divisor of N not above `group`, so any batch size works.
    """
    n = h.shape[0]
    group = max(size for size in range(1, min(group, n) + 1) if n % size == 0)
    if group == 1:
        return torch.zeros_like(h[:, :1])
    grouped = h.float().reshape(group, n // group, *h.shape[1:])  # (G, N/G, C, H, W)
    spread = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (N/G,)
    return spread.to(h.dtype).repeat(group)[:, None, None, None].expand(n, 1, *h.shape[2:])


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
        self.mode_seeking_weight = config.mode_seeking_weight

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
            if self.mode_seeking_weight:
                loss_g = loss_g + self.mode_seeking_weight * self._mode_seeking_loss(fake, z, labels, generator)
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()

        self.steps += 1
        self.update_ema(self.ema, self.generator, self.ema_decay)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "d_real": real_score.detach().float().mean()}

    def _mode_seeking_loss(self, fake, z, labels, generator) -> torch.Tensor:
        """1 / (image distance / latent distance) over pairs of draws for the same labels."""
        half = len(labels) // 2
        other_z = torch.randn(half, z.shape[1], generator=generator, device=generator.device)
        other = self.generator.generate(other_z, labels[:half])
        image_distance = (fake[:half] - other).float().abs().mean(dim=(1, 2, 3))
        latent_distance = (z[:half] - other_z).abs().mean(dim=1)
        return 1 / ((image_distance / latent_distance).mean() + 1e-5)

    def _discriminator_loss(self, real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
        if self.loss == "hinge":
            return F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()
        return F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
