"""Training images/s of genaug's cgan at 28x28, next to the DCGAN tutorial's loop (its bugs fixed), batch 64.

    .venv/bin/python benchmarks/train_throughput.py [--steps 30] [--device cpu|cuda] [--threads N]

The tutorial's networks, made to run: generator z(100) -> Linear -> 128x7x7 -> ConvT 64 -> ConvT 1
with batch norm; discriminator Conv 64 -> Conv 128 -> Linear, whose input size is computed from the
28x28 input (the tutorial hard-coded 128*4*4 where 128*7*7 arrives). It is unconditional, with
BCE loss and Adam(2e-4, 0.5, 0.999). genaug's cgan at width 16 does about the tutorial's
multiply-adds per image (~15 M); at width 32 it has the same widest layers (128 channels) and four
times the work: a 3x3 convolution per level in the discriminator and 32x32 inside for 28x28 images.
Both add class conditioning, spectral norm, DiffAugment and an EMA generator.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from gen_aug.models import build_model

RESOLUTION, BATCH, Z_DIM = 28, 64, 100


class TutorialGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(Z_DIM, 128 * 7 * 7),
            nn.Unflatten(1, (128, 7, 7)),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1),  # 14x14
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1),  # 28x28
            nn.Tanh(),
        )

    def forward(self, z):
        return self.net(z)


class TutorialDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 64, 4, stride=2, padding=1),  # 14x14
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, stride=2, padding=1),  # 7x7
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        with torch.no_grad():  # the fix: size the linear layer from what actually arrives
            flat = self.features(torch.zeros(2, 1, RESOLUTION, RESOLUTION)).shape[1]
        self.score = nn.Linear(flat, 1)

    def forward(self, images):
        return self.score(self.features(images)).squeeze(1)


def tutorial_step(generator, discriminator, optimizer_g, optimizer_d, real, device):
    ones, zeros = torch.ones(len(real), device=device), torch.zeros(len(real), device=device)
    fake = generator(torch.randn(len(real), Z_DIM, device=device))
    loss_d = F.binary_cross_entropy_with_logits(discriminator(real), ones) + F.binary_cross_entropy_with_logits(
        discriminator(fake.detach()), zeros
    )
    optimizer_d.zero_grad(set_to_none=True)
    loss_d.backward()
    optimizer_d.step()
    loss_g = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
    optimizer_g.zero_grad(set_to_none=True)
    loss_g.backward()
    optimizer_g.step()
    return loss_d.detach()


def images_per_sec(step, steps: int, device: torch.device) -> float:
    for _ in range(3):  # warm-up: allocator, kernel choice
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)  # waits for the device
    return steps * BATCH / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    real = torch.rand(BATCH, 1, RESOLUTION, RESOLUTION, device=device) * 2 - 1
    labels = torch.randint(10, (BATCH,), device=device)

    generator, discriminator = TutorialGenerator().to(device), TutorialDiscriminator().to(device)
    optimizer_g = torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999))
    optimizer_d = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
    rows = [("tutorial DCGAN, fixed (unconditional)", lambda: tutorial_step(generator, discriminator, optimizer_g, optimizer_d, real, device))]
    amp = torch.bfloat16 if device.type == "cuda" else None
    for width, augment in ((16, "translation,cutout,color"), (32, "translation,cutout,color"), (32, "off")):
        config = {"resolution": RESOLUTION, "channels": 1, "num_classes": 10, "width": width, "augment": augment}
        trainer = build_model("cgan", config).trainer(1000, device, amp)
        rng = torch.Generator(device).manual_seed(0)
        rows.append((f"genaug cgan width {width}, augment {augment}", lambda trainer=trainer, rng=rng: trainer.step(real, labels, rng)["loss_d"]))
    hardware = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"device {device} ({hardware}), batch {BATCH}, {RESOLUTION}x{RESOLUTION}, {args.steps} timed steps, load average {load}")
    for name, step in rows:
        print(f"{name:<52} {images_per_sec(step, args.steps, device):>9,.0f} images/s")


if __name__ == "__main__":
    main()
