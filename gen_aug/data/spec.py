"""The one-string data spec, `KIND:PATH?opt=v&opt=v`, parsed into a DataSpec or refused in one line."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from gen_aug.errors import GenaugError

KINDS = ("builtin", "folder", "npz", "idx")
SPLITS = ("train", "val", "test")
INTENSITIES = ("set", "image", "full")  # how 16/32-bit images map to uint8: see gen_aug/data/intensity.py
OPTIONS = ("split", "limit_per_class", "class_fraction", "resolution", "resize", "channels", "intensity", "skip_bad",
           "classes")
FOLDER_ONLY = ("intensity", "skip_bad")  # only image files have bit depths and can be corrupt one by one
NOT_FOLDER = ("classes",)  # a folder's classes are its subfolders' names
MIN_RESOLUTION, MAX_RESOLUTION = 4, 1024
RESIZE_MODES = ("stretch", "crop", "pad")  # how resolution=R squares a picture; stretch is what it always did


@dataclass(frozen=True)
class DataSpec:
    kind: str
    path: str
    split: str = "train"
    limit_per_class: int | None = None
    class_fraction: tuple[str, float] | None = None  # (class name or index, F): keep the first F of that class
    resolution: int | None = None
    resize: str = "stretch"  # one of RESIZE_MODES: see gen_aug/data/resizing.py
    channels: int | None = None
    intensity: str = "set"
    skip_bad: bool = False
    classes: tuple[str, ...] | None = None  # names of the classes of numbered labels, in label order (npz, idx, builtin)

    def __str__(self) -> str:
        """The normalised spec; options left at their defaults (other than split) are left out."""
        options = [f"split={self.split}"]
        for name in ("limit_per_class", "resolution", "channels"):
            if getattr(self, name) is not None:
                options.append(f"{name}={getattr(self, name)}")
        if self.class_fraction is not None:
            options.append(f"class_fraction={self.class_fraction[0]}:{self.class_fraction[1]:g}")
        if self.resize != "stretch":
            options.append(f"resize={self.resize}")
        if self.intensity != "set":
            options.append(f"intensity={self.intensity}")
        if self.skip_bad:
            options.append("skip_bad=true")
        if self.classes is not None:
            options.append(f"classes={','.join(self.classes)}")
        return f"{self.kind}:{self.path}?{'&'.join(options)}"


def parse_spec(spec: str) -> DataSpec:
    """`kind:path?opt=v&opt=v` -> DataSpec; raises GenaugError naming the spec on any mistake."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KINDS:
        raise GenaugError(
            f"data spec {spec!r}: unknown kind {kind!r} (expected one of "
            f"{', '.join(k + ':' for k in KINDS)}, e.g. builtin:digits or folder:PATH)"
        )
    path, _, query = rest.partition("?")
    if not path:
        raise GenaugError(f"data spec {spec!r}: missing path after '{kind}:'")
    values: dict[str, object] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, separator="&") if query else []:
        if name not in OPTIONS:
            raise GenaugError(f"data spec {spec!r}: unknown option {name!r} (expected {', '.join(OPTIONS)})")
        if name in FOLDER_ONLY and kind != "folder":
            raise GenaugError(f"data spec {spec!r}: {name} applies to folder: sets only ({kind}: holds uint8 arrays)")
        if name in NOT_FOLDER and kind == "folder":
            raise GenaugError(f"data spec {spec!r}: {name} names numbered classes (expected it absent: a folder's "
                              "classes are its subfolders' names)")
        values[name] = _option_value(spec, name, value)
    if values.get("channels") not in (None, 1, 3):
        raise GenaugError(f"data spec {spec!r}: channels={values['channels']} (expected 1 or 3)")
    resolution = values.get("resolution")
    if resolution is not None and not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise GenaugError(
            f"data spec {spec!r}: resolution={resolution} (expected {MIN_RESOLUTION} to {MAX_RESOLUTION})"
        )
    if "resize" in values and resolution is None:
        raise GenaugError(
            f"data spec {spec!r}: resize={values['resize']} says how resolution=R squares the images "
            f"(expected resolution=R too, e.g. ?resolution=128&resize={values['resize']})"
        )
    return DataSpec(kind, path, **values)


def _option_value(spec: str, name: str, value: str) -> object:
    if name == "split":
        return _choice(spec, name, value, SPLITS)
    if name == "intensity":
        return _choice(spec, name, value, INTENSITIES)
    if name == "resize":
        return _choice(spec, name, value, RESIZE_MODES)
    if name == "class_fraction":
        return _class_fraction(spec, value)
    if name == "skip_bad":
        return _choice(spec, name, value, ("true", "false")) == "true"
    if name == "classes":
        return _class_names(spec, value)
    return _positive_int(spec, name, value)


def _class_fraction(spec: str, value: str) -> tuple[str, float]:
    """'CLASS:F' -> (CLASS, F), F a fraction in (0, 1]: an imbalanced set cut from a balanced one, deterministically."""
    name, sep, fraction = value.rpartition(":")
    try:
        share = float(fraction)
    except ValueError:
        share = -1.0
    if not sep or not name or not 0 < share <= 1:
        raise GenaugError(f"data spec {spec!r}: class_fraction={value!r} (expected CLASS:F with F in (0, 1], e.g. 0:0.1)")
    return name, share


def _class_names(spec: str, value: str) -> tuple[str, ...]:
    """'benign,malignant' -> ('benign', 'malignant'): distinct, non-empty names."""
    names = tuple(name.strip() for name in value.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise GenaugError(f"data spec {spec!r}: classes={value!r} (expected distinct names separated by commas, one "
                          "per class in label order, e.g. classes=malignant,benign)")
    return names


def _choice(spec: str, name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        expected = f"{', '.join(choices[:-1])} or {choices[-1]}"
        raise GenaugError(f"data spec {spec!r}: {name}={value!r} (expected {expected})")
    return value


def _positive_int(spec: str, name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise GenaugError(f"data spec {spec!r}: {name}={value!r} (expected a positive whole number)")
    return number
