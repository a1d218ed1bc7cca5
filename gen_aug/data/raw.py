"""The one type every source reader returns, before the spec's split, limit, size and channel options apply."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen_aug.data.form import SourceForm


@dataclass(frozen=True)
class RawImages:
    images: np.ndarray | None  # uint8 (N, C, H, W), all splits together; None when `splits` is set
    labels: np.ndarray | None  # int (N,)
    class_names: tuple[str, ...]
    splits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None  # the set's own splits, if any
    notes: tuple[str, ...] = ()  # what reading did beyond decoding (mappings, dropped alpha, skipped files)
    pixel_mapping: str = ""  # how 16/32-bit pixels became uint8; empty when none were
    form: SourceForm | None = None  # the pictures' own size and depth, where the reader changed them; None: the arrays'
