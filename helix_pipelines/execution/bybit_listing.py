"""Bybit's public list of linear instruments: what the trader means by "every Bybit perp".

No key: `/v5/market/instruments-info` is public. Read through a real pybit session (pointed at
another endpoint for testnet or a fake), every page followed by `cursor`, rate limits waited
out like every other Bybit call (`bybit_calls`). The broker uses the same rule to tell a
tradable USDT perpetual from the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pybit.unified_trading import HTTP

from helix_pipelines.execution.brokers import VenueUnavailable
from helix_pipelines.execution.bybit_calls import BybitCalls

MAINNET = "https://api.bybit.com"


def is_tradable_usdt_perpetual(row: Mapping[str, Any]) -> bool:
    """Trading now, quoted in USDT, and perpetual (not a dated future)."""
    return (
        row.get("status") == "Trading"
        and row.get("quoteCoin") == "USDT"
        and row.get("contractType") == "LinearPerpetual"
    )


def why_not_tradable(row: Mapping[str, Any]) -> str:
    """Why an instrument of the listing is not in the universe (for the asset's metadata)."""
    if row.get("contractType") != "LinearPerpetual":
        return f"{row.get('contractType') or 'unknown contract'}, not a perpetual"
    if row.get("quoteCoin") != "USDT":
        return f"quoted in {row.get('quoteCoin') or '?'}, not USDT"
    return f"status {row.get('status') or '?'} (not trading: delisted, settling or pre-launch)"


class BybitInstrumentListing:
    """Every linear instrument Bybit lists, from its public endpoint."""

    def __init__(
        self, endpoint: str = MAINNET, *, page_size: int = 1000, timeout: int = 10
    ) -> None:
        self.endpoint = endpoint
        self.page_size = page_size
        self._timeout = timeout

    def linear_instruments(self) -> list[dict[str, Any]]:
        """Every row, all pages; `VenueUnavailable` naming the endpoint when Bybit cannot be
        read (down, unreachable, blocked, or a wrong endpoint)."""
        session = HTTP(timeout=self._timeout, force_retry=False, max_retries=2)
        session.endpoint = self.endpoint.rstrip("/")
        calls = BybitCalls(session)
        try:
            return calls.pages("get_instruments_info", category="linear", limit=self.page_size)
        except VenueUnavailable as exc:
            raise VenueUnavailable(
                f"cannot read Bybit's instrument list at {self.endpoint} "
                f"(HELIX_BYBIT_MARKET_URL): {exc}"
            ) from None
