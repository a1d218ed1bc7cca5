"""16- and 32-bit pixels -> uint8, linearly from a range the spec's `intensity` chooses; nothing is ever clipped.

`set` maps every image of one depth from the smallest to the largest value over all of them, so an
image twice as bright as another stays so; `image` maps each from its own min..max; `full` maps from the
type's whole range (0..65535 for 16-bit; 0..1 for float, the usual convention, refused when exceeded).
"""

from __future__ import annotations

import numpy as np

from gen_aug.errors import GenaugError

FULL_RANGES = {"16-bit": (0, 65535), "32-bit integer": (-(2**31), 2**31 - 1), "32-bit float": (0.0, 1.0)}


def rescale(
    label: str, depth: str, named_pixels: list[tuple[str, np.ndarray]], intensity: str
) -> tuple[list[np.ndarray], str, tuple | None]:
    """The uint8 images of one depth, in order, the one-line note `genaug data` prints about it, and the range
    (low, high) they were mapped from: None for intensity=image, where each had its own."""
    count = f"{len(named_pixels):,} image{'s' if len(named_pixels) > 1 else ''} in the folder, every split"
    ranges = [(_number(pixels.min()), _number(pixels.max())) for _, pixels in named_pixels]
    if intensity == "image":
        low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
        images = [_linear(pixels, *r) for (_, pixels), r in zip(named_pixels, ranges)]
        return images, (
            f"{depth} images each rescaled from its own min..max to 0..255 "
            f"(intensity=image; {count}, values {_text(low)}..{_text(high)})"
        ), None
    if intensity == "full":
        low, high = FULL_RANGES[depth]
        _refuse_outside(label, depth, named_pixels, ranges, low, high)
        why = "the type's full range"
    else:
        low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
        why = "the smallest and largest values of them all"
    images = [_linear(pixels, low, high) for _, pixels in named_pixels]
    note = f"{depth} images rescaled from {_text(low)}..{_text(high)} to 0..255 (intensity={intensity}: {why}; {count})"
    return images, note, (low, high)


def _refuse_outside(label, depth, named_pixels, ranges, low, high) -> None:
    """Only floats can leave their 'full' range; mapping them would need clipping, which is never done."""
    outside = [(name, r) for (name, _), r in zip(named_pixels, ranges) if r[0] < low or r[1] > high]
    if outside:
        name, (smallest, largest) = outside[0]
        raise GenaugError(
            f"data {label}: {len(outside):,} {depth} image(s) have values outside {_text(low)}..{_text(high)}, "
            f"e.g. {name!r} with {_text(smallest)}..{_text(largest)} (expected intensity=set or intensity=image "
            "for such images)"
        )


def _linear(pixels: np.ndarray, low: int | float, high: int | float) -> np.ndarray:
    """low -> 0, high -> 255, rounding halves up; every value lies in low..high, so no clipping is needed."""
    span = high - low
    if span == 0:
        return np.zeros(pixels.shape, np.uint8)  # one value only: no contrast to keep
    if isinstance(low, int):
        # Exact integer arithmetic: (v - low) * 255 / span, rounded half up; 2**32 * 510 fits in int64.
        return (((pixels.astype(np.int64) - low) * 510 + span) // (2 * span)).astype(np.uint8)
    return np.floor((pixels.astype(np.float64) - low) * 255 / span + 0.5).astype(np.uint8)


def _number(value) -> int | float:
    return float(value) if np.issubdtype(np.asarray(value).dtype, np.floating) else int(value)


def _text(value: int | float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
