"""Executor modes and the gate in front of live trading.

paper (default) -> testnet / demo (Bybit, no real money) -> live. Live needs BOTH
HELIX_EXECUTOR_MODE=live and HELIX_EXECUTOR_LIVE_CONFIRM set to LIVE_CONFIRMATION; anything less
refuses to start with a message saying exactly what is missing. Keys come from the environment
(BYBIT_API_KEY / BYBIT_API_SECRET) and never appear in logs, metadata or errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from helix_pipelines.contracts.vocabulary import ExecutorMode

LIVE_CONFIRMATION = "I-UNDERSTAND-THIS-TRADES-REAL-MONEY"


class RefuseToStart(RuntimeError):  # noqa: N818 - what the executor does
    """The executor's configuration is unsafe or incomplete; the message says what to fix."""


@dataclass(frozen=True)
class ExecutorSettings:
    mode: ExecutorMode
    api_key: str | None = None
    api_secret: str | None = None

    def __repr__(self) -> str:  # never show the credentials
        return f"ExecutorSettings(mode={self.mode!r}, api_key={'set' if self.api_key else 'unset'})"


def gate(
    mode: str, live_confirm: str, api_key: str | None, api_secret: str | None
) -> ExecutorSettings:
    """The executor's settings, refusing anything unsafe. The messages name the environment
    variables, because those are what an operator sets."""
    mode = (mode or "paper").strip().lower()
    if mode not in get_args(ExecutorMode):
        raise RefuseToStart(
            f"HELIX_EXECUTOR_MODE must be one of {', '.join(get_args(ExecutorMode))}, got {mode!r}"
        )
    if mode == "live" and live_confirm != LIVE_CONFIRMATION:
        raise RefuseToStart(
            "live trading refused: HELIX_EXECUTOR_MODE=live also needs "
            f"HELIX_EXECUTOR_LIVE_CONFIRM={LIVE_CONFIRMATION} (a deliberate second setting)"
        )
    key, secret = api_key or None, api_secret or None
    if mode != "paper" and not (key and secret):
        raise RefuseToStart(f"mode {mode} needs BYBIT_API_KEY and BYBIT_API_SECRET")
    return ExecutorSettings(mode, key, secret)  # type: ignore[arg-type]
