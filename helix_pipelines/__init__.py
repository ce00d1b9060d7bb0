"""Helix: liquidation-intelligence pipelines for perpetual-futures traders."""
