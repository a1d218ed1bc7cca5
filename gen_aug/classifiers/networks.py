"""The classifiers an evaluation or a judge can train: the small reference CNN, or ResNet-18 as MedMNIST v2 adapts it."""

from __future__ import annotations

import torch
from torch import nn

from gen_aug.errors import GenaugError


class ReferenceCNN(nn.Module):
    """Conv stages at 1, 1/2 and 1/4 resolution, pooled to 2x2, then the embedding and a linear head.

    The adaptive pool makes one architecture serve 8 to 64 pixel images; any channel and class count.
    """

    def __init__(self, channels: int, num_classes: int, width: int, feature_dim: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, width),
            nn.MaxPool2d(2),
            _conv(width, 2 * width),
            _conv(2 * width, 2 * width),
            nn.MaxPool2d(2),
            _conv(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),  # (N, 4*width*2*2)
        )
        self.embed = nn.Sequential(nn.Linear(16 * width, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, C, H, W) in [-1, 1] -> (N, feature_dim) penultimate activations."""
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()
    )


class SmallImageResNet18(nn.Module):
    """torchvision's ResNet-18, no pretrained weights, with a 3x3 stride-1 stem and no max-pool (MedMNIST v2 at 28 px).

    The standard 7x7 stride-2 stem and max-pool would shrink a 28-pixel image to 7 pixels before the
    first residual stage; this keeps the full resolution there, as CIFAR-style ResNets do.
    """

    def __init__(self, channels: int, num_classes: int):
        from torchvision.models import resnet18

        super().__init__()
        # Its constructor initialises from the global generator; the caller re-initialises from its own.
        with torch.random.fork_rng(devices=[]):
            net = resnet18(weights=None, num_classes=num_classes)
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.head = net.fc
        net.fc = nn.Identity()
        self.body = net  # (N, C, H, W) -> (N, 512)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def build_network(name: str, channels: int, num_classes: int, width: int, feature_dim: int) -> nn.Module:
    """An untrained network by name: 'small-cnn' (of `width` and `feature_dim`) or 'resnet18'."""
    if name == "small-cnn":
        return ReferenceCNN(channels, num_classes, width, feature_dim)
    if name == "resnet18":
        return SmallImageResNet18(channels, num_classes)
    raise GenaugError(f"classifier {name!r} (expected small-cnn or resnet18)")


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """He-normal convolution and linear weights and zero biases, all drawn from `generator`."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
