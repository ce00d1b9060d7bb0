"""Test doubles that ship with Helix, for its own tests, its benchmarks, and anyone building on
it: local fake CoinGlass and Bybit servers that behave as the real services are documented and
recorded to (docs/real-apis.md), hand-built payloads, a scripted heatmap source, and signal and
recording helpers. Nothing in the product imports this package (the import contract says so).
"""
