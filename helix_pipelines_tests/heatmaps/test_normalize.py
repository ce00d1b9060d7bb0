from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helix_pipelines.contracts.heatmaps import (
    CANDLES_SCHEMA,
    CELLS_SCHEMA,
    GRID_SCHEMA,
    PROFILE_SCHEMA,
    HeatmapRequest,
)
from helix_pipelines.heatmaps.normalize import normalize_payload, snapshot_id_for
from helix_pipelines.testing.payloads import T0, as_v3, encode, v4_document

REQUEST = HeatmapRequest("coin", "BTC", 2, "180d")
FETCHED_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def normalize(raw: bytes):
    return normalize_payload(raw, REQUEST, FETCHED_AT)


def test_v4_payload_normalizes_to_exact_cells_and_candles() -> None:
    snapshot = normalize(encode(v4_document()))

    assert snapshot.ledger.status == "loaded"
    assert snapshot.ledger.schema_variant == "v4"
    assert (snapshot.ledger.n_levels, snapshot.ledger.n_candles, snapshot.ledger.n_cells) == (
        5,
        4,
        5,
    )
    assert snapshot.ledger.source_update_time == datetime.fromtimestamp(T0 + 1200, UTC)
    assert snapshot.cells.schema == pl.Schema(GRID_SCHEMA)
    assert snapshot.levels.schema == pl.Schema(PROFILE_SCHEMA)
    assert snapshot.candles.schema == pl.Schema(CANDLES_SCHEMA)
    ts = [datetime.fromtimestamp(T0 + i * 300, UTC) for i in range(4)]
    assert snapshot.cells.select("candle_ts", "price", "liq_usd").rows() == [
        (ts[0], 100.0, 1000.5),
        (ts[0], 110.0, 250.0),
        (ts[1], 102.5, 99.75),
        (ts[3], 101.0, 0.0),
        (ts[2], 104.0, 123456.78),
    ]
    # One row per level with cells, ascending; live is the last column (x = 3) only.
    assert snapshot.levels.rows() == [
        (100.0, 1, 1000.5, 0.0),
        (101.0, 1, 0.0, 0.0),
        (102.5, 1, 99.75, 0.0),
        (104.0, 1, 123456.78, 0.0),
        (110.0, 1, 250.0, 0.0),
    ]
    keyed = snapshot.keyed(snapshot.cells)
    assert keyed.schema == pl.Schema(CELLS_SCHEMA)
    assert set(keyed["snapshot_id"]) == {snapshot.ledger.snapshot_id}
    assert set(keyed["symbol"]) == {"BTC"}
    assert set(keyed["model"]) == {2}
    assert snapshot.candles.row(1) == (
        "coin",
        "",
        "BTC",
        "180d",
        ts[1],
        102.0,
        104.0,
        101.0,
        103.0,
        1500000.5,
    )


def test_v3_key_set_normalizes_to_exactly_the_v4_frames() -> None:
    document = v4_document()
    v4 = normalize(encode(document))
    v3 = normalize(encode(as_v3(document)))

    assert v3.ledger.status == "loaded"
    assert v3.ledger.schema_variant == "v3"
    assert v3.candles.equals(v4.candles)
    # Only the snapshot id differs: it is derived from the (different) payload bytes.
    assert v3.cells.equals(v4.cells)
    assert v3.levels.equals(v4.levels)


def test_fast_and_general_parse_paths_agree() -> None:
    document = v4_document()
    compact = normalize(encode(document))
    pretty = normalize(json.dumps(document, indent=2).encode())

    assert pretty.ledger.status == "loaded"
    assert pretty.cells.equals(compact.cells)
    assert pretty.levels.equals(compact.levels)
    assert pretty.candles.equals(compact.candles)


def test_snapshot_id_depends_on_key_and_payload_only() -> None:
    raw = encode(v4_document())
    first = normalize_payload(raw, REQUEST, FETCHED_AT)
    later = normalize_payload(raw, REQUEST, datetime(2027, 1, 1, tzinfo=UTC))
    other_model = normalize_payload(raw, HeatmapRequest("coin", "BTC", 3, "180d"), FETCHED_AT)

    assert first.ledger.snapshot_id == later.ledger.snapshot_id
    assert first.ledger.snapshot_id != other_model.ledger.snapshot_id
    assert first.ledger.snapshot_id == snapshot_id_for(REQUEST, first.ledger.payload_sha256)


