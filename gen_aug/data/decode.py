"""One image file -> its pixels as numpy, in every mode Pillow reads, without clipping or guessing.

8-bit modes come back as uint8 gray (H, W) or RGB (H, W, 3). 16- and 32-bit modes (I;16, I;16B, I, F)
come back in their own type, because mapping them to uint8 needs the range of the whole set
(gen_aug/data/intensity.py). Alpha is dropped, not composited, as torchvision's default loader does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Pillow mode -> the depth named in `genaug data` notes; these modes keep their own type here.
HIGH_DEPTH_MODES = {
    "I;16": "16-bit", "I;16L": "16-bit", "I;16B": "16-bit", "I;16N": "16-bit",
    "I": "32-bit integer",
    "F": "32-bit float",
}
GRAY_MODES = ("1", "L", "LA", "La")
ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


class BadImage(Exception):
    """A file that cannot be used as an image; the message is the short reason shown beside its name."""


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # (H, W) or (H, W, 3): uint8, or the file's own type when `depth` is set
    depth: str | None  # "16-bit", "32-bit integer" or "32-bit float" while pixels still need mapping to uint8
    alpha_dropped: bool  # the file had an alpha channel or a transparent colour, not kept
    frames: int  # frames in the file; only the first is read
    top_byte_only: bool = False  # 16-bit colour or gray+alpha, which Pillow decodes to its top 8 bits per channel


def decode(file: Path) -> Decoded:
    """Read one image file; raises BadImage for anything Pillow cannot decode or pixels that are not numbers."""
    if file.exists() and not file.is_file():
        raise BadImage("not a regular file")  # a pipe or a device: opening it could wait for ever
    with warnings.catch_warnings():
        # Between 1x and 2x Pillow's pixel limit it only warns; a file that large is refused all the same.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(file) as opened:
                stored_16_bit = any(";16" in str(tile.args) for tile in opened.tile)  # known before decoding only
                opened.load()
                return _with_stored_depth(_pixels(opened, getattr(opened, "n_frames", 1)), stored_16_bit)
        except BadImage:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise BadImage(f"over Pillow's limit of {Image.MAX_IMAGE_PIXELS:,} pixels: a decompression bomb?") from None
        except UnidentifiedImageError:
            raise BadImage("not an image Pillow can identify") from None
        except FileNotFoundError:
            raise BadImage("missing: a broken link?") from None
        except Exception as error:  # Pillow's decoders raise many types on damaged files; all mean unreadable
            message = " ".join(str(error).split())[:60]  # on one line, whatever the decoder wrote
            raise BadImage(f"{type(error).__name__}: {message}" if message else type(error).__name__) from None


def _with_stored_depth(decoded: Decoded, stored_16_bit: bool) -> Decoded:
    if not stored_16_bit:
        return decoded
    if decoded.depth == "32-bit integer":  # older Pillows widen 16-bit gray PNGs to mode I
        return replace(decoded, depth="16-bit")
    return replace(decoded, top_byte_only=decoded.depth is None)


def _pixels(picture: Image.Image, frames: int) -> Decoded:
    mode = picture.mode
    if mode in HIGH_DEPTH_MODES:
        pixels = np.asarray(picture)
        if mode == "F" and not np.isfinite(pixels).all():
            raise BadImage("NaN or infinite values")
        return Decoded(pixels, HIGH_DEPTH_MODES[mode], False, frames)
    alpha_dropped = mode in ALPHA_MODES or "transparency" in picture.info
    if mode in GRAY_MODES:
        return Decoded(np.asarray(picture.convert("L")), None, alpha_dropped, frames)
    try:
        # Palette images go through their palette; CMYK, YCbCr, RGBX and the rest through Pillow's conversion.
        rgb = np.asarray(picture.convert("RGB"))
    except ValueError:
        raise BadImage(f"mode {mode} has no conversion to RGB") from None
    if mode in ("P", "PA") and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        rgb = rgb[..., 0]  # a gray palette: one channel, as the file meant
    return Decoded(rgb, None, alpha_dropped, frames)
