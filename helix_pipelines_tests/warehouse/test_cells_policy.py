from __future__ import annotations

import pytest

from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.warehouse.cells_policy import CellsPolicy


def test_text_names_series_with_wildcards() -> None:
    assert CellsPolicy.parse(None).series == frozenset()
    assert CellsPolicy.parse("none").describe() == "none"
    assert len(CellsPolicy.parse("all").series) == len(MODELS) * len(RANGES)
    assert CellsPolicy.parse("ALL").describe() == "all"
    model3 = CellsPolicy.parse("3/*")
    assert model3.series == {(3, r) for r in RANGES}
    assert CellsPolicy.parse("*/12h").series == {(m, "12h") for m in MODELS}
    some = CellsPolicy.parse(" 3/24h , 1/12h,3/12h ")
    assert some.keeps(3, "24h")
    assert some.keeps(1, "12h")
    assert not some.keeps(2, "12h")
    assert some.describe() == "1/12h,3/12h,3/24h"  # models, then ranges in their own order
    assert CellsPolicy.parse(some.describe()) == some


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3", "is not model/range"),
        ("4/12h", "names no model"),
        ("x/12h", "names no model"),
        ("3/1d", "names no range"),
    ],
)
def test_bad_text_names_the_item(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CellsPolicy.parse(text)


def test_retention_must_be_a_positive_number_of_days() -> None:
    assert CellsPolicy.parse("all", None).retention_days is None
    with pytest.raises(ValueError, match="at least 1 day"):
        CellsPolicy.parse("all", 0)
