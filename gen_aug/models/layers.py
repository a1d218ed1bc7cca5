"""Building blocks every family shares: the base config, a class-conditional generator, a downsampling trunk."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gen_aug.checks import require

MIN_RESOLUTION, MAX_RESOLUTION = 8, 256
MAX_WIDTH = 4096  # channels, and latent size: well above any model of up to 256 px
MAX_CLASSES = 100_000
MAX_WIDTH_MULTIPLE = 4  # channels grow x2 per halving of resolution, up to 4x `width`
# StyleGAN's channel_base / resolution, with channel_base = 128 * width: a level of side S holds at most
# width * 128 / S channels. It never binds up to 128 px (so 8-64 px networks are as they always were);
# above, the channels halve as the side doubles, so a level's activations grow with its side, not its area.
CHANNEL_BASE_SIDE = 128


@dataclass(frozen=True)
class ModelConfig:
    resolution: int  # height = width of the training images, 8..256 (28 is padded to 32 inside)
    channels: int  # 1 (grey) or 3 (RGB)
    num_classes: int
    z_dim: int = 64  # size of the latent vector
    width: int = 32  # channels at the finest level up to 128 px (half that at 256); coarser levels up to 4x

    def __post_init__(self):
        for field in dataclasses.fields(self):  # every family's: a snapshot's JSON may say Infinity or NaN
            value = getattr(self, field.name)
            require(not isinstance(value, float) or math.isfinite(value), field.name, value, "a finite number")
        require(
            MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION,
            "resolution",
            self.resolution,
            f"{MIN_RESOLUTION} to {MAX_RESOLUTION} pixels; resize the data with ?resolution=R",
        )
        require(self.channels in (1, 3), "channels", self.channels, "1 or 3")
        # The upper bounds keep a crafted snapshot from allocating before its weights are compared.
        require(2 <= self.num_classes <= MAX_CLASSES, "num_classes", self.num_classes, f"2 to {MAX_CLASSES:,} classes")
        require(1 <= self.z_dim <= MAX_WIDTH, "z_dim", self.z_dim, f"1 to {MAX_WIDTH}")
        require(1 <= self.width <= MAX_WIDTH, "width", self.width, f"1 to {MAX_WIDTH}")


def padded_resolution(resolution: int) -> int:
    """The power of two, at least 8, that the networks work at; images are cropped back to `resolution`."""
    size = 8
    while size < resolution:
        size *= 2
    return size


def level_widths(width: int, resolution: int) -> dict[int, int]:
    """Channels at each level {4: ..., 8: ..., ..., padded resolution: width, or fewer above 128 px}."""
    top = padded_resolution(resolution)
    widths, size = {}, 4
    while size <= top:
        cap = max(1, width * CHANNEL_BASE_SIDE // size)
        widths[size] = min(width * min(top // size, MAX_WIDTH_MULTIPLE), cap)
        size *= 2
    return widths


def center_crop(images: torch.Tensor, resolution: int) -> torch.Tensor:
    offset = (images.shape[-1] - resolution) // 2
    return images[..., offset : offset + resolution, offset : offset + resolution]


def center_pad(images: torch.Tensor, size: int) -> torch.Tensor:
    before = (size - images.shape[-1]) // 2
    after = size - images.shape[-1] - before
    return F.pad(images, (before, after, before, after)) if before or after else images


class ConditionalNorm(nn.Module):
    """GroupNorm with a per-class scale and shift: per image, so no image depends on its batch."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.GroupNorm(max(1, channels // 16), channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.norm(h) * self.scale(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]


class ConditionalGenerator(nn.Module):
    """(z (N, z_dim), labels (N,)) -> pre-activation images (N, channels, resolution, resolution).

    DCGAN-shaped: z and a class embedding -> 4x4 -> transposed convolutions doubling the size up to
    the padded resolution, class-conditional norms after each, then a crop back to `resolution`.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        widths = level_widths(config.width, config.resolution)
        sizes = sorted(widths)
        self.resolution = config.resolution
        self.embed = nn.Embedding(config.num_classes, config.z_dim)
        self.stem = nn.Linear(2 * config.z_dim, widths[4] * 16)
        self.norms = nn.ModuleList(ConditionalNorm(widths[size], config.num_classes) for size in sizes)
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(widths[size], widths[size * 2], 4, stride=2, padding=1, bias=False) for size in sizes[:-1]
        )
        self.to_image = nn.Conv2d(widths[sizes[-1]], config.channels, 3, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.stem(torch.cat([z, self.embed(labels)], dim=1)).unflatten(1, (-1, 4, 4))  # (N, C4, 4, 4)
        h = F.relu(self.norms[0](h, labels))
        for up, norm in zip(self.ups, self.norms[1:]):
            h = F.relu(norm(up(h), labels))  # size doubles
        return center_crop(self.to_image(h), self.resolution)


class DownTrunk(nn.Module):
    """Images (N, C, R, R) -> flat features (N, C4 * 16): pad to a power of two, halve to 4x4.

    `wrap` is applied to every layer with weights (spectral norm in the discriminator).
    """

    def __init__(self, config: ModelConfig, wrap: Callable[[nn.Module], nn.Module] = lambda layer: layer):
        super().__init__()
        widths = level_widths(config.width, config.resolution)
        sizes = sorted(widths, reverse=True)
        self.size = sizes[0]
        self.from_image = wrap(nn.Conv2d(config.channels, widths[self.size], 3, padding=1))
        self.downs = nn.ModuleList(
            wrap(nn.Conv2d(widths[size], widths[size // 2], 4, stride=2, padding=1)) for size in sizes[:-1]
        )
        self.mixes = nn.ModuleList(wrap(nn.Conv2d(widths[size], widths[size], 3, padding=1)) for size in sizes[1:])
        self.features = widths[4] * 16

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.from_image(center_pad(images, self.size)), 0.2)
        for down, mix in zip(self.downs, self.mixes):
            h = F.leaky_relu(down(h), 0.2)  # size halves
            h = F.leaky_relu(mix(h), 0.2)
        return h.flatten(1)  # (N, C4 * 16)


class SamplingModel(nn.Module):
    """What every family's model is: a conditional generator network, drawn from with `generate`."""

    config_class = ModelConfig
    evaluations_per_image = 1  # network evaluations one generated image costs (a diffusion sampler's steps)

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.net = ConditionalGenerator(config)

    def generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """z float32 (N, z_dim), labels int64 (N,) -> images (N, C, H, W) in [-1, 1]."""
        raise NotImplementedError
