"""Live market feeds (no Dagster): Bybit ticker prices and CoinGlass realized liquidations over
websockets, each with reconnects and a visible fallback."""
