"""The README.md dataset card at an output's root: what `datasets` and the Hugging Face Hub read first.

Its YAML header names the Parquet shards (`configs`) and, for the parquet format, the features with
the ClassLabel names; its text says which model, data, seed and command made the images. It is
written just before the manifest, which alone vouches for the images: `verify` does not hash the
card, so it can be edited (a description, a licence) before the folder is uploaded.
"""

from __future__ import annotations

import json
import shlex
import sys

from gen_aug.synthesis.encoding import huggingface_features
from gen_aug.synthesis.formats import DATA_DIR
from gen_aug.synthesis.settings import JobSettings
from gen_aug.synthesis.storage import Location

CARD = "README.md"
MARKER = "<!-- genaug dataset card: written by genaug synthesize (manifest.json vouches for the images) -->"
MAX_CARD_BYTES = 2**20


def is_genaug_card(location: Location) -> bool:
    """Whether the output's README.md is a card genaug wrote (by its marker line), not the user's own file."""
    try:
        return MARKER in location.read(CARD, MAX_CARD_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return False


def dataset_card(settings: JobSettings, manifest: dict) -> str:
    """The card's text for a finished output described by `manifest`."""
    return "---\n" + "\n".join(_header(settings, manifest)) + "\n---\n" + "\n".join(_body(settings, manifest)) + "\n"


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _header(settings: JobSettings, manifest: dict) -> list[str]:
    plan = settings.plan
    lines = ["tags:", "- synthetic", "- genaug"]
    if settings.format == "png":
        return lines  # an ImageFolder tree: `datasets` finds the images and their class folders itself
    pattern = f"{DATA_DIR}/train-*" if plan.layout == "hub" else "shard-*.parquet"
    lines += ["configs:", "- config_name: default", "  data_files:", "  - split: train", f"    path: {_quoted(pattern)}"]
    if settings.format != "parquet":
        return lines  # raw pixels have no `datasets` feature type: the schema says what they are
    lines += ["dataset_info:", "  features:"]
    for name, feature in huggingface_features(plan.class_names, settings.filter is not None).items():
        lines.append(f"  - name: {name}")
        if feature["_type"] == "Image":
            lines.append("    dtype: image")
        elif feature["_type"] == "ClassLabel":
            lines += ["    dtype:", "      class_label:", "        names:"]
            lines += [f"          {_quoted(str(label))}: {_quoted(class_name)}"
                      for label, class_name in enumerate(plan.class_names)]
        else:
            lines.append(f"    dtype: {feature['dtype']}")
    totals = manifest["totals"]
    lines += ["  splits:", "  - name: train", f"    num_bytes: {totals['bytes']}", f"    num_examples: {totals['images']}"]
    return lines


def _body(settings: JobSettings, manifest: dict) -> list[str]:
    plan, snapshot = settings.plan, manifest["snapshot"]
    meta = snapshot.get("meta") or {}
    data = meta.get("data") or {}
    shape = f"{meta.get('channels', '?')}x{meta.get('resolution', '?')}x{meta.get('resolution', '?')}"
    command = shlex.join(["genaug", *sys.argv[1:]]) if sys.argv and "genaug" in sys.argv[0] else "(the Python API)"
    where = f"`{DATA_DIR}/`" if plan.layout == "hub" and settings.format != "png" else "this folder"
    lines = [
        MARKER, "", "# Synthetic labelled images", "",
        f"{plan.n:,} class-conditional images ({shape}, uint8) in {manifest['totals']['shards']:,} "
        f"{settings.format} shards under {where}, made by `genaug synthesize`. Image i comes from "
        f"(seed {plan.seed}, i) alone.", "",
        "| | |", "| --- | --- |",
        f"| model | {meta.get('family', '?')} snapshot `{snapshot['path']}`, sha256 `{snapshot['sha256']}` |",
        f"| trained on | {data.get('description', '?')} (fingerprint `{str(data.get('fingerprint', '?'))[:16]}`), "
        f"{meta.get('steps', '?')} steps |",
        f"| seed | {plan.seed} |",
        f"| device | {settings.device} |",
        f"| command | `{command}` |",
        f"| check | `genaug verify <this folder>` re-hashes every shard against `manifest.json` |", "",
        "| class | label | images |", "| --- | --- | --- |",
    ]
    lines += [f"| {name.replace('|', chr(92) + '|')} | {label} | {count:,} |"
              for label, (name, count) in enumerate(zip(plan.class_names, manifest["totals"]["class_counts"]))]
    return lines
