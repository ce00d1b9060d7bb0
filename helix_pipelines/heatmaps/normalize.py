"""Raw heatmap payload bytes -> the contract frames (cells, candles) and one ledger row.

Pure and vectorized: no per-cell Python loop. Both key sets normalize into one contract:
  v4 (documented): data.y_axis / data.liquidation_leverage_data / data.price_candlesticks
  v3 (alternate, observed for Model 2 on 180d and 1y): data.y / data.liq / data.prices

Every payload is validated in full. One that fails is never guessed at: the result is a ledger row
with status 'quarantined' and a reason naming what was wrong, and no cells or candles.

Speed: the cell array is 95% of a payload. When it has the compact form CoinGlass sends
(`[[x,y,v],[x,y,v],...]`), it is cut out of the bytes and parsed by polars' CSV reader while
orjson parses the small remainder. Anything else takes the general path (orjson for everything),
which is also the one that words the rejection reasons; both paths yield identical frames.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import polars as pl

from helix_pipelines.clock import from_epoch_ms
from helix_pipelines.coinglass.endpoints import HeatmapRequest
from helix_pipelines.heatmaps.contracts import (
    CANDLES_SCHEMA,
    CELLS_SCHEMA,
    UTC_TIME,
    LedgerRow,
    SchemaVariant,
    empty_candles,
    empty_cells,
)

KEY_SETS: dict[SchemaVariant, tuple[str, str, str]] = {
    "v4": ("y_axis", "liquidation_leverage_data", "price_candlesticks"),
    "v3": ("y", "liq", "prices"),
}
_CELL_KEYS = {"v4": b'"liquidation_leverage_data":', "v3": b'"liq":'}
_CANDLE_FIELDS = ("ts", "open", "high", "low", "close", "volume_usd")
# Candle timestamps are epoch seconds; outside 2009..2100 they are not (milliseconds, garbage).
_TS_MIN, _TS_MAX = 1_230_768_000, 4_102_444_800
_US = 1_000_000


class PayloadValidationError(ValueError):
    """A payload failed validation; the message is the quarantine reason."""


@dataclass(frozen=True, slots=True)
class NormalizedSnapshot:
    """One fetched heatmap: its ledger row and, when loaded, its cells and candles."""

    ledger: LedgerRow
    cells: pl.DataFrame
    candles: pl.DataFrame

    @property
    def quarantined(self) -> bool:
        return self.ledger.status == "quarantined"


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
        return NormalizedSnapshot(ledger, empty_cells(), empty_candles())
    ledger = _ledger(
        request,
        snapshot_id,
        sha,
        fetched_at,
        status="loaded",
        variant=variant,
        counts=(len(parsed.levels), len(parsed.candle_ts), len(parsed.cell_x)),
        update_time=parsed.update_time,
    )
    return NormalizedSnapshot(
        ledger,
        _cells_frame(parsed, request, snapshot_id, fetched_at),
        _candles_frame(parsed, request),
    )


@dataclass(frozen=True, slots=True)
class _Parsed:
    levels: np.ndarray  # float64, strictly increasing
    candle_ts: np.ndarray  # int64 epoch seconds, strictly increasing
    ohlcv: np.ndarray  # float64 (n_candles, 5)
    cell_x: np.ndarray  # int64 candle index
    cell_y: np.ndarray  # int64 level index
    cell_value: np.ndarray  # float64 USD
    update_time: datetime | None


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
    levels = _levels(data[levels_key], levels_key)
    candle_ts, ohlcv = _candles(data[candles_key], candles_key)
    cells = fast_cells if fast_cells is not None else _cells(data[cells_key], cells_key)
    x, y, value = cells[:, 0], cells[:, 1], cells[:, 2]
    _check_index(x, len(candle_ts), f"{cells_key} x (candle index)", candles_key)
    _check_index(y, len(levels), f"{cells_key} y (price-level index)", levels_key)
    bad = ~np.isfinite(value) | (value < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise PayloadValidationError(
            f"{cells_key}[{i}] value {float(value[i])} is negative or not finite"
        )
    return _Parsed(
        levels=levels,
        candle_ts=candle_ts,
        ohlcv=ohlcv,
        cell_x=x.astype(np.int64),
        cell_y=y.astype(np.int64),
        cell_value=value,
        update_time=_update_time(data.get("update_time")),
    )


def _levels(raw_levels: Any, key: str) -> np.ndarray:
    if not isinstance(raw_levels, list) or not raw_levels:
        raise PayloadValidationError(f"{key} must be a non-empty list of price levels")
    try:
        levels = np.array(raw_levels, dtype=np.float64)
    except (TypeError, ValueError):
        raise PayloadValidationError(f"{key} holds values that are not numbers") from None
    if levels.ndim != 1:
        raise PayloadValidationError(f"{key} must be a flat list of numbers")
    bad = ~np.isfinite(levels) | (levels <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise PayloadValidationError(
            f"{key}[{i}] = {float(levels[i])} is not a positive finite price"
        )
    steps = np.diff(levels)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0)) + 1
        raise PayloadValidationError(
            f"{key} is not strictly increasing: [{i - 1}] = {levels[i - 1]} then [{i}] = {levels[i]}"
        )
    return levels


def _candles(rows: Any, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Candle rows `[ts_seconds, open, high, low, close, volume_usd]` with OHLCV as strings."""
    if not isinstance(rows, list) or not rows:
        raise PayloadValidationError(f"{key} must be a non-empty list of candles")
    for i, row in enumerate(rows):  # one check per candle (hundreds), not per cell
        if not isinstance(row, list) or len(row) != 6:
            raise PayloadValidationError(f"{key}[{i}] is not a 6-field candle: {str(row)[:80]}")
    try:
        table = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise PayloadValidationError(_first_unparseable_candle(rows, key)) from None
    bad = ~np.isfinite(table)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise PayloadValidationError(
            f"{key}[{i}] field '{_CANDLE_FIELDS[j]}' is not a finite number"
        )
    ts = table[:, 0]
    if (ts != np.floor(ts)).any() or (ts < _TS_MIN).any() or (ts > _TS_MAX).any():
        i = int(np.argmax((ts != np.floor(ts)) | (ts < _TS_MIN) | (ts > _TS_MAX)))
        raise PayloadValidationError(f"{key}[{i}] ts {rows[i][0]!r} is not epoch seconds")
    if (np.diff(ts) <= 0).any():
        i = int(np.argmax(np.diff(ts) <= 0)) + 1
        raise PayloadValidationError(f"{key} timestamps are not strictly increasing at [{i}]")
    return ts.astype(np.int64), table[:, 1:]


