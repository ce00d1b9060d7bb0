"""Run Helix's own Dagster jobs in this process, recorded in the local Dagster instance, so what
`helix demo` did is what `make dev`'s UI shows (runs, materializations, previews, checks).

The instance is `$DAGSTER_HOME`, else `./.dagster_home` (what `make dev` serves), created with
`dagster_instance.yaml` when it has no settings yet. Events are read back from the instance while
a run goes, which is how the CLI shows progress: the numbers printed are the ones stored.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from helix_pipelines.cli.dagster_home import dagster_home
from helix_pipelines.definitions import defs

INSTANCE_SETTINGS = Path(__file__).with_name("dagster_instance.yaml")
POLL_SECONDS = 0.25
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Dagster's own console log stays quiet: the CLI prints what the run recorded instead."""
RECORDED = {
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.ASSET_OBSERVATION,
}


def local_instance() -> dg.DagsterInstance:
    """The instance of `$DAGSTER_HOME` (default `./.dagster_home`), settings added if missing."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(INSTANCE_SETTINGS, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def describe(instance: dg.DagsterInstance) -> str:
    return f"{instance.root_directory} ({type(instance.run_storage).__name__})"


@dataclass
class RunOutcome:
    """One finished run: whether it succeeded, its id, and what it recorded, in order."""

    job: str
    run_id: str
    success: bool
    events: list[dg.EventLogEntry] = field(default_factory=list)
    error: str | None = None

    def materializations(self, key: dg.AssetKey) -> list[Mapping[str, Any]]:
        """Metadata (plain values) of every materialization of `key`, in order."""
        return [
            {k: v.value for k, v in m.metadata.items()}
            for e in self.events
            if (m := e.asset_materialization) is not None and m.asset_key == key
        ]


class LocalRuns:
    """Helix's definitions as the code location loads them (same resources, same environment),
    executed in process against one instance."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.definitions = defs()
        self.runs: list[RunOutcome] = []

    def run(
        self,
        job_name: str,
        *,
        config: Mapping[str, Any] | None = None,
        on_event: Callable[[dg.EventLogEntry], None] | None = None,
    ) -> RunOutcome:
        """Execute `job_name`, calling `on_event` with each materialization, check evaluation,
        observation and error log line as the run records it."""
        job = self.definitions.resolve_job_def(job_name)
        run_id = str(uuid.uuid4())  # Dagster's run ids are uuid4 strings
        events: list[dg.EventLogEntry] = []
        cursor: list[str | None] = [None]
        finished = threading.Event()

        def follow() -> None:
            while not finished.wait(POLL_SECONDS):
                cursor[0] = self._drain(run_id, cursor[0], events, on_event)

        # The run executes in this thread, so Ctrl-C interrupts it the way Dagster expects (the
        # run is marked failed and its concurrency slot released); a daemon thread follows it.
        follower = threading.Thread(target=follow, name=f"helix-follow-{job_name}", daemon=True)
        follower.start()
        error: str | None = None
        try:
            result = job.execute_in_process(
                run_config={**QUIET, **(config or {})},
                instance=self.instance,
                run_id=run_id,
                raise_on_error=False,
            )
        except Exception as exc:  # reported like a failed run, never a traceback
            result, error = None, f"{type(exc).__name__}: {exc}"
        finally:
            finished.set()
            follower.join()
        self._drain(run_id, cursor[0], events, on_event)
        outcome = RunOutcome(
            job_name,
            run_id,
            bool(result is not None and result.success),
            events,
            error or (None if result is None else _failure(result)),
        )
        self.runs.append(outcome)
        return outcome

    def _drain(
        self,
        run_id: str,
        cursor: str | None,
        events: list[dg.EventLogEntry],
        on_event: Callable[[dg.EventLogEntry], None] | None,
    ) -> str | None:
        connection = self.instance.get_records_for_run(run_id, cursor=cursor)
        for record in connection.records:
            entry = record.event_log_entry
            wanted = entry.dagster_event is None and entry.level >= 40  # an error the op logged
            if entry.dagster_event is not None:
                wanted = entry.dagster_event.event_type in RECORDED
            if wanted:
                events.append(entry)
                if on_event is not None:
                    on_event(entry)
        return connection.cursor if connection.records else cursor


def _failure(result: dg.ExecuteInProcessResult) -> str | None:
    """The first step failure's message (a `dg.Failure` names what went wrong)."""
    if result.success:
        return None
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            return error.message.strip() if error else "step failed"
    return "run failed"
