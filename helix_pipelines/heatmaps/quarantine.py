"""Where quarantined payloads go so a person can inspect them: nothing fetched is ever lost.

Each quarantined payload is kept byte for byte as `<name>.payload` (it may not even be JSON),
next to `<name>.json` holding its ledger row, reason included.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from helix_pipelines.contracts.heatmaps import LedgerRow


class QuarantineStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def keep(self, ledger: LedgerRow, raw: bytes) -> Path:
        """Store the raw bytes and the ledger row; returns the payload's path. Idempotent."""
        exchange = ledger.exchange or "all"
        name = f"{ledger.scope}_{exchange}_{ledger.symbol}_m{ledger.model}_{ledger.range}_{ledger.snapshot_id}"
        folder = self.root / ledger.fetched_at.date().isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        payload = folder / f"{name}.payload"
        payload.write_bytes(raw)
        (folder / f"{name}.json").write_bytes(
            orjson.dumps(ledger.as_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NAIVE_UTC)
        )
        return payload