def test_empty_cell_list_is_a_valid_snapshot_without_cells() -> None:
    snapshot = normalize(encode(v4_document(cells=[])))
    assert snapshot.ledger.status == "loaded"
    assert snapshot.ledger.n_cells == 0
    assert snapshot.cells.height == 0
    assert snapshot.candles.height == 4


def test_v4_ledger_records_what_the_payload_said() -> None:
    ledger = normalize(encode(v4_document())).ledger
    assert ledger.x_columns == 4
    assert ledger.x_axis == "candles"
    assert ledger.candle_ts_unit == "s"
    assert ledger.first_candle_ts == datetime.fromtimestamp(T0, UTC)
    assert ledger.last_candle_ts == datetime.fromtimestamp(T0 + 900, UTC)
    assert ledger.source_extra is None


def test_leading_empty_columns_are_an_ordinary_payload() -> None:
    """docs/real-apis.md: the first Model 2 legacy cells seen started at x = 5."""
    document = v4_document(n_candles=8, cells=[[5, 0, 1081080.0], [6, 0, 2006640.0], [7, 3, 5.5]])
    snapshot = normalize(encode(document))
    assert snapshot.loaded
    assert snapshot.ledger.x_axis == "candles"
    assert snapshot.cells["x_index"].to_list() == [5, 6, 7]
    assert snapshot.cells["candle_ts"].to_list() == [
        datetime.fromtimestamp(T0 + x * 300, UTC) for x in (5, 6, 7)
    ]


def test_an_x_axis_past_the_candles_is_kept_loud_and_without_guessed_times() -> None:
    """Real Model 3: 111,476 cells over 396 levels need >= 282 columns, with 144 candles."""
    cells = [[x, x % 5, 10.0 + x] for x in range(0, 10)]
    snapshot = normalize(encode(v4_document(n_candles=4, cells=cells)))
    assert snapshot.loaded
    assert snapshot.ledger.x_axis == "beyond_candles"
    assert (snapshot.ledger.x_columns, snapshot.ledger.n_candles) == (10, 4)
    assert snapshot.cells.height == 10
    assert snapshot.cells["x_index"].to_list() == list(range(10))
    assert snapshot.cells["candle_ts"].null_count() == 10
    assert snapshot.cells["liq_usd"].sum() == sum(10.0 + x for x in range(10))
    assert snapshot.candles.height == 4  # the candles themselves are still the market's
    # The live profile is still the last column (x = 9, level 9 % 5 = 4), candle or not.
    assert snapshot.levels["live_usd"].to_list() == [0.0, 0.0, 0.0, 0.0, 19.0]
    assert snapshot.levels["cells"].to_list() == [2, 2, 2, 2, 2]


def test_candle_timestamps_in_milliseconds_give_the_same_frames() -> None:
    seconds = v4_document()
    millis = v4_document()
    for candle in millis["data"]["price_candlesticks"]:
        candle[0] *= 1000
    s, ms = normalize(encode(seconds)), normalize(encode(millis))
    assert (s.ledger.candle_ts_unit, ms.ledger.candle_ts_unit) == ("s", "ms")
    assert ms.candles.equals(s.candles)
    assert ms.cells.equals(s.cells)


@pytest.mark.parametrize(
    ("update_time", "expected"),
    [
        ((T0 + 1200) * 1000, datetime.fromtimestamp(T0 + 1200, UTC)),
        (T0 + 1200, datetime.fromtimestamp(T0 + 1200, UTC)),
        (12345, None),
        ("soon", None),
    ],
)
def test_update_time_unit_is_told_by_magnitude(update_time: object, expected: object) -> None:
    document = v4_document()
    document["data"]["update_time"] = update_time
    snapshot = normalize(encode(document))
    assert snapshot.loaded
    assert snapshot.ledger.source_update_time == expected


