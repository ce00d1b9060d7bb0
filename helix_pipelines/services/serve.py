"""`helix executor serve`: the executor as a long-running consumer of the Redis signal stream
(invalid entries, and signals of an unknown schema version, never reach it: the consumer moves
them to the dead-letter stream).

Reacts within a second (XREADGROUP blocks for at most `block_ms` and returns as soon as a signal
arrives), acknowledges a signal only once its decision is settled, and on restart picks up what
a dead consumer left pending. A signal whose order is unconfirmed (not yet visible at the venue)
or deferred (the venue could not be asked) stays unacknowledged, so it comes back after
`claim_idle_ms` and is looked up (or decided) again. Never processes a signal twice: a
redelivery maps to the same orderLinkId, which the executor recognises as handled.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from helix_pipelines.bus.consumer import SignalConsumer
from helix_pipelines.contracts.vocabulary import UNSETTLED_ACTIONS
from helix_pipelines.execution.executor import Executor

log = logging.getLogger(__name__)


@dataclass
class ServeStats:
    received: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    errors: int = 0


def serve(
    executor: Executor,
    consumer: SignalConsumer,
    stop: threading.Event,
    *,
    batch: int = 10,
    housekeeping_seconds: float = 5.0,
) -> ServeStats:
    """Process signals until `stop` is set (SIGTERM/SIGINT in the CLI)."""
    stats = ServeStats()
    last_housekeeping = 0.0
    log.info("executor serving %s as %s/%s", consumer.stream, consumer.group, consumer.consumer)
    while not stop.is_set():
        for item in consumer.read(count=batch):
            stats.received += 1
            signal = item.signal
            try:
                decision = executor.process(signal)
            except Exception:
                # Not acknowledged: the entry stays pending and is reclaimed and retried later;
                # the orderLinkId keeps a retry from doubling anything.
                log.exception("signal %s failed; left pending for a retry", signal.signal_id)
                stats.errors += 1
                continue
            stats.decisions[decision.action] = stats.decisions.get(decision.action, 0) + 1
            if decision.action not in UNSETTLED_ACTIONS:
                consumer.ack([item.stream_id])
        if time.monotonic() - last_housekeeping >= housekeeping_seconds:
            try:
                for event in executor.broker.housekeeping():
                    log.info("housekeeping: %s", event)
            except Exception:
                log.exception("housekeeping failed; trying again in %.0fs", housekeeping_seconds)
            last_housekeeping = time.monotonic()
    log.info("executor stopped: %s", stats)
    return stats
