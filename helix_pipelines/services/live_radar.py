"""The live radar: the analytics' per-symbol radar inputs, re-ranked against live prices and
recent realized liquidations as fast as prices move.

Why two speeds: computing a symbol's zones and imbalances means reading its heatmaps' level
profiles (about 85 CPU-seconds for the whole universe), but re-ranking the universe against new
prices is `build_radar` alone (milliseconds). So the inputs are recomputed only for symbols whose
heatmaps changed (`reload`), and `rank` re-prices everything on every price move. Grain: one
ranking of the whole universe per call; nothing is stored here (the caller decides how often a
ranking becomes `liquidation_radar` rows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta

from helix_pipelines.analytics.clusters import ClusterParams
from helix_pipelines.analytics.pipeline import radar_inputs
from helix_pipelines.analytics.radar import (
    RadarParams,
    SymbolInputs,
    build_radar,
    with_live_state,
)
from helix_pipelines.contracts.live import PriceTick
from helix_pipelines.contracts.radar import PriceSource, RadarEntry
from helix_pipelines.services.signals import CANDLE_LOOKBACK, read_history
from helix_pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)

LatestTick = Callable[[str], PriceTick | None]
"""The newest tick of a venue symbol (the price book's lookup), or None."""


class LiveRadar:
    """Radar inputs per symbol, kept current by `reload`, ranked with live prices by `rank`."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        radar_params: RadarParams | None = None,
        cluster_params: ClusterParams | None = None,
        price_max_age: timedelta = timedelta(seconds=30),
    ) -> None:
        self.warehouse = warehouse
        self.radar_params = radar_params or RadarParams()
        self.cluster_params = cluster_params
        self.price_max_age = price_max_age
        self.inputs: dict[str, SymbolInputs] = {}
        self.universe: list[str] = []
        # coin -> (Bybit instrument, coins per contract): the ticker is in venue units.
        self.venue: dict[str, tuple[str, int]] = {}

    def reload(self, now: datetime, symbols: Collection[str] | None = None) -> int:
        """Recompute the inputs of `symbols` (None: every symbol) from the warehouse as of
        `now`; returns how many symbols now have inputs."""
        members = self.warehouse.heatmaps.load_universe()
        self.universe = [m.symbol for m in members]
        self.venue = {m.symbol: (m.venue_symbol, m.multiplier) for m in members if m.venue_symbol}
        latest = self.warehouse.heatmaps.latest_snapshots(2, as_of=now)
        if symbols is not None:
            latest = latest.filter(latest["symbol"].is_in(list(symbols)))
        if latest.height == 0:
            return len(self.inputs)
        candles = self.warehouse.heatmaps.candles_since(
            latest["fetched_at"].min() - CANDLE_LOOKBACK,
            None if symbols is None else latest["symbol"].unique().to_list(),
        )
        history = read_history(self.warehouse, latest, now)
        fresh = radar_inputs(
            latest,
            self.warehouse.heatmaps.snapshot_levels,
            candles,
            cluster_params=self.cluster_params,
            history=history,
        )
        # A new mapping, swapped in whole: `rank` may be iterating the old one on another thread.
        self.inputs = {**self.inputs, **{item.symbol: item for item in fresh}}
        return len(self.inputs)

    def live_prices(
        self, latest_tick: LatestTick, now: datetime
    ) -> dict[str, tuple[float, PriceSource]]:
        """Coin prices from the ticker book (venue price / multiplier), fresh ones only."""
        prices: dict[str, tuple[float, PriceSource]] = {}
        for coin, (venue_symbol, multiplier) in self.venue.items():
            tick = latest_tick(venue_symbol)
            if tick is not None and now - tick.at <= self.price_max_age:
                prices[coin] = (tick.price / multiplier, tick.origin)
        return prices

    def rank(
        self,
        latest_tick: LatestTick,
        realized: Mapping[str, tuple[float, int]] | None,
        now: datetime,
    ) -> list[RadarEntry]:
        """The whole universe ranked now: live prices where fresh, heatmap closes elsewhere."""
        priced = with_live_state(
            list(self.inputs.values()), self.live_prices(latest_tick, now), realized
        )
        return build_radar(priced, self.universe, now=now, params=self.radar_params)