def test_legacy_model2_keys_are_kept_in_the_ledger() -> None:
    document = as_v3(v4_document())
    data = document["data"]
    del data["update_time"]
    data.update(
        precision=2, rangeLow=63034.92, rangeHigh=168876.74, instrument={"exName": "Binance"}
    )
    ledger = normalize(encode(document)).ledger
    assert ledger.schema_variant == "v3"
    assert ledger.source_update_time is None
    assert json.loads(ledger.source_extra or "") == {
        "instrument": {"exName": "Binance"},
        "precision": 2,
        "rangeHigh": 168876.74,
        "rangeLow": 63034.92,
    }


def _with(document: dict, **changes) -> bytes:
    data = document["data"]
    for key, value in changes.items():
        if key in ("code", "msg", "data"):
            document[key] = value
        else:
            data[key] = value
    return encode(document)


def _candles_with(field_index: int, value: object) -> list:
    candles = v4_document()["data"]["price_candlesticks"]
    candles[2][field_index] = value
    return candles


QUARANTINE_CASES = {
    "truncated JSON": (encode(v4_document())[:-40], "not valid JSON"),
    "code other than 0": (_with(v4_document(), code="40001", msg="plan too low"), "code '40001'"),
    "code as number": (_with(v4_document(), code=500), "code '500'"),
    "empty data object": (_with(v4_document(), data={}), "'data' is empty"),
    "null data": (_with(v4_document(), data=None), "'data' is empty"),
    "x index past any plausible column": (
        _with(v4_document(), liquidation_leverage_data=[[0, 0, 1.0], [64, 1, 2.0]]),
        "x (column index) at cell 1 is 64.0, outside 0..63",
    ),
    "y index out of range": (
        _with(v4_document(), liquidation_leverage_data=[[0, 5, 1.0]]),
        "y (price-level index) at cell 0 is 5.0",
    ),
    "negative x index": (
        _with(v4_document(), liquidation_leverage_data=[[-1, 0, 1.0]]),
        "x (column index) at cell 0 is -1.0",
    ),
    "fractional index": (
        _with(v4_document(), liquidation_leverage_data=[[0.5, 0, 1.0]]),
        "x (column index) at cell 0 is 0.5",
    ),
    "negative value": (
        _with(v4_document(), liquidation_leverage_data=[[0, 0, 1.0], [1, 1, -5.0]]),
        "[1] value -5.0 is negative or not finite",
    ),
    "NaN value (literal)": (
        b'{"code":"0","msg":"","data":{"y_axis":[1.0,2.0],"liquidation_leverage_data":[[0,0,NaN]],'
        b'"price_candlesticks":[[1763000000,"1","2","0.5","1.5","10"]]}}',
        "not finite",
    ),
    "NaN value (string)": (
        _with(v4_document(), liquidation_leverage_data=[[0, 0, "NaN"]]),
        "not finite",
    ),
    "null value": (
        _with(v4_document(), liquidation_leverage_data=[[0, 0, None]]),
        "not finite",
    ),
    "non-increasing price levels": (
        _with(v4_document(), y_axis=[100.0, 101.0, 101.0, 104.0, 110.0]),
        "not strictly increasing: [1] = 101.0 then [2] = 101.0",
    ),
    "decreasing price levels": (
        _with(v4_document(), y_axis=[100.0, 99.0, 102.5, 104.0, 110.0]),
        "not strictly increasing",
    ),
    "unparseable candle field": (
        _with(v4_document(), price_candlesticks=_candles_with(3, "abc")),
        "price_candlesticks[2] field 'low' is unparseable: 'abc'",
    ),
    "candle with missing field": (
        _with(v4_document(), price_candlesticks=[[T0, "1", "2", "0.5", "1.5"]]),
        "is not a 6-field candle",
    ),
    "one candle timestamp in milliseconds among seconds": (
        _with(v4_document(), price_candlesticks=_candles_with(0, (T0 + 600) * 1000)),
        "timestamps mix seconds and milliseconds",
    ),
    "candle timestamp neither seconds nor milliseconds": (
        _with(v4_document(), price_candlesticks=_candles_with(0, 12345)),
        "price_candlesticks[2] ts 12345 is neither epoch seconds nor milliseconds",
    ),
    "candle timestamps out of order": (
        _with(v4_document(), price_candlesticks=_candles_with(0, T0)),
        "timestamps are not strictly increasing",
    ),
    "cells not triples": (
        _with(v4_document(), liquidation_leverage_data=[[0, 0, 1.0, 7], [1, 1, 2.0, 8]]),
        "not a list of [x, y, value] number triples",
    ),
    "unknown key set": (_with(v4_document(), data={"rows": [1]}), "neither key set"),
    "v3 key set with a key missing": (
        encode({"code": "0", "data": {"y": [1.0], "liq": []}}),
        "v3 key set is missing ['prices']",
    ),
    "not an object": (b"[1, 2, 3]", "not an object"),
}


