"""One name per concept, one set of values per name, everywhere (code, SQL, docs, UI).

- `Side` is a trade's direction: a signal, an order, a position, a fill's position are `long`
  or `short`. The venue's `Buy` / `Sell` exist only inside the Bybit adapter.
- `LiquidatedSide` is whose positions a liquidation cluster would wipe out: `short` above the
  price (shorts are liquidated as price rises), `long` below. Same values, different concept,
  hence a different name (`liquidated_side` in the tables).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, get_args

MODELS: tuple[int, ...] = (1, 2, 3)
RANGES: tuple[str, ...] = ("12h", "24h", "3d", "7d", "30d", "90d", "180d", "1y")
"""Ordered by length, which is the order they are shown in (never alphabetical)."""
RANGE_HOURS: dict[str, int] = {
    "12h": 12, "24h": 24, "3d": 72, "7d": 168, "30d": 720, "90d": 2160, "180d": 4320, "1y": 8760,
}  # fmt: skip


def series_order(series: tuple[int, str]) -> tuple[int, int]:
    """Sort key of a (model, range): by model, then range by length."""
    return series[0], RANGES.index(series[1])


def parse_series(text: str | None, what: str) -> list[tuple[int, str]]:
    """(model, range) pairs from text like `3/12h,1/180d`, `3/*`, `*/24h`, `all` or `none`
    (also `3|12h`, Dagster's partition key), each once, by model then range length. `what`
    names the setting in errors."""
    text = (text or "none").strip().lower()
    if text == "none":
        return []
    if text == "all":
        text = "*/*"
    pairs = {pair for item in text.split(",") if item.strip() for pair in _items(item, what)}
    return sorted(pairs, key=series_order)


def _items(item: str, what: str) -> Iterator[tuple[int, str]]:
    item = item.strip()
    model, sep, range_ = item.replace("|", "/").partition("/")
    if not sep:
        raise ValueError(f"{what}: {item!r} is not model/range (e.g. 3/12h, 3/*)")
    if model != "*" and (not model.isdigit() or int(model) not in MODELS):
        raise ValueError(f"{what}: {item!r} names no model of {', '.join(map(str, MODELS))}")
    if range_ != "*" and range_ not in RANGES:
        raise ValueError(f"{what}: {item!r} names no range of {', '.join(RANGES)}")
    for m in MODELS if model == "*" else (int(model),):
        yield from ((m, r) for r in (RANGES if range_ == "*" else (range_,)))


Scope = Literal["coin", "pair"]
"""coin: aggregated over exchanges (exchange ''); pair: one exchange's instrument."""
SnapshotStatus = Literal["loaded", "quarantined", "unavailable"]
SchemaVariant = Literal["v4", "v3"]
XAxis = Literal["candles", "beyond_candles"]
"""How a snapshot's x indexes relate to its candles: each x names a candle, or x runs past the
candle list (so x is some other column index, and cells get no candle time)."""
TimeUnit = Literal["s", "ms"]

Side = Literal["long", "short"]
SIDES: tuple[Side, ...] = get_args(Side)
LiquidatedSide = Literal["long", "short"]
Profile = Literal["cumulative", "live"]

OrderStatus = Literal[
    "pending", "unconfirmed", "accepted", "deferred",
    "filled", "partially_filled", "cancelled", "rejected", "skipped", "not_placed",
]  # fmt: skip
"""`executor_orders.status`: pending (stored before the submit), unconfirmed (sent, not visible
at the venue yet), accepted (working at the venue), deferred (known not to have left); then
final: filled, partially_filled (the rest cancelled by the venue), cancelled (nothing filled),
rejected, skipped (a rule said no), not_placed (never reached the venue)."""
LOOKED_UP: tuple[OrderStatus, ...] = ("pending", "unconfirmed", "accepted")
"""Not settled at the venue: looked up by orderLinkId on redelivery and at start-up."""
IN_FLIGHT: tuple[OrderStatus, ...] = (*LOOKED_UP, "deferred")
"""A trade idea still on its way: a new signal for the same symbol waits."""

Action = Literal[
    "placed", "not_filled", "skipped", "duplicate", "rejected", "unconfirmed", "deferred"
]
"""What the executor did with a signal (`executor_decisions.action`):
placed       the venue has the order (filled, partly filled, or working)
not_filled   the venue cancelled the market order with nothing filled (no position)
skipped      a limit or rule said no (the reason says which); final
duplicate    the signal was handled before; nothing sent
rejected     the venue (or the instrument's rules) refused it; final
unconfirmed  sent, but not visible at the venue yet: looked up again on redelivery and start-up
deferred     known not to be at the venue (rate limit, network error before the order left):
             decided afresh on redelivery
"""
UNSETTLED_ACTIONS: frozenset[Action] = frozenset({"unconfirmed", "deferred"})

ExecutorMode = Literal["paper", "testnet", "demo", "live"]
