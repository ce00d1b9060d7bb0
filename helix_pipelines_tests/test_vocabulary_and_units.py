from __future__ import annotations

import pytest

from helix_pipelines.contracts.units import duration_text
from helix_pipelines.contracts.vocabulary import RANGES, parse_series


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "0 s"),
        (45, "45 s"),
        (119.4, "119 s"),
        (120, "2 min"),
        (900, "15 min"),
        (5400, "90 min"),
        (7200, "2 h"),
        (5.5 * 3600, "5.5 h"),
        (86400, "24 h"),
        (2 * 86400, "2 d"),
        (3.5 * 86400, "3.5 d"),
    ],
)
def test_durations_read_in_whole_human_units(seconds: float | None, text: str) -> None:
    assert duration_text(seconds) == text


def test_series_are_parsed_once_each_ordered_by_model_then_range_length() -> None:
    assert parse_series("2/180d, 1/12h, 1|12h", "keys") == [(1, "12h"), (2, "180d")]
    assert parse_series("3/*", "keys") == [(3, r) for r in RANGES]
    assert parse_series("*/24h", "keys") == [(1, "24h"), (2, "24h"), (3, "24h")]
    assert len(parse_series("all", "keys")) == 24
    assert parse_series("none", "keys") == parse_series(None, "keys") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("12h", "keys: '12h' is not model/range"),
        ("4/12h", "keys: '4/12h' names no model of 1, 2, 3"),
        ("1/2d", "keys: '1/2d' names no range of 12h, 24h, 3d"),
    ],
)
def test_a_bad_item_is_named_in_the_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_series(text, "keys")