@pytest.mark.parametrize("case", list(QUARANTINE_CASES), ids=list(QUARANTINE_CASES))
def test_bad_payloads_are_quarantined_with_a_reason(case: str) -> None:
    raw, expected_reason = QUARANTINE_CASES[case]
    snapshot = normalize(raw)

    assert snapshot.quarantined
    assert expected_reason in (snapshot.ledger.reason or "")
    assert snapshot.cells.height == 0
    assert snapshot.candles.height == 0
    assert snapshot.ledger.payload_sha256  # the bytes stay identifiable


@st.composite
def corrupted_payloads(draw: st.DrawFn) -> bytes:
    """A valid payload with one part replaced by arbitrary JSON, or its bytes cut or flipped."""
    document = v4_document()
    target = draw(
        st.sampled_from(
            ["y_axis", "liquidation_leverage_data", "price_candlesticks", "cell", "candle", "bytes"]
        )
    )
    junk = st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False)
        | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=8,
    )
    data = document["data"]
    if target in ("y_axis", "liquidation_leverage_data", "price_candlesticks"):
        data[target] = draw(junk)
    elif target == "cell":
        data["liquidation_leverage_data"][draw(st.integers(0, 4))] = draw(junk)
    elif target == "candle":
        data["price_candlesticks"][draw(st.integers(0, 3))][draw(st.integers(0, 5))] = draw(junk)
    raw = orjson.dumps(document)
    if target == "bytes":
        cut = draw(st.integers(0, len(raw) - 1))
        raw = raw[:cut] + draw(st.binary(max_size=3)) + raw[cut + 1 :]
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_payloads())
def test_any_corruption_is_quarantined_or_loads_a_valid_snapshot(raw: bytes) -> None:
    snapshot = normalize(raw)  # never raises

    if snapshot.quarantined:
        assert snapshot.ledger.reason
        assert snapshot.cells.height == 0
        return
    cells, candles = snapshot.cells, snapshot.candles
    assert cells.height == snapshot.ledger.n_cells
    assert candles.height == snapshot.ledger.n_candles
    assert (cells["liq_usd"] >= 0).all()
    assert cells["liq_usd"].is_finite().all()
    assert (cells["price"] > 0).all()
    if snapshot.ledger.x_axis == "candles":
        assert set(cells["candle_ts"]).issubset(set(candles["ts"]))
    else:
        assert cells["candle_ts"].null_count() == cells.height
    assert (np.diff(candles["ts"].dt.epoch("s").to_numpy()) > 0).all()


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert normalize(raw).quarantined


def test_the_profile_of_a_real_size_payload_equals_one_recomputed_from_its_grid() -> None:
    """The warehouse keeps the profile instead of the grid, so the two must agree exactly."""
    from helix_pipelines.coinglass.synthetic import heatmap_payload, period_end_at
    from helix_pipelines.heatmaps.profile import profile_of_cells

    request = HeatmapRequest("coin", "ETH", 3, "12h")
    raw = heatmap_payload(request, period_end_at(request, 1_750_000_000))
    snapshot = normalize_payload(raw, request, FETCHED_AT)
    assert snapshot.ledger.n_cells > 100_000
    assert snapshot.levels.equals(profile_of_cells(snapshot.cells))
    assert snapshot.levels["cells"].sum() == snapshot.ledger.n_cells
    assert snapshot.levels.height <= snapshot.ledger.n_levels
    last = snapshot.cells["x_index"].max()
    live_total = snapshot.cells.filter(pl.col("x_index") == last)["liq_usd"].sum()
    assert snapshot.levels["live_usd"].sum() == pytest.approx(live_total, rel=1e-12)
