"""Raw heatmap payload bytes -> the contract frames (cells, candles) and one ledger row.

Pure and vectorized: no per-cell Python loop. Both key sets normalize into one contract:
  v4 (documented): data.y_axis / data.liquidation_leverage_data / data.price_candlesticks
  v3 (alternate, observed for Model 2 on 180d and 1y): data.y / data.liq / data.prices

Every payload is validated in full (`heatmaps.validate`). One that fails is never guessed at:
the result is a ledger row with status 'quarantined' and a reason naming what was wrong, and no
cells or candles. What the payload said beyond the contract is kept on the ledger row: the unit
of its timestamps, whether its x axis names candles, and its extra keys as JSON.

Speed: the cell array is 95% of a payload. When it has the compact form CoinGlass sends
(`[[x,y,v],[x,y,v],...]`), it is cut out of the bytes and parsed by polars' CSV reader while
orjson parses the small remainder. Anything else takes the general path (orjson for everything),
which is also the one that words the rejection reasons; both paths yield identical frames.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import polars as pl

from helix_pipelines.contracts.columns import UTC_TIME
from helix_pipelines.contracts.heatmaps import (
    CANDLES_SCHEMA,
    GRID_SCHEMA,
    HeatmapRequest,
    LedgerRow,
    NormalizedSnapshot,
    SchemaVariant,
    SnapshotStatus,
    TimeUnit,
    XAxis,
    empty_candles,
    empty_cells,
    empty_profile,
)
from helix_pipelines.heatmaps import validate
from helix_pipelines.heatmaps.profile import price_level_profile
from helix_pipelines.heatmaps.validate import CANDLE_FIELDS, PayloadValidationError

KEY_SETS: dict[SchemaVariant, tuple[str, str, str]] = {
    "v4": ("y_axis", "liquidation_leverage_data", "price_candlesticks"),
    "v3": ("y", "liq", "prices"),
}
_CELL_KEYS = {"v4": b'"liquidation_leverage_data":', "v3": b'"liq":'}

__all__ = ["NormalizedSnapshot", "PayloadValidationError", "normalize_payload"]


def payload_sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def snapshot_id_for(request: HeatmapRequest, sha256: str) -> str:
    """Deterministic id of (heatmap key, payload): equal payloads of one key share one id."""
    key = "|".join(
        (request.scope, request.exchange, request.symbol, str(request.model), request.range, sha256)
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def normalize_payload(
    raw: bytes, request: HeatmapRequest, fetched_at: datetime, *, sha256: str | None = None
) -> NormalizedSnapshot:
    """Validate and normalize one payload. Never raises for bad input: it quarantines instead.

    `sha256` may pass the payload hash when the caller already computed it.
    """
    sha = sha256 or payload_sha256(raw)
    snapshot_id = snapshot_id_for(request, sha)
    try:
        variant, data, fast_cells = _parse(raw)
        parsed = _validate(variant, data, fast_cells)
    except PayloadValidationError as rejected:
        ledger = _ledger(
            request, snapshot_id, sha, fetched_at, status="quarantined", reason=str(rejected)
        )
        return NormalizedSnapshot(ledger, empty_cells(), empty_profile(), empty_candles())
    ledger = _ledger(request, snapshot_id, sha, fetched_at, status="loaded", parsed=parsed)
    return NormalizedSnapshot(
        ledger,
        _cells_frame(parsed),
        price_level_profile(parsed.levels, parsed.cell_x, parsed.cell_y, parsed.cell_value),
        _candles_frame(parsed, request),
    )


def unavailable_snapshot(
    request: HeatmapRequest, raw: bytes, fetched_at: datetime, reason: str
) -> NormalizedSnapshot:
    """The ledger row of a key CoinGlass has no data for: no cells, no candles, not a failure.

    Its id includes the fetch time, so each time the key is found unavailable is recorded and
    the skip window (`ingest`) always runs from the latest answer.
    """
    sha = payload_sha256(raw)
    snapshot_id = snapshot_id_for(request, f"{sha}|unavailable|{fetched_at.isoformat()}")
    ledger = _ledger(request, snapshot_id, sha, fetched_at, status="unavailable", reason=reason)
    return NormalizedSnapshot(ledger, empty_cells(), empty_profile(), empty_candles())


@dataclass(frozen=True, slots=True)
class _Parsed:
    variant: SchemaVariant
    levels: np.ndarray  # float64, strictly increasing
    candle_us: np.ndarray  # int64 epoch microseconds, strictly increasing
    candle_unit: TimeUnit
    ohlcv: np.ndarray  # float64 (n_candles, 5)
    cell_x: np.ndarray  # int64 column index, as served
    cell_y: np.ndarray  # int64 level index
    cell_value: np.ndarray  # float64 USD
    update_time: datetime | None
    source_extra: str | None

    @property
    def x_columns(self) -> int:
        return int(self.cell_x.max()) + 1 if len(self.cell_x) else 0

    @property
    def x_axis(self) -> XAxis:
        return "candles" if self.x_columns <= len(self.candle_us) else "beyond_candles"


def _parse(raw: bytes) -> tuple[SchemaVariant, dict[str, Any], np.ndarray | None]:
    """Envelope checks; returns the key-set variant, `data`, and the cells if the fast path took them."""
    rest, fast_cells = _split_cells(raw)
    try:
        envelope = orjson.loads(rest)
    except orjson.JSONDecodeError as exc:
        raise PayloadValidationError(f"payload is not valid JSON ({exc})") from None
    if not isinstance(envelope, dict):
        raise PayloadValidationError(f"payload is a JSON {type(envelope).__name__}, not an object")
    if "code" not in envelope:
        raise PayloadValidationError("payload has no 'code' field")
    code = str(envelope["code"])
    if code != "0":
        raise PayloadValidationError(
            f"CoinGlass answered code {code!r}: {str(envelope.get('msg', ''))[:200]}"
        )
    data = envelope.get("data")
    if not data:
        raise PayloadValidationError(f"'data' is empty ({data!r})")
    if not isinstance(data, dict):
        raise PayloadValidationError(f"'data' is a JSON {type(data).__name__}, not an object")
    for variant, keys in KEY_SETS.items():
        if keys[0] in data:
            missing = [k for k in keys if k not in data]
            if missing:
                raise PayloadValidationError(f"{variant} key set is missing {missing}")
            cells = fast_cells if fast_cells is not None and fast_cells[0] == variant else None
            return variant, data, cells[1] if cells else None
    raise PayloadValidationError(
        f"'data' has neither key set (v4 y_axis/..., v3 y/...): keys {sorted(data)[:10]}"
    )


def _split_cells(raw: bytes) -> tuple[bytes, tuple[SchemaVariant, np.ndarray] | None]:
    """Fast path: cut the compact cell array out of the bytes and parse it as CSV.

    Returns the bytes with that array replaced by `[]`, and the (variant, n x 3 array); or the
    bytes unchanged and None whenever the array is not in the exact compact numeric form.
    """
    for variant, key in _CELL_KEYS.items():
        start = raw.find(key)
        if start < 0:
            continue
        start += len(key)
        if raw[start : start + 2] != b"[[":
            return raw, None
        end = raw.find(b"]]", start)
        if end < 0:
            return raw, None
        body = raw[start + 2 : end].replace(b"],[", b"\n")
        try:
            frame = pl.read_csv(
                body,
                has_header=False,
                new_columns=["x", "y", "v"],
                schema_overrides={"x": pl.Float64, "y": pl.Float64, "v": pl.Float64},
            )
        except (pl.exceptions.PolarsError, ValueError):
            return raw, None
        if frame.width != 3 or frame.null_count().sum_horizontal().item() > 0:
            return raw, None
        return raw[:start] + b"[]" + raw[end + 2 :], (variant, frame.to_numpy())
    return raw, None


def _validate(
    variant: SchemaVariant, data: dict[str, Any], fast_cells: np.ndarray | None
) -> _Parsed:
    levels_key, cells_key, candles_key = KEY_SETS[variant]
    levels = validate.levels(data[levels_key], levels_key)
    candle_us, candle_unit, ohlcv = validate.candles(data[candles_key], candles_key)
    if fast_cells is None:
        fast_cells = validate.cell_triples(data[cells_key], cells_key)
    validate.check_cells(fast_cells, cells_key, len(levels), len(candle_us))
    return _Parsed(
        variant=variant,
        levels=levels,
        candle_us=candle_us,
        candle_unit=candle_unit,
        ohlcv=ohlcv,
        cell_x=fast_cells[:, 0].astype(np.int64),
        cell_y=fast_cells[:, 1].astype(np.int64),
        cell_value=fast_cells[:, 2],
        update_time=validate.update_time(data.get("update_time")),
        source_extra=validate.source_extra(data, (*KEY_SETS[variant], "update_time")),
    )


def _ledger(
    request: HeatmapRequest,
    snapshot_id: str,
    sha: str,
    fetched_at: datetime,
    *,
    status: SnapshotStatus,
    reason: str | None = None,
    parsed: _Parsed | None = None,
) -> LedgerRow:
    row = LedgerRow(
        snapshot_id=snapshot_id,
        fetched_at=fetched_at,
        scope=request.scope,
        exchange=request.exchange,
        symbol=request.symbol,
        model=request.model,
        range=request.range,
        schema_variant=None,
        n_levels=None,
        n_candles=None,
        n_cells=None,
        payload_sha256=sha,
        source_update_time=None,
        status=status,
        reason=reason,
    )
    if parsed is None:
        return row
    return replace(
        row,
        schema_variant=parsed.variant,
        n_levels=len(parsed.levels),
        n_candles=len(parsed.candle_us),
        n_cells=len(parsed.cell_x),
        source_update_time=parsed.update_time,
        x_columns=parsed.x_columns,
        x_axis=parsed.x_axis,
        candle_ts_unit=parsed.candle_unit,
        first_candle_ts=datetime.fromtimestamp(int(parsed.candle_us[0]) / 1e6, UTC),
        last_candle_ts=datetime.fromtimestamp(int(parsed.candle_us[-1]) / 1e6, UTC),
        source_extra=parsed.source_extra,
    )


def _utc_series(epoch_us: np.ndarray) -> pl.Series:
    return pl.Series(epoch_us, dtype=pl.Int64).cast(UTC_TIME)


def _cells_frame(parsed: _Parsed) -> pl.DataFrame:
    """The grid without its key columns (`GRID_SCHEMA`): the writers add them, so memory holds
    four columns per cell, not eleven."""
    if parsed.x_axis == "candles":
        candle_ts = _utc_series(parsed.candle_us[parsed.cell_x])
    else:  # x is no candle index here: no time is guessed for any cell of this snapshot
        candle_ts = pl.Series([None] * len(parsed.cell_x), dtype=UTC_TIME)
    return pl.DataFrame(
        {
            "candle_ts": candle_ts,
            "price": parsed.levels[parsed.cell_y],
            "liq_usd": parsed.cell_value,
            "x_index": pl.Series(parsed.cell_x, dtype=pl.Int32),
        },
        schema=GRID_SCHEMA,
    )


def _candles_frame(parsed: _Parsed, request: HeatmapRequest) -> pl.DataFrame:
    ohlcv = parsed.ohlcv
    frame = pl.DataFrame(
        {
            "ts": _utc_series(parsed.candle_us),
            **{name: ohlcv[:, i] for i, name in enumerate(CANDLE_FIELDS[1:])},
        }
    )
    return frame.select(*_key_literals(request), *CANDLE_FIELDS).cast(
        CANDLES_SCHEMA  # type: ignore[arg-type]
    )


def _key_literals(request: HeatmapRequest) -> list[pl.Expr]:
    return [
        pl.lit(request.scope, pl.String).alias("scope"),
        pl.lit(request.exchange, pl.String).alias("exchange"),
        pl.lit(request.symbol, pl.String).alias("symbol"),
        pl.lit(request.range, pl.String).alias("range"),
    ]
