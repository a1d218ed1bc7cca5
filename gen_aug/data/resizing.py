"""Bringing pictures to R x R: stretched, centre-cropped or padded with black to a square, then resized bicubically."""

from __future__ import annotations

import numpy as np
from PIL import Image

HOW = {  # what each of spec.RESIZE_MODES did to a picture that was not square
    "stretch": "stretched (resize=crop or resize=pad keeps the aspect ratio)",
    "crop": "centre-cropped to a square first (resize=crop)",
    "pad": "padded to a square with black first (resize=pad)",
}


def squared(pixels: np.ndarray, mode: str) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) -> the square the resize starts from: side min(H, W) for crop, max(H, W) for pad.

    An odd margin leaves its extra row or column at the bottom or right (cut off by crop, black by pad), as
    center_crop and center_pad in gen_aug/models/layers.py do; stretch returns `pixels` as they are.
    """
    height, width = pixels.shape[:2]
    if mode == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return pixels[top : top + side, left : left + side]
    if mode == "pad":
        side = max(height, width)
        top, left = (side - height) // 2, (side - width) // 2
        square = np.zeros((side, side, *pixels.shape[2:]), dtype=pixels.dtype)
        square[top : top + height, left : left + width] = pixels
        return square
    return pixels


def resized(pixels: np.ndarray, resolution: int, mode: str) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) -> (R, R) or (R, R, C), with Pillow's antialiased bicubic filter."""
    square = Image.fromarray(squared(pixels, mode))
    return np.asarray(square.resize((resolution, resolution), Image.BICUBIC))


def resized_set(images: np.ndarray, resolution: int, mode: str = "stretch") -> np.ndarray:
    """uint8 (N, C, H, W) -> (N, C, R, R): each plane of each image `resized`."""
    out = np.empty((len(images), images.shape[1], resolution, resolution), dtype=np.uint8)
    for i, image in enumerate(images):
        for c, plane in enumerate(image):
            out[i, c] = resized(plane, resolution, mode)
    return out


def resize_note(count: int, not_square: int, resolution: int, mode: str) -> str | None:
    """The loading note for `count` resized images, `not_square` of them not square; None when none were resized."""
    if not count:
        return None
    note = f"resized {count:,} image(s) to {resolution}x{resolution}"
    return note + (f"; {not_square:,} not square, {HOW[mode]}" if not_square else "")


class Resizer:
    """Brings one picture after another to R x R as `mode` says, counting them for the loading note."""

    def __init__(self, resolution: int | None, mode: str):
        self.resolution, self.mode = resolution, mode
        self.count = self.not_square = 0

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Unchanged without a resolution or at R x R already; else `resized`."""
        if self.resolution is None or pixels.shape[:2] == (self.resolution, self.resolution):
            return pixels
        self.count += 1
        self.not_square += pixels.shape[0] != pixels.shape[1]
        return resized(pixels, self.resolution, self.mode)

    def note(self) -> str | None:
        return resize_note(self.count, self.not_square, self.resolution, self.mode)
