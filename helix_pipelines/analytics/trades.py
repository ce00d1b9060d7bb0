"""From consensus zones to a trade: which side, where the stop and target go, and the signal.

Liquidation clusters act as magnets: price tends to run into stacked stops. A long targets (just
ahead of) the strongest agreed zone above, with its stop beyond the nearest agreed zone below
plus the typical wick overshoot; a short mirrors it; the better reward-to-risk of the two wins.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import polars as pl

from helix_pipelines.analytics.consensus import ConsensusZone
from helix_pipelines.analytics.risk import RiskLimits, TradePlan
from helix_pipelines.analytics.sizing import plan_trade
from helix_pipelines.analytics.volatility import wick_overshoot_atr
from helix_pipelines.contracts.radar import RadarEntry
from helix_pipelines.contracts.signals import SIGNAL_SCHEMA_VERSION, TradeSignal
from helix_pipelines.contracts.vocabulary import Side

STRATEGY_VERSION = "magnet-reversion-1"


@dataclass(frozen=True, slots=True)
class SignalParams:
    min_consensus: float = 0.5  # zones scoring below this neither set stops nor targets
    risk_range: str = "24h"  # whose candles give the ATR and wick statistics of a trade
    win_rate: float = 0.5  # prior for the Kelly bound until outcomes say otherwise
    min_outcomes: int = 30  # signal outcomes a radar tier needs before its hit rate replaces it
    radar_top_k: int | None = None  # plan only the radar's top K coins (None: every ranked coin)


@dataclass(frozen=True, slots=True)
class PlannedTrade:
    """A plan and the zones it came from: the target's, the stop's."""

    plan: TradePlan
    target: ConsensusZone
    stop: ConsensusZone


def plan_symbol(
    symbol: str,
    zones: list[ConsensusZone],
    last_close: float,
    atr_value: float,
    candles: pl.DataFrame,
    params: SignalParams,
    limits: RiskLimits,
    *,
    win_rate: float | None = None,
) -> PlannedTrade | str:
    """The better of a long toward the strongest zone above and a short toward the one below,
    or why neither can be planned. `win_rate` (default: the prior in `params`) feeds Kelly."""
    agreed = [z for z in zones if z.consensus_score >= params.min_consensus]
    above = [z for z in agreed if z.price_lo > last_close]
    below = [z for z in agreed if z.price_hi < last_close]
    if not above or not below:
        return (
            f"needs agreed zones on both sides of {last_close:.6g} "
            f"(above {len(above)}, below {len(below)})"
        )
    edges = np.array([z.price_lo for z in above] + [z.price_hi for z in below])
    high, low, close = (candles[c].to_numpy() for c in ("high", "low", "close"))
    wick_buffer = wick_overshoot_atr(high, low, close, edges, atr_value)
    strongest_above = max(above, key=lambda z: (z.consensus_score, z.mean_share))
    strongest_below = max(below, key=lambda z: (z.consensus_score, z.mean_share))
    nearest_above = min(above, key=lambda z: z.price_lo)
    nearest_below = max(below, key=lambda z: z.price_hi)
    sides: tuple[tuple[Side, ConsensusZone, ConsensusZone, float, float], ...] = (
        ("long", strongest_above, nearest_below, nearest_below.price_lo, strongest_above.price_lo),
        ("short", strongest_below, nearest_above, nearest_above.price_hi, strongest_below.price_hi),
    )
    candidates, reasons = [], []
    for side, target, stop, stop_edge, target_edge in sides:
        plan = plan_trade(
            symbol=symbol,
            side=side,
            entry=last_close,
            same_side_cluster_edge=stop_edge,
            opposite_magnet_edge=target_edge,
            atr_value=atr_value,
            wick_buffer_atr=wick_buffer,
            limits=limits,
            win_rate=params.win_rate if win_rate is None else win_rate,
        )
        if isinstance(plan, str):
            reasons.append(f"{side}: {plan}")
        else:
            candidates.append(PlannedTrade(plan, target, stop))
    if not candidates:
        return "; ".join(reasons)
    return max(candidates, key=lambda c: c.plan.reward_to_risk)


def signal_id_for(symbol: str, side: str, snapshot_ids: list[str]) -> str:
    """Same strategy, symbol, side and input snapshots: same id (so re-runs never duplicate)."""
    key = "|".join([STRATEGY_VERSION, symbol, side, *sorted(snapshot_ids)])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def to_signal(
    trade: PlannedTrade,
    snapshot_ids: list[str],
    *,
    created_at: datetime,
    as_of: datetime,
    radar: RadarEntry | None = None,
) -> TradeSignal:
    plan = trade.plan
    # The plan's fields are the signal's trade fields, name for name (one concept, one name):
    # a field added to one and not the other fails here, not downstream.
    return TradeSignal(
        signal_id=signal_id_for(plan.symbol, plan.side, snapshot_ids),
        schema_version=SIGNAL_SCHEMA_VERSION,
        strategy_version=STRATEGY_VERSION,
        created_at=created_at,
        as_of=as_of,
        **asdict(plan),
        consensus_score=min(trade.target.consensus_score, trade.stop.consensus_score),
        target_zone_id=trade.target.zone_id,
        stop_zone_id=trade.stop.zone_id,
        radar_rank=radar.rank if radar else None,
        radar_decile=radar.decile if radar else None,
        radar_tier=radar.tier if radar else None,
        radar_score=radar.score if radar else None,
        radar_imbalance=radar.imbalance if radar else None,
        radar_nearest_distance_pct=radar.nearest_distance_pct if radar else None,
    )
