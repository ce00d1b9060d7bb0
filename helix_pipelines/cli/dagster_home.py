"""Where the local Dagster instance lives: `$DAGSTER_HOME`, else `./.dagster_home`, the folder
`make dev` serves. Dagster-free, so every command can say which instance is meant."""

from __future__ import annotations

import os
from pathlib import Path


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
