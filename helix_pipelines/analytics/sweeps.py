"""Sweep confirmation: did real liquidations happen where price touched a level?

Grain: one confirmation per touched outcome, recorded once its window has closed (an hour after
the touch); until then the outcome is stored without one and confirmed by a later refresh.

A cluster (or a radar target) whose level price traded into is a sweep only if the stops were
really there. CoinGlass's liquidation feed says so: the realized liquidations of the coin within
`band_pct` of the level, from the subject's time until an hour after the touch (the candle that
touched is up to an hour wide on the long ranges). Their USD and count are the confirmation;
zero means none was recorded — which includes the times no feed was running, so a zero is
"unconfirmed", never "disproved".

Prices: an instrument whose name carries a multiplier (`1000PEPEUSDT`) quotes per 1,000 coins;
its price is divided by the multiplier so every event is compared in coin units.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import polars as pl

from helix_pipelines.contracts.instruments import split_multiplier

SWEEP_BAND_PCT = 0.25
AFTER_TOUCH = timedelta(hours=1)
_QUOTE = re.compile(r"[-_/]?(USDT|USDC|USD|BUSD)([-_/]?(SWAP|PERP))?$")


def coin_price(symbol: str, price: float, base_asset: str) -> float:
    """The event's price per coin of `base_asset`: divided by the multiplier its instrument's
    name carries, unless the coin's own name carries it (CoinGlass's `10000SATS`)."""
    base = _QUOTE.sub("", symbol)
    root, multiplier = split_multiplier(base)
    return price / multiplier if base != base_asset and root == base_asset else price


def confirmable(outcomes: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """The touched outcomes whose confirmation window (until an hour after the touch) has
    closed by `now` and that hold no confirmation yet."""
    closes = pl.col("observed_from") + pl.duration(hours=pl.col("hours_to_touch")) + AFTER_TOUCH
    return outcomes.filter(pl.col("touched"), pl.col("confirmed_liq_usd").is_null(), closes <= now)


def confirm_sweeps(
    outcomes: pl.DataFrame, events: pl.DataFrame, *, band_pct: float = SWEEP_BAND_PCT
) -> pl.DataFrame:
    """`outcomes` (touched, their window closed: `confirmable`) with `confirmed_liq_usd` /
    `confirmed_liq_events` set; untouched rows keep None (nothing to confirm)."""
    by_coin: dict[str, pl.DataFrame] = {}
    if events.height:
        prices = [
            coin_price(s, p, b)
            for s, p, b in zip(events["symbol"], events["price"], events["base_asset"], strict=True)
        ]
        with_coin = events.with_columns(pl.Series("coin_price", prices, pl.Float64))
        by_coin = {
            str(k[0]): v for k, v in with_coin.partition_by("base_asset", as_dict=True).items()
        }
    usd: list[float | None] = []
    count: list[int | None] = []
    for row in outcomes.iter_rows(named=True):
        if not row["touched"]:
            usd.append(None)
            count.append(None)
            continue
        found = by_coin.get(row["symbol"])
        level = row["level_price"]
        until = row["observed_from"] + timedelta(hours=row["hours_to_touch"] or 0) + AFTER_TOUCH
        near = (
            found.filter(
                (pl.col("coin_price") - level).abs() <= level * band_pct / 100,
                pl.col("event_time") >= row["observed_from"],
                pl.col("event_time") < until,
            )
            if found is not None
            else None
        )
        usd.append(float(near["usd"].sum()) if near is not None else 0.0)
        count.append(near.height if near is not None else 0)
    return outcomes.with_columns(
        pl.Series("confirmed_liq_usd", usd, pl.Float64),
        pl.Series("confirmed_liq_events", count, pl.Int64),
    )
