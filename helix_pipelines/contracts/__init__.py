"""The shared vocabulary every layer speaks: models and ranges, sides and statuses, the table
schemas, the heatmap key and snapshot, the versioned `TradeSignal`, and the coin-to-instrument
mapping. Imports nothing of Helix's: everything else imports from here, never the other way."""
