"""The trade signal: one planned trade, the one shape every layer passes.

Analytics build it from a risk-checked plan, the warehouse stores it as a `trade_signals` row,
the bus carries it as JSON, the executor trades it. `schema_version` says which shape a stored
or published signal has: a reader meets an unknown version with `UnknownSchemaVersion` (the
stream consumer dead-letters it) instead of guessing. `signal_id` is deterministic (strategy,
symbol, side, input snapshots), so recomputing never duplicates a signal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl

from helix_pipelines.contracts.columns import schema_of
from helix_pipelines.contracts.vocabulary import SIDES, Side

SIGNAL_SCHEMA_VERSION = 2
"""2 added the radar fields (all optional); a version 1 signal reads with them unset."""
SUPPORTED_SCHEMA_VERSIONS = frozenset({1, SIGNAL_SCHEMA_VERSION})


class InvalidSignal(ValueError):  # noqa: N818 - reads as what it is: an invalid signal
    """A signal that cannot be traded as given (missing or inconsistent fields)."""


class UnknownSchemaVersion(InvalidSignal):
    """A signal of a schema version this code does not know: never guessed at."""


@dataclass(frozen=True, slots=True)
class TradeSignal:
    """One sized, leveraged trade with its provenance.

    Prices are in quote units (USD), `qty` in coins (what CoinGlass calls the symbol); the
    executor converts to the venue instrument's units. `risk_usd` is the loss at the stop,
    `liquidation_price` the isolated-margin estimate at `leverage`.
    """

    signal_id: str
    schema_version: int
    strategy_version: str
    created_at: datetime
    as_of: datetime
    symbol: str
    side: Side
    entry: float
    stop_loss: float
    take_profit: float
    reward_to_risk: float
    qty: float
    notional_usd: float
    leverage: int
    risk_usd: float
    risk_fraction: float
    liquidation_price: float
    consensus_score: float
    target_zone_id: str
    stop_zone_id: str
    # The radar entry of the symbol when the signal was made (None: made without a radar, or a
    # version 1 signal): what the hit rates by radar rank and tier are read by.
    radar_rank: int | None = None
    radar_decile: int | None = None
    radar_tier: str | None = None
    radar_score: float | None = None
    radar_imbalance: float | None = None
    radar_nearest_distance_pct: float | None = None

    def __post_init__(self) -> None:
        for name in ("signal_id", "symbol"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidSignal(f"signal {self.signal_id!r}: {name} must be non-empty text")
        if self.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
            raise UnknownSchemaVersion(
                f"signal {self.signal_id!r} has schema_version {self.schema_version!r}; "
                f"this build reads {sorted(SUPPORTED_SCHEMA_VERSIONS)}"
            )
        if self.side not in SIDES:
            raise InvalidSignal(
                f"signal {self.signal_id}: side must be long or short, got {self.side!r}"
            )
        numbers = (self.entry, self.stop_loss, self.take_profit, self.qty)
        if not all(math.isfinite(v) for v in numbers):
            raise InvalidSignal(f"signal {self.signal_id}: prices and qty must be finite")
        if not (self.qty > 0 and self.entry > 0 and self.leverage >= 1):
            raise InvalidSignal(
                f"signal {self.signal_id}: qty, entry and leverage must be positive"
            )
        below, above = (
            (self.stop_loss, self.take_profit)
            if self.side == "long"
            else (self.take_profit, self.stop_loss)
        )
        if not below < self.entry < above:
            raise InvalidSignal(
                f"signal {self.signal_id}: stop and target are not on both sides of entry"
            )
        for stamp in ("created_at", "as_of"):
            if getattr(self, stamp).tzinfo is None:
                raise InvalidSignal(f"signal {self.signal_id}: {stamp} must be timezone-aware")

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TradeSignal:
        """From a `trade_signals` row or a decoded message; InvalidSignal names what is wrong."""
        try:
            values = {
                f.name: _coerce(str(f.type), row[f.name])
                for f in fields(cls)
                if f.name in row or f.default is MISSING  # an optional field may be absent
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidSignal(f"signal {row.get('signal_id')!r} is malformed: {exc!r}") from None
        return cls(**values)

    @classmethod
    def from_message(cls, payload: bytes) -> TradeSignal:
        """From the JSON a stream entry carries."""
        try:
            decoded = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise InvalidSignal(f"signal payload is not JSON: {exc}") from None
        if not isinstance(decoded, dict):
            raise InvalidSignal(f"signal payload is a JSON {type(decoded).__name__}, not an object")
        return cls.from_row(decoded)

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    def to_message(self) -> bytes:
        """JSON with ISO-8601 UTC times and sorted keys (byte-stable for one signal)."""
        return orjson.dumps(self.to_row(), option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)


def _utc(value: object) -> datetime:
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _int(value: object) -> int:
    """An int as stored or sent: never a bool, a string or a fraction quietly truncated."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected an integer, got {value!r}")
    if value != int(value):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r}")
    return value


# Field types as written in the dataclass (annotations are strings here) -> how a stored or
# decoded value becomes one, strictly: a wrong type is an invalid signal, never a guess.
_COERCE: dict[str, Any] = {
    "int": _int,
    "float": _float,
    "str": _text,
    "Side": _text,
    "datetime": _utc,
}


def _coerce(type_name: str, value: object) -> object:
    """`value` as the field type `type_name`; an optional type (`T | None`) also takes None."""
    base, optional = type_name.removesuffix(" | None"), type_name.endswith(" | None")
    if optional and value is None:
        return None
    return _COERCE[base](value)


SIGNALS_SCHEMA = schema_of(TradeSignal)
"""`trade_signals`: one row per signal, the fields of TradeSignal in order."""


def signals_frame(signals: list[TradeSignal]) -> pl.DataFrame:
    return pl.DataFrame([s.to_row() for s in signals], schema=SIGNALS_SCHEMA)


def signals_from_frame(frame: pl.DataFrame) -> tuple[list[TradeSignal], dict[str, str]]:
    """The valid signals of a `trade_signals` frame, and why each other row is unreadable (by
    signal id): one bad row never hides the good ones."""
    signals, unreadable = [], {}
    for row in frame.iter_rows(named=True):
        try:
            signals.append(TradeSignal.from_row(row))
        except InvalidSignal as exc:
            unreadable[str(row.get("signal_id"))] = str(exc)
    return signals, unreadable
