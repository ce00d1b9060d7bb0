"""What the live feeds deliver: the latest traded price of a venue symbol and one realized
liquidation reported by CoinGlass's websocket (the shapes `helix live`, the price book, the
`liquidation_events` table and the radar share).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

PriceOrigin = Literal["ws", "rest"]
"""Where a price came from: the Bybit tickers websocket, or the REST fallback while it is down."""


@dataclass(frozen=True, slots=True)
class PriceTick:
    """The last traded price of one Bybit instrument (`venue_symbol`, e.g. `1000PEPEUSDT`, in
    venue units) as of `at` (the venue's timestamp), and where it came from."""

    venue_symbol: str
    price: float
    at: datetime
    origin: PriceOrigin


@dataclass(frozen=True, slots=True)
class LiquidationEvent:
    """One `liquidation_events` row: a liquidation order CoinGlass saw on an exchange.

    `side_code` is stored as CoinGlass sent it (1 or 2): its websocket and REST documentation
    disagree on which side each number means, so Helix never interprets it silently.
    `event_time` is the exchange's time, `received_at` when Helix read it off the socket.
    """

    event_time: datetime
    received_at: datetime
    base_asset: str  # the coin, as the radar and the universe name it (BTC, PEPE)
    exchange: str
    symbol: str  # the exchange's instrument id (BTCUSDT, 1000PEPEUSDT)
    price: float
    side_code: int
    usd: float

    def as_row(self) -> dict[str, object]:
        return asdict(self)
