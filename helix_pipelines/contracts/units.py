"""Durations as people read them, the same in every table, schedule and log line."""

from __future__ import annotations


def duration_text(seconds: float | None) -> str:
    """`45 s`, `15 min`, `1.5 h`, `24 h`, `2.5 d`; `-` for None. Whole units stay whole
    (`every 24 h`, not `every 1440 min`)."""
    if seconds is None:
        return "-"
    for size, unit, upto in ((1, "s", 120), (60, "min", 120 * 60), (3600, "h", 48 * 3600)):
        if seconds < upto:
            return f"{_number(seconds / size)} {unit}"
    return f"{_number(seconds / 86400)} d"


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == round(value) else f"{value:.1f}"
