"""(seed, image index) -> latent -> uint8 image: image i is the same whatever the batch, worker or device count."""

from __future__ import annotations

import math

import torch

from gen_aug.errors import GenaugError

# splitmix64 constants (Steele, Lea, Flood 2014) written as the signed int64 values of their bit patterns,
# since torch has no uint64 arithmetic: int64 addition and multiplication wrap exactly like uint64's.
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15 - (1 << 64)
_MIX_1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX_2 = 0x94D049BB133111EB - (1 << 64)
_UNIFORM_BITS = 24  # each 64-bit hash gives two 24-bit uniforms: exact in float32
_UNIFORM_SCALE = 2.0**-_UNIFORM_BITS
_UNIFORM_MASK = (1 << _UNIFORM_BITS) - 1


def _shift_right_logical(x: torch.Tensor, bits: int) -> torch.Tensor:
    # torch's >> on int64 is arithmetic; masking off the copied sign bits makes it the uint64 shift.
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix64(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser: a bijection on 64-bit words whose every output bit depends on every input bit."""
    x = (x ^ _shift_right_logical(x, 30)) * _MIX_1
    x = (x ^ _shift_right_logical(x, 27)) * _MIX_2
    return x ^ _shift_right_logical(x, 31)


def _wrap_int64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def latents(seed: int, indices: torch.Tensor, z_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal float32 (N, z_dim) whose row n depends only on (seed, indices[n]).

    A counter-based generator: row i is hashed from (seed, i), then each pair of latent
    coordinates from (row hash, pair number), and Box-Muller turns each hash's two 24-bit
    uniforms into two normals. No state is carried between rows, so any split of the
    indices over batches, workers or devices yields the same rows.
    """
    indices = indices.to(device=device, dtype=torch.int64)
    num_pairs = math.ceil(z_dim / 2)
    seed_key = _mix64(torch.tensor(_wrap_int64(seed), dtype=torch.int64, device=device) + _GOLDEN_GAMMA)
    row_keys = _mix64(seed_key ^ _mix64(indices * _GOLDEN_GAMMA + _GOLDEN_GAMMA))  # (N,)
    pair_numbers = torch.arange(1, num_pairs + 1, dtype=torch.int64, device=device) * _GOLDEN_GAMMA
    bits = _mix64(row_keys[:, None] + pair_numbers[None, :])  # (N, num_pairs)
    # 1 - u keeps the logarithm's argument in (0, 1].
    u_radius = 1.0 - (_shift_right_logical(bits, 64 - _UNIFORM_BITS).to(torch.float32) * _UNIFORM_SCALE)
    u_angle = (bits & _UNIFORM_MASK).to(torch.float32) * _UNIFORM_SCALE
    radius = torch.sqrt(-2.0 * torch.log(u_radius))
    angle = (2.0 * math.pi) * u_angle
    normals = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=-1)  # (N, num_pairs, 2)
    return normals.reshape(len(indices), 2 * num_pairs)[:, :z_dim].contiguous()


# The network always runs on exactly this many images per call (the last call of a range is padded):
# CPU and GPU kernels pick their blocking by batch shape and so round a pixel or two differently at
# other sizes, but with one shape image i is the same whichever range or batch it is drawn in.
GENERATION_CHUNK = {"cpu": 256, "cuda": 8192}

_images_drawn = 0  # by this process, every chunk and candidate counted: a worker's progress within a shard


def images_drawn() -> int:
    """How many images this process has drawn so far (a filter's or selection's candidates included)."""
    return _images_drawn


def generate_uint8(
    model: torch.nn.Module, seed: int, indices: torch.Tensor, labels: torch.Tensor, device: torch.device | str,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """uint8 (N, C, H, W) images of `indices` with `labels`; bf16 autocast on CUDA.

    Written into `out` when given (e.g. pinned host memory, filled by asynchronous copies), else
    returned on `device`.
    """
    device = torch.device(device)
    indices, labels = indices.to(torch.int64), labels.to(torch.int64)

    def draw(rows: torch.Tensor) -> torch.Tensor:
        return model.generate(latents(seed, indices[rows], model.z_dim, device), labels[rows].to(device))

    return uint8_in_chunks(model, len(indices), device, draw, indices, out)


def uint8_in_chunks(model: torch.nn.Module, count: int, device: torch.device, draw, named: torch.Tensor,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (count, C, H, W) of `draw(rows)`, which makes float images in [-1, 1] of the positions `rows`.

    `draw` always gets GENERATION_CHUNK rows (a short last chunk is padded with copies of its first
    row, dropped after), so every image is the same whichever range it is drawn in. `named` (count,)
    are the image numbers an error names.
    """
    from gen_aug.images import to_uint8

    global _images_drawn
    chunk = GENERATION_CHUNK[device.type]
    results = []
    # One flag for the call, read once at the end: a check per chunk would wait for the GPU every chunk.
    finite = torch.ones((), dtype=torch.bool, device=device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for start in range(0, count, chunk):
            rows = torch.arange(start, min(start + chunk, count))
            padded = torch.cat([rows, rows[:1].expand(chunk - len(rows))])
            generated = draw(padded)[: len(rows)]
            _images_drawn += len(rows)
            finite &= torch.isfinite(generated).all()
            images = to_uint8(generated)
            if out is None:
                results.append(images)
            else:
                out[start : start + len(rows)].copy_(images, non_blocking=True)
    if count and not bool(finite):  # uint8 would turn NaN into plausible-looking pixels
        raise non_finite_images(int(named.min()), int(named.max()))
    if out is not None:
        if device.type == "cuda":
            torch.cuda.current_stream(device).synchronize()  # the copies into `out` are asynchronous
        return out
    return torch.cat(results) if results else torch.empty((0, model.config.channels, model.config.resolution,
                                                         model.config.resolution), dtype=torch.uint8, device=device)


class NonFiniteImages(GenaugError):
    """Generated pixels that are NaN or infinite, which uint8 would silently turn into pixels."""


def non_finite_images(first: int, last: int) -> NonFiniteImages:
    return NonFiniteImages(
        f"the model generated NaN or infinite pixels for images {first} to {last} (expected finite images: "
        "its weights or sampler settings are broken; retrain it)"
    )
