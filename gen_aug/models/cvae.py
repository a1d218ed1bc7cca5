"""Conditional VAE: encoder and decoder both see the label; Gaussian latent; reconstruction + beta * KL."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gen_aug.checks import require
from gen_aug.models.registry import register_model
from gen_aug.models.layers import DownTrunk, ModelConfig, SamplingModel
from gen_aug.models.trainer import Trainer


@dataclass(frozen=True)
class CVAEConfig(ModelConfig):
    z_dim: int = 16
    kl_weight: float = 1.0  # beta: weight of the KL term against the reconstruction
    recon_loss: Literal["bce", "mse"] = "bce"  # per-pixel Bernoulli (ink-like images) or Gaussian
    lr: float = 1e-3  # Adam learning rate of encoder and decoder

    def __post_init__(self):
        super().__post_init__()
        require(self.kl_weight >= 0, "kl_weight", self.kl_weight, "0 or more")
        require(self.lr > 0, "lr", self.lr, "a positive number")


class ConditionalEncoder(nn.Module):
    """Images, labels -> (mean, log-variance) of the latent, each (N, z_dim)."""

    def __init__(self, config: CVAEConfig):
        super().__init__()
        self.trunk = DownTrunk(config)
        self.embed = nn.Embedding(config.num_classes, config.z_dim)
        self.head = nn.Linear(self.trunk.features + config.z_dim, 2 * config.z_dim)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.cat([self.trunk(images), self.embed(labels)], dim=1)
        mean, log_var = self.head(features).chunk(2, dim=1)
        return mean, log_var


@register_model("cvae")
class CVAE(SamplingModel):
    """The sampling network of the VAE, its decoder (outputs are per-pixel logits), and the encoder that variants of
    real images start from."""

    config_class = CVAEConfig
    optional_parts = ("encoder",)  # snapshots written before variants kept no encoder; they still sample

    def __init__(self, config: CVAEConfig):
        super().__init__(config)
        self.encoder: ConditionalEncoder | None = ConditionalEncoder(config)

    def generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """z float32 (N, z_dim), labels int64 (N,) -> mean images (N, C, H, W) in [-1, 1]."""
        return torch.tanh(self.net(z, labels) / 2)  # = 2 * sigmoid(logits) - 1

    def vary(self, images: torch.Tensor, z: torch.Tensor, labels: torch.Tensor, strength: float) -> torch.Tensor:
        """Variants of real `images` (N, C, H, W) in [-1, 1] under `labels`: each image's posterior mean, moved a
        share `strength` of the way to the noise z (keeping unit variance), decoded.

        Strength 0 returns the images themselves; just above it, the decoder's reconstruction of them;
        strength 1 is exactly `generate(z, labels)`.
        """
        if strength == 0:
            return images.clamp(-1, 1)
        mean, _ = self.encoder(images.to(z.dtype), labels)
        return self.generate(math.sqrt(1 - strength**2) * mean.to(z.dtype) + strength * z, labels)

    def trainer(self, num_images: int, device: torch.device, amp_dtype: torch.dtype | None = None) -> "CVAETrainer":
        return CVAETrainer(self, device, amp_dtype)


class CVAETrainer(Trainer):
    def __init__(self, decoder: CVAE, device: torch.device, amp_dtype: torch.dtype | None):
        super().__init__(device, amp_dtype)
        config = decoder.config
        self.decoder = self.place(decoder)
        self.encoder = decoder.encoder  # part of the model, so the snapshot keeps it for variants
        parameters = [*self.encoder.parameters(), *self.decoder.net.parameters()]  # the order older states saved
        self.parts = {
            "decoder": self.decoder,
            "encoder": self.encoder,
            "optimizer": torch.optim.Adam(parameters, config.lr),
        }
        self.kl_weight = config.kl_weight
        self.recon_loss = config.recon_loss

    def load_state_dict(self, state: dict) -> None:
        decoder = dict(state["decoder"])
        if not any(name.startswith("encoder.") for name in decoder):  # a state from before the model held the encoder
            decoder.update({f"encoder.{name}": tensor for name, tensor in state["encoder"].items()})
        super().load_state_dict({**state, "decoder": decoder})

    def step(self, real, labels, generator):
        optimizer = self.parts["optimizer"]
        with self.autocast():
            mean, log_var = self.encoder(real, labels)
            mean, log_var = mean.float(), log_var.float()
            noise = torch.randn(mean.shape, generator=generator, device=generator.device)
            z = mean + torch.exp(0.5 * log_var) * noise  # reparameterised draw
            logits = self.decoder.net(z, labels).float()
        if self.recon_loss == "bce":
            recon = F.binary_cross_entropy_with_logits(logits, (real + 1) / 2, reduction="sum")
        else:
            recon = F.mse_loss(torch.tanh(logits / 2), real, reduction="sum")
        recon = recon / len(real)  # summed over pixels, averaged over images
        kl = -0.5 * (1 + log_var - mean.square() - log_var.exp()).sum() / len(real)
        loss = recon + self.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        self.steps += 1
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}
