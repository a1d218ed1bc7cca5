"""The README.md dataset card at an output's root (`synthesize --card`): what the Hugging Face Hub shows.

Its YAML header names the Parquet shards (`configs`) and, for the parquet format, the features with
the ClassLabel names; its text says which model, data, seed and command made the images. It is
written just after the manifest, which alone vouches for the images: `verify` does not hash the
card. A README.md without the marker line (the header's first comment) is the user's: genaug never
writes over it or deletes it; one with the marker is genaug's, and a new run writes it afresh.
"""

from __future__ import annotations

import json
import re
import shlex
import sys

from gen_aug.output.encoding import huggingface_features
from gen_aug.output.formats import DATA_DIR
from gen_aug.output.settings import JobSettings
from gen_aug.output.storage import Location

CARD = "README.md"
MARKER = "# genaug dataset card: written by genaug synthesize (_manifest.json vouches for the images)"
# Cards in outputs written before the manifest's name began with '_' are genaug's too.
_STARTS = tuple(f"---\n{marker}\n".encode() for marker in (MARKER, MARKER.replace("_manifest", "manifest")))
# Characters a YAML reader refuses or changes even inside double quotes (DEL, C1 controls, line and
# paragraph separators, BOM), which JSON leaves as they are.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff]")
MAX_CARD_BYTES = 16 * 2**20  # a README.md larger than this is no card of genaug's (one line per class)
_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


def is_genaug_card(location: Location) -> bool:
    """Whether the output's README.md is a card genaug wrote (it starts with the marker), not the user's file."""
    try:
        return location.exists(CARD) and location.read(CARD, MAX_CARD_BYTES).startswith(_STARTS)
    except OSError:
        return False


def may_write_card(location: Location) -> bool:
    """A card is written where there is no README.md, or over genaug's own; never over the user's."""
    return not location.exists(CARD) or is_genaug_card(location)


def dataset_card(settings: JobSettings, manifest: dict) -> str:
    """The card's text for a finished output described by `manifest`."""
    header = [MARKER, *_header(settings, manifest)]
    return "---\n" + "\n".join(header) + "\n---\n" + "\n".join(_body(settings, manifest)) + "\n"


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar of any text: JSON's escapes, and \\uXXXX for what YAML would not keep."""
    return _YAML_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", json.dumps(text, ensure_ascii=False))


def _cell(text: object) -> str:
    """Text for a Markdown table cell: no '|' to split it, no newline to end the row."""
    return " ".join(str(text).split()).replace("|", "\\|")


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
    for name, feature in huggingface_features(plan.class_names, settings.extra_columns()).items():
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
    lines += ["  splits:", "  - name: train", f"    num_examples: {totals['images']}",
              f"  download_size: {totals['bytes']}"]  # the files' bytes (num_bytes would be Arrow's in memory)
    return lines


def _body(settings: JobSettings, manifest: dict) -> list[str]:
    plan, snapshot = settings.plan, manifest["snapshot"]
    meta = snapshot.get("meta") or {}
    data = meta.get("data") or {}
    shape = f"{meta.get('channels', '?')}x{meta.get('resolution', '?')}x{meta.get('resolution', '?')}"
    # The command as given, less any user:password@ in a URI: the card is meant to be published.
    command = shlex.join(["genaug", *sys.argv[1:]]) if sys.argv and "genaug" in sys.argv[0] else "(the Python API)"
    command = _CREDENTIALS.sub(r"\1", command)
    where = f"`{DATA_DIR}/`" if plan.layout == "hub" and settings.format != "png" else "this folder"
    origin = f"Image i comes from (seed {plan.seed}, i) alone."
    if settings.filter is not None and settings.filter.select == "useful":
        origin = (f"Image i is, of the latents (seed {plan.seed}, i, i + n, ...) in rounds of "
                  f"{settings.filter.candidates_per_round}, the one the judge is least sure of among those it labels "
                  "right and finds within the class's real spread (its `latent_index` column).")
    elif settings.filter is not None:
        origin = (f"Image i is the first latent of (seed {plan.seed}, i, i + n, ...) that the judge is "
                  f"{settings.filter.min_confidence:g} sure of (its `latent_index` column).")
    if settings.variants is not None:
        variants = settings.variants
        under = "another class than its own" if variants.mix_classes else "its class"
        if variants.mix_pairs:
            names = plan.class_names
            under += " (" + ", ".join(f"{names[i]} under {names[j]}" for i, j in variants.mix_pairs) + ")"
        origin = (f"Each is a variant of a real image of {_cell(variants.data)} (sha256 `{variants.data_sha256[:16]}`), "
                  f"noised and denoised under {under} at strength "
                  f"{', '.join(f'{s:g}' for s in variants.strengths)}, "
                  f"{variants.per_image} per image and strength; its `source_split`, `source_index`, `source_label`, "
                  "`variant` and `strength` columns say which.")
        if settings.filter is not None:
            origin += (f" Each is the variant the judge is least sure of, of {settings.filter.candidates_per_round} "
                       "at a time, among those it labels right and finds within the class's real spread.")
    lines = [
        "# Synthetic labelled images", "",
        f"{plan.n:,} class-conditional images ({shape}, uint8) in {manifest['totals']['shards']:,} "
        f"{settings.format} shards under {where}, made by `genaug synthesize`. {origin}", "",
        "| | |", "| --- | --- |",
        f"| model | {_cell(meta.get('family', '?'))} snapshot `{_cell(snapshot['path'])}`, sha256 "
        f"`{snapshot['sha256']}` |",
        f"| trained on | {_cell(data.get('description', '?'))} (fingerprint "
        f"`{_cell(str(data.get('fingerprint', '?'))[:16])}`), {_cell(meta.get('steps', '?'))} steps |",
        f"| seed | {plan.seed} |",
        f"| device | {settings.device} |",
        f"| command | `{_cell(command)}` |",
        "| check | `genaug verify <this folder>` re-hashes every shard against `_manifest.json` |", "",
        "| class | label | images |", "| --- | --- | --- |",
    ]
    lines += [f"| {_cell(name)} | {label} | {count:,} |"
              for label, (name, count) in enumerate(zip(plan.class_names, manifest["totals"]["class_counts"]))]
    return lines
