"""Executor tables (sql/005_executor_tables.sql), as polars schemas written through the warehouse.

executor_orders     one row per signal the executor decided on; `order_link_id` (derived from
                    the signal id) is the idempotency key, persisted before any submit; `qty`
                    is what was asked, `filled_qty` what the venue filled (cumExecQty)
executor_decisions  every decision with its reason (placed, skipped, duplicate, rejected, ...)
executor_state      key/value: the persisted halt and the day's starting equity
paper_positions     the paper broker's open positions
paper_fills         the paper broker's fills, fees and realized PnL
"""

from __future__ import annotations

import polars as pl

from helix_pipelines.heatmaps.contracts import UTC_TIME

ORDERS_SCHEMA: dict[str, pl.DataType] = {
    "order_link_id": pl.String(), "signal_id": pl.String(), "mode": pl.String(),
    "symbol": pl.String(), "side": pl.String(), "qty": pl.String(), "status": pl.String(),
    "venue_order_id": pl.String(), "avg_price": pl.Float64(), "take_profit": pl.String(),
    "stop_loss": pl.String(), "leverage": pl.Int16(), "reason": pl.String(),
    "created_at": UTC_TIME, "updated_at": UTC_TIME, "venue_symbol": pl.String(),
    "filled_qty": pl.String(), "venue_status": pl.String(), "submitted_at": UTC_TIME,
}  # fmt: skip
DECISIONS_SCHEMA: dict[str, pl.DataType] = {
    "decision_id": pl.String(), "signal_id": pl.String(), "mode": pl.String(),
    "symbol": pl.String(), "action": pl.String(), "reason": pl.String(),
    "order_link_id": pl.String(), "decided_at": UTC_TIME,
}  # fmt: skip
STATE_SCHEMA: dict[str, pl.DataType] = {
    "key": pl.String(), "value": pl.String(), "updated_at": UTC_TIME,
}  # fmt: skip
PAPER_POSITIONS_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(), "side": pl.String(), "qty": pl.Float64(), "avg_price": pl.Float64(),
    "take_profit": pl.Float64(), "stop_loss": pl.Float64(), "leverage": pl.Int16(),
    "opened_at": UTC_TIME,
}  # fmt: skip
PAPER_FILLS_SCHEMA: dict[str, pl.DataType] = {
    "fill_id": pl.String(), "order_link_id": pl.String(), "symbol": pl.String(),
    "side": pl.String(), "qty": pl.Float64(), "price": pl.Float64(), "fee_usd": pl.Float64(),
    "realized_pnl_usd": pl.Float64(), "filled_at": UTC_TIME,
}  # fmt: skip

EXECUTION_TABLES: dict[str, tuple[dict[str, pl.DataType], tuple[str, ...]]] = {
    "executor_orders": (ORDERS_SCHEMA, ("order_link_id",)),
    "executor_decisions": (DECISIONS_SCHEMA, ("decision_id",)),
    "executor_state": (STATE_SCHEMA, ("key",)),
    "paper_positions": (PAPER_POSITIONS_SCHEMA, ("symbol",)),
    "paper_fills": (PAPER_FILLS_SCHEMA, ("fill_id",)),
}
