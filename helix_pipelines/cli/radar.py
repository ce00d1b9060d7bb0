"""`helix radar`: the newest liquidation radar from the warehouse, top N with ages.

`--refresh` first recomputes the analytics (clusters, zones, imbalance, the radar, signals)
through the same service as the `analyze_liquidations` asset.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime

from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.radar import RadarEntry
from helix_pipelines.contracts.units import duration_text
from helix_pipelines.services.settings import Settings, open_configured
from helix_pipelines.services.signals import refresh_signals

COLUMNS = ("rank", "symbol", "tier", "score", "dir", "target", "nearest", "imbal", "size z",
           "consensus", "data age")  # fmt: skip


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("radar", help="print the newest liquidation radar (top N)")
    parser.add_argument("--top", type=int, default=20, help="coins to print (default 20)")
    parser.add_argument("--all", action="store_true", help="also list the excluded coins")
    parser.add_argument("--refresh", action="store_true", help="recompute the analytics first")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    warehouse = open_configured(settings)
    try:
        if args.refresh and refresh_signals(warehouse, now=utc_now(), limits=settings.risk) is None:
            print("helix radar: no loaded heatmaps yet: run `helix demo` first")
            return 1
        frame = warehouse.analytics.latest_radar()
    finally:
        warehouse.close()
    if frame.height == 0:
        print("helix radar: no radar stored yet: run `helix demo` or `helix radar --refresh`")
        return 1
    entries = [RadarEntry(**row) for row in frame.iter_rows(named=True)]
    print(format_radar(entries, top=args.top, show_excluded=args.all, now=utc_now()))
    return 0


def format_radar(
    entries: Sequence[RadarEntry], *, top: int, show_excluded: bool, now: datetime
) -> str:
    ranked = [e for e in entries if e.rank is not None]
    excluded = [e for e in entries if e.rank is None]
    refreshed = entries[0].refreshed_at
    lines = [
        f"radar of {refreshed:%Y-%m-%d %H:%M:%S} UTC ({duration_text((now - refreshed).total_seconds())} "
        f"ago): {len(ranked)} ranked, {len(excluded)} excluded",
        " ".join(f"{c:>9}" for c in COLUMNS),
    ]
    for e in ranked[:top]:
        age = (now - e.newest_snapshot_at).total_seconds() if e.newest_snapshot_at else 0.0
        size_z = "-" if e.size_z is None else f"{e.size_z:+.2f}"
        imbalance = "-" if e.imbalance is None else f"{e.imbalance:.2f}"
        values = (e.rank, e.symbol, e.tier, f"{e.score:.3f}", e.direction, f"{e.target_price:.6g}",
                  f"{e.nearest_distance_pct:.2f}%", imbalance, size_z,
                  f"{e.consensus_component:.2f}", duration_text(age))  # fmt: skip
        lines.append(" ".join(f"{v!s:>9}" for v in values))
    if show_excluded:
        lines += [f"excluded {e.symbol}: {e.excluded_reason}" for e in excluded]
    elif excluded:
        lines.append(f"({len(excluded)} excluded: --all lists them with the reason)")
    return "\n".join(lines)
