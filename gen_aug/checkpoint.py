"""Snapshots for sampling (safetensors: weights + the config that rebuilds them) and resume state, both safe to load.

A snapshot holds only the sampling network, so synthesis workers load little; `train_state.pt`
holds what --resume needs (every network, optimisers, step, RNG states) and is read with
`torch.load(weights_only=True)`, which refuses pickled code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from gen_aug import __version__
from gen_aug.atomic import write_atomic
from gen_aug.errors import GenaugError

SNAPSHOT_FORMAT = "genaug-snapshot"
SNAPSHOT_VERSION = 1
META_KEY = "genaug"
HEADER_LIMIT_BYTES = 100_000_000  # safetensors' own bound on the JSON header


@dataclass(frozen=True)
class Snapshot:
    model: nn.Module  # the sampling network, in eval mode, on the requested device
    meta: dict  # family, config, resolution, channels, class_names, data, steps, versions
    sha256: str  # of the file's bytes, to tie synthesized images to the exact weights


def save_snapshot(path: str | os.PathLike, model: nn.Module, meta: dict) -> None:
    """Write weights + metadata to `path` atomically (temporary file, then rename).

    `meta` adds to what the model itself says (family, config, resolution, channels):
    class_names (list), data {description, fingerprint}, steps.
    """
    config = dataclasses.asdict(model.config)
    full_meta = {
        "format": SNAPSHOT_FORMAT,
        "format_version": SNAPSHOT_VERSION,
        "genaug_version": __version__,
        "family": model.family,
        "config": config,
        "resolution": config["resolution"],
        "channels": config["channels"],
        **meta,
    }
    if len(full_meta.get("class_names", ())) != config["num_classes"]:
        raise ValueError(f"snapshot meta needs {config['num_classes']} class_names, got {full_meta.get('class_names')}")
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    payload = save_safetensors(tensors, metadata={META_KEY: json.dumps(full_meta, sort_keys=True)})
    write_atomic(Path(path), payload)


def load_snapshot(path: str | os.PathLike, device: str | torch.device = "cpu") -> Snapshot:
    """Rebuild the model a snapshot describes and load its weights; any flaw is a GenaugError naming the file."""
    from gen_aug.models import build_model

    path = Path(path)
    where = f"snapshot {path}"
    if not path.is_file():
        raise GenaugError(f"{where}: no such file (expected the model.safetensors that genaug train writes)")
    payload = path.read_bytes()
    meta = read_snapshot_meta(payload, where)
    if not isinstance(meta.get("config"), dict):
        raise GenaugError(f"{where}: metadata has no model config (expected a snapshot written by genaug train)")
    try:
        tensors = load_safetensors(payload)
    except Exception as error:  # safetensors raises its own error type for every malformed file
        raise GenaugError(f"{where}: not a readable safetensors file, or truncated ({error})") from None
    _check_shapes(payload, meta, where)
    broken = next((name for name, tensor in sorted(tensors.items())
                   if tensor.is_floating_point() and not torch.isfinite(tensor).all()), None)
    if broken is not None:
        raise GenaugError(
            f"{where}: weight {broken} holds NaN or infinite values (expected finite weights; a training run "
            "that diverged writes these: retrain it, with a lower learning rate)"
        )
    model = build_model(meta["family"], meta["config"])
    absent = _absent_optional_parts(model, tensors)  # _check_shapes refused any other missing weight
    model.load_state_dict(tensors, strict=not absent)
    for part in absent:
        setattr(model, part, None)  # a snapshot from before the part was kept: the model says it lacks it
    model.to(device).eval().requires_grad_(False)
    return Snapshot(model, meta, hashlib.sha256(payload).hexdigest())


def _check_shapes(payload: bytes, meta: dict, where: str) -> None:
    """The model the config describes, built on the meta device (no memory), must have the file's tensor shapes.

    So a crafted config (a width of 4,000, a million classes) is refused before anything of its size is allocated.
    """
    from gen_aug.models import MODELS, build_model

    try:
        with torch.device("meta"):
            expected = {name: list(t.shape) for name, t in build_model(meta["family"], meta["config"]).state_dict().items()}
    except GenaugError as error:
        raise GenaugError(f"{where}: {error}") from None
    except (RuntimeError, ValueError, OverflowError, TypeError) as error:
        raise GenaugError(f"{where}: its config builds no model ({str(error).splitlines()[0][:200]})") from None
    (header_bytes,) = struct.unpack("<Q", payload[:8])
    header = json.loads(payload[8 : 8 + header_bytes])
    found = {name: entry.get("shape") for name, entry in header.items() if name != "__metadata__"}
    for part in getattr(MODELS[meta["family"]], "optional_parts", ()):
        if not any(name.startswith(f"{part}.") for name in found):
            expected = {name: shape for name, shape in expected.items() if not name.startswith(f"{part}.")}
    if found != expected:
        name = next(iter(sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))))
        raise GenaugError(
            f"{where}: its weights do not fit a {meta['family']} model of its config ({name}: shape "
            f"{found.get(name)} in the file, {expected.get(name)} for the config)"
        )
    names = meta.get("class_names")
    num_classes = meta["config"].get("num_classes")
    if not isinstance(names, list) or len(names) != num_classes or not all(isinstance(n, str) for n in names):
        raise GenaugError(
            f"{where}: class_names {str(names)[:60]} for {num_classes} classes (expected one name per class)"
        )
    repeated = next((name for name in names if names.count(name) > 1), None)
    if repeated is not None:  # the output's readers tell classes apart by name
        raise GenaugError(f"{where}: class name {repeated[:60]!r} is given twice (expected a distinct name per class)")


def _absent_optional_parts(model: nn.Module, tensors: dict) -> list[str]:
    """The model's optional parts (a cvae's encoder) of which the file holds no weight."""
    return [part for part in getattr(model, "optional_parts", ())
            if not any(name.startswith(f"{part}.") for name in tensors)]


def read_snapshot_meta(payload: bytes, where: str) -> dict:
    """The genaug metadata from a safetensors header, checked for format, version and family."""
    from gen_aug.models import MODELS

    if len(payload) < 8:
        raise GenaugError(f"{where}: not a safetensors file (only {len(payload)} bytes)")
    (header_bytes,) = struct.unpack("<Q", payload[:8])
    if header_bytes > min(HEADER_LIMIT_BYTES, len(payload) - 8):
        raise GenaugError(f"{where}: not a safetensors file, or truncated (header of {header_bytes} bytes does not fit)")
    try:
        header = json.loads(payload[8 : 8 + header_bytes])
        meta = json.loads(header["__metadata__"][META_KEY])
    except (ValueError, KeyError, TypeError):
        raise GenaugError(f"{where}: not a genaug snapshot (no genaug metadata in a safetensors header)") from None
    if not isinstance(meta, dict) or meta.get("format") != SNAPSHOT_FORMAT:
        raise GenaugError(f"{where}: not a genaug snapshot (metadata format is not {SNAPSHOT_FORMAT!r})")
    if meta.get("format_version") != SNAPSHOT_VERSION:
        raise GenaugError(
            f"{where}: snapshot format version {meta.get('format_version')!r} from genaug "
            f"{meta.get('genaug_version')} (expected version {SNAPSHOT_VERSION}; retrain or use that genaug)"
        )
    if meta.get("family") not in MODELS:
        raise GenaugError(f"{where}: model family {meta.get('family')!r} (expected one of {', '.join(sorted(MODELS))})")
    return meta


def require_snapshot_data(data, meta: dict, where: str) -> None:
    """A real set used beside a snapshot (a judge's train split, variants' sources) must have its classes and
    image shape; `where` is the option that named the set, as the error's start."""
    shape = (meta["channels"], meta["resolution"], meta["resolution"])
    if data.class_names != tuple(meta["class_names"]) or data.shape != shape:
        raise GenaugError(
            f"{where}: classes {', '.join(data.class_names)}, images {'x'.join(map(str, data.shape))} (expected the "
            f"snapshot's classes {', '.join(meta['class_names'])} and images {'x'.join(map(str, shape))})"
        )


def training_data(meta: dict, where: str):
    """The data a snapshot learnt, read again as its metadata records it and checked to be the same images today;
    `where` starts the error when the record is missing or the data changed."""
    from gen_aug.data import load_data

    recorded = meta.get("data") or {}
    spec = recorded.get("description")
    if not isinstance(spec, str):
        raise GenaugError(f"{where}: the snapshot does not record the data it was trained on (expected a snapshot "
                          "of genaug train)")
    data = load_data(spec)
    if data.fingerprint != recorded.get("fingerprint"):
        raise GenaugError(f"{where}: {spec!r}, the data the model was trained on, reads other images today than it "
                          "did then (expected the same files)")
    return data
