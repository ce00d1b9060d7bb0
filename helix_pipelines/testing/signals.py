"""Trade signals for tests: a complete, valid `TradeSignal` from the few fields a test cares
about, the rest derived consistently (notional = qty x entry, risk at the stop, ...)."""

from __future__ import annotations

from datetime import datetime

from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.signals import SIGNAL_SCHEMA_VERSION, TradeSignal


def make_signal(
    signal_id: str = "sig-1",
    symbol: str = "BTC",
    side: str = "long",
    *,
    entry: float = 65_000.0,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    qty: float = 0.01,
    leverage: int = 2,
    created_at: datetime | None = None,
    schema_version: int = SIGNAL_SCHEMA_VERSION,
) -> TradeSignal:
    """Stops 3% and targets 7.5% away from entry unless given."""
    long = side == "long"
    stop = stop_loss if stop_loss is not None else entry * (0.97 if long else 1.03)
    target = take_profit if take_profit is not None else entry * (1.075 if long else 0.925)
    created = created_at or utc_now()
    risk = qty * abs(entry - stop)
    return TradeSignal(
        signal_id=signal_id,
        schema_version=schema_version,
        strategy_version="test",
        created_at=created,
        as_of=created,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        entry=entry,
        stop_loss=stop,
        take_profit=target,
        reward_to_risk=abs(target - entry) / abs(entry - stop),
        qty=qty,
        notional_usd=qty * entry,
        leverage=leverage,
        risk_usd=risk,
        risk_fraction=risk / 10_000,
        liquidation_price=entry * (0.5 if long else 1.5),
        consensus_score=0.8,
        target_zone_id="zone-target",
        stop_zone_id="zone-stop",
    )
