"""The broker interface the executor trades through: the paper book (execution.paper, the
default) and Bybit through pybit (execution.bybit).

Three kinds of trouble, kept apart because each calls for something else:
- `OrderRejected`: the venue refused, for good (bad size, unknown instrument, margin).
- `VenueUnavailable`: the venue could not be asked (network error, rate limit waited out too
  long, server error on a read); `OrderNotSent` is the kind that proves no order left, so the
  signal is decided afresh on redelivery.
- `OrderOutcomeUnknown`: the venue may or may not hold the order (a timeout after sending,
  10000 / 10016, a duplicate orderLinkId, an order not yet visible): the executor looks it up by
  orderLinkId, now, on redelivery and at start-up, and never sends it again blindly.

Instruments are named as the venue names them (`Instrument.symbol`); signals name coins, and
`instrument(coin)` is where one becomes the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from helix_pipelines.execution.orders import Instrument, OrderRequest, OrderResult, Position


class OrderOutcomeUnknown(Exception):  # noqa: N818 - an outcome, not a failure
    """The venue may hold the order: look it up by orderLinkId before doing anything else."""


class OrderRejected(Exception):  # noqa: N818
    """The venue refused the order; the message says why."""


class VenueUnavailable(Exception):  # noqa: N818 - a state of the venue
    """The venue could not be asked just now; nothing is known to have changed."""


class OrderNotSent(VenueUnavailable):
    """The order certainly did not reach the venue (rate limited, or a step before it failed)."""


class Broker(Protocol):
    mode: str

    def prepare(self, coins: Sequence[str], leverage: int) -> None:
        """Start-up: position mode and default leverage."""
        ...

    def instrument(self, coin: str) -> Instrument:
        """The venue instrument that trades `coin`, with its rules and multiplier."""
        ...

    def last_price(self, symbol: str) -> Decimal: ...

    def submit(self, order: OrderRequest) -> OrderResult: ...

    def find_order(self, order_link_id: str, symbol: str) -> OrderResult | None:
        """One lookup by orderLinkId; None when the venue does not (yet) show it."""
        ...

    def acceptance_deadline(self, sent_at: datetime) -> datetime:
        """After this, an order sent at `sent_at` and still not visible was never accepted."""
        ...

    def positions(self) -> dict[str, Position]:
        """Open positions by venue symbol."""
        ...

    def equity(self) -> Decimal: ...

    def housekeeping(self) -> list[str]:
        """Periodic upkeep (the paper broker closes positions whose stop or target was hit)."""
        ...