def _first_unparseable_candle(rows: list[Any], key: str) -> str:
    for i, row in enumerate(rows):
        for j, field in enumerate(row):
            try:
                float(field)
            except (TypeError, ValueError):
                return f"{key}[{i}] field '{_CANDLE_FIELDS[j]}' is unparseable: {str(field)[:40]!r}"
    return f"{key} holds fields that are not numbers"


def _cells(raw_cells: Any, key: str) -> np.ndarray:
    if not isinstance(raw_cells, list):
        raise PayloadValidationError(f"{key} must be a list of [x, y, value] cells")
    if not raw_cells:
        return np.empty((0, 3), dtype=np.float64)
    try:
        cells = np.array(raw_cells, dtype=np.float64)
    except (TypeError, ValueError):
        raise PayloadValidationError(
            f"{key} is not a list of [x, y, value] number triples"
        ) from None
    if cells.ndim != 2 or cells.shape[1] != 3:
        raise PayloadValidationError(f"{key} is not a list of [x, y, value] number triples")
    return cells


def _check_index(index: np.ndarray, size: int, what: str, target: str) -> None:
    bad = ~np.isfinite(index) | (index != np.floor(index)) | (index < 0) | (index >= size)
    if bad.any():
        i = int(np.argmax(bad))
        raise PayloadValidationError(
            f"{what} at cell {i} is {float(index[i])}, outside 0..{size - 1} of {target}"
        )


def _update_time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return from_epoch_ms(int(value))


def _ledger(
    request: HeatmapRequest,
    snapshot_id: str,
    sha: str,
    fetched_at: datetime,
    *,
    status: str,
    reason: str | None = None,
    variant: SchemaVariant | None = None,
    counts: tuple[int, int, int] | None = None,
    update_time: datetime | None = None,
) -> LedgerRow:
    n_levels, n_candles, n_cells = counts if counts else (None, None, None)
    return LedgerRow(
        snapshot_id=snapshot_id,
        fetched_at=fetched_at,
        scope=request.scope,
        exchange=request.exchange,
        symbol=request.symbol,
        model=request.model,
        range=request.range,
        schema_variant=variant,
        n_levels=n_levels,
        n_candles=n_candles,
        n_cells=n_cells,
        payload_sha256=sha,
        source_update_time=update_time,
        status=status,  # type: ignore[arg-type]
        reason=reason,
    )


def _utc_from_seconds(seconds: np.ndarray) -> pl.Series:
    return pl.Series(seconds * _US, dtype=pl.Int64).cast(UTC_TIME)


def _cells_frame(
    parsed: _Parsed, request: HeatmapRequest, snapshot_id: str, fetched_at: datetime
) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "candle_ts": _utc_from_seconds(parsed.candle_ts[parsed.cell_x]),
            "price": parsed.levels[parsed.cell_y],
            "liq_usd": parsed.cell_value,
        }
    )
    return frame.select(
        pl.lit(snapshot_id, CELLS_SCHEMA["snapshot_id"]).alias("snapshot_id"),
        pl.lit(fetched_at, UTC_TIME).alias("fetched_at"),
        *_key_literals(request, with_model=True),
        "candle_ts",
        "price",
        "liq_usd",
    )


def _candles_frame(parsed: _Parsed, request: HeatmapRequest) -> pl.DataFrame:
    ohlcv = parsed.ohlcv
    frame = pl.DataFrame(
        {
            "ts": _utc_from_seconds(parsed.candle_ts),
            **{name: ohlcv[:, i] for i, name in enumerate(_CANDLE_FIELDS[1:])},
        }
    )
    return frame.select(*_key_literals(request, with_model=False), *_CANDLE_FIELDS).cast(
        CANDLES_SCHEMA  # type: ignore[arg-type]
    )


def _key_literals(request: HeatmapRequest, *, with_model: bool) -> list[pl.Expr]:
    literals = [
        pl.lit(request.scope, pl.String).alias("scope"),
        pl.lit(request.exchange, pl.String).alias("exchange"),
        pl.lit(request.symbol, pl.String).alias("symbol"),
    ]
    if with_model:
        literals.append(pl.lit(request.model, pl.Int16).alias("model"))
    literals.append(pl.lit(request.range, pl.String).alias("range"))
    return literals
