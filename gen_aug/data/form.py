"""What loading did to a set's pictures' size and depth, and the way back: `genaug synthesize --restore`.

Loading brings every picture to the uint8 R x R the models train on: 16-bit pixels mapped linearly from a
range to 0..255 (gen_aug/data/intensity.py), non-square ones stretched, centre-cropped or padded to a
square and resized (gen_aug/data/resizing.py). `SourceForm` records those choices; `restored` runs them
backwards on a generated image: mapped back through the same range to 16 bits, resized to the square's
size at the source's scale and the padding cut off (or the stretch undone). A crop cannot be undone, as
its margins were never seen: a restored image of a cropped set is the centre square at the source's scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from gen_aug.errors import GenaugError

RESTORABLE_DEPTHS = ("16-bit",)  # beyond 8 bits, what a PNG holds


@dataclass(frozen=True)
class SourceForm:
    height: int | None  # the pictures' own size before any resize, when they all shared one; None when not
    width: int | None
    resolution: int | None = None  # the side loading resized them to; None when none was resized
    resize: str = "stretch"  # how a non-square picture became square (spec.RESIZE_MODES)
    depth: str | None = None  # '16-bit' etc. where deeper pixels were mapped to uint8; None for 8-bit sets
    low: int | float | None = None  # the mapping's range (low -> 0, high -> 255); None when each picture had its own
    high: int | float | None = None
    mixed_depths: bool = False  # both 8-bit and deeper pictures: no one way back for all of them

    def problem(self) -> str | None:
        """Why images cannot go back to this form, in words; None when they can."""
        if self.height is None:
            return "its pictures have several sizes, so there is no one size to restore them to"
        if self.mixed_depths:
            return "it mixes 8-bit and deeper pictures, so there is no one depth to restore them to"
        if self.depth is not None and self.depth not in RESTORABLE_DEPTHS:
            return f"its pictures are {self.depth}, which a PNG cannot hold (expected 8- or 16-bit pictures)"
        if self.depth is not None and self.low is None:
            return "intensity=image mapped each picture from its own range, so there is no one range to map back through"
        return None

    def checked(self, where: str) -> "SourceForm":
        """This form, when images can go back to it; else a GenaugError starting with `where`."""
        problem = self.problem()
        if problem is not None:
            raise GenaugError(f"{where}: cannot be restored to: {problem}")
        return self

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) a restored image has: the source's, or its centre square's for a crop."""
        if self.resolution is None or self.height == self.width or self.resize != "crop":
            return self.height, self.width
        side = min(self.height, self.width)
        return side, side

    def describe(self) -> str:
        """'80x96 (height x width), 16-bit from 0..4095, padding cut off': what --restore makes of an image."""
        height, width = self.size
        depth = f", {self.depth} from {self.low}..{self.high}" if self.depth is not None else ", 8-bit"
        how = {"pad": ", padding cut off", "crop": ", the centre square (a crop's margins cannot come back)",
               "stretch": ", stretch undone"}
        undone = how[self.resize] if self.resolution is not None and self.height != self.width else ""
        return f"{height}x{width} (height x width){depth}{undone}"

    def restored(self, image: np.ndarray) -> np.ndarray:
        """uint8 (C, R, R) as generated -> (H, W) or (H, W, C) at the source's size: uint16 for 16-bit sources."""
        from PIL import Image

        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        if self.depth is not None:  # 16-bit: map back first, so the resize interpolates at the source's precision
            values = self.low + pixels.astype(np.float64) * ((self.high - self.low) / 255)
            picture = Image.fromarray(values.astype(np.float32), mode="F")
        else:
            picture = Image.fromarray(np.ascontiguousarray(pixels))
        if self.resolution is not None:
            picture = self._resized_back(picture)
        if self.depth is None:
            return np.asarray(picture)
        # Bicubic overshoot can leave the range the source was mapped from; the type's range holds every value.
        back = np.floor(np.asarray(picture, dtype=np.float64) + 0.5)
        return np.clip(back, 0, 65535).astype(np.uint16)

    def _resized_back(self, picture):
        from PIL import Image

        height, width = self.height, self.width
        if self.resize == "stretch" or height == width:
            return picture.resize((width, height), Image.BICUBIC)
        side = max(height, width) if self.resize == "pad" else min(height, width)
        square = picture.resize((side, side), Image.BICUBIC)
        if self.resize == "crop":
            return square
        top, left = (side - height) // 2, (side - width) // 2  # as resizing.squared placed the picture
        return square.crop((left, top, left + width, top + height))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: object, where: str) -> "SourceForm":
        try:
            form = cls(**record)
            sizes = (form.height, form.width, form.resolution)
            valid = all(s is None or (isinstance(s, int) and 1 <= s <= 2**16) for s in sizes) and \
                form.resize in ("stretch", "crop", "pad") and (form.height is None) == (form.width is None)
        except TypeError:
            valid = False
        if not valid:
            raise GenaugError(f"{where}: restore {record!r:.80} (expected the size and depth of a source set)")
        return form


def resized_form(form: SourceForm, resolution: int | None, resize: str) -> SourceForm:
    """`form` after loading brought the pictures to `resolution` (None: no resolution asked for)."""
    if resolution is None or (form.height, form.width) == (resolution, resolution):
        return form
    return dataclasses.replace(form, resolution=resolution, resize=resize)
