"""Quantities in the words a person reads at a glance: durations for estimates and summaries."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """'45 s', '12 min', '2.5 h': the unit that keeps the number short, rounded as an estimate should be."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
