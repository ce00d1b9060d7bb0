from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from helix_pipelines.coinglass.errors import (
    CoinGlassPayloadError,
    CoinGlassRequestError,
    CoinGlassUnavailableError,
)
from helix_pipelines.coinglass.replay import ReplaySource
from helix_pipelines.coinglass.settings import SourceSettings, open_source
from helix_pipelines.contracts.heatmaps import HeatmapRequest


def test_replay_serves_recorded_bytes_untouched(tmp_path: Path) -> None:
    request = HeatmapRequest("pair", "ETHUSDT", 2, "1y", exchange="Bybit")
    recorded = b'{"code":"0","data":{"y":[1.0],"liq":[],"prices":[]}}'
    (tmp_path / request.capture_name).write_bytes(recorded)
    (tmp_path / "supported-coins.json").write_bytes(orjson.dumps({"code": "0", "data": ["ETH"]}))
    source = ReplaySource(tmp_path)

    assert asyncio.run(source.fetch_heatmap(request)) == recorded
    assert asyncio.run(source.supported_coins()) == ["ETH"]
    assert source.recorded_requests() == ["heatmap_Bybit_model2_ETHUSDT_1y.json"]
    assert source.stats.requests_sent == 2


def test_a_recorded_no_data_answer_is_unavailable_as_it_was_live(tmp_path: Path) -> None:
    request = HeatmapRequest("coin", "HYPE", 1, "1y")
    (tmp_path / request.capture_name).write_bytes(b'{"code":"500","msg":"Server Error"}')
    other = HeatmapRequest("coin", "HYPE", 1, "180d")
    (tmp_path / other.capture_name).write_bytes(b'{"code":"500","msg":"something else broke"}')
    source = ReplaySource(tmp_path)
    with pytest.raises(CoinGlassUnavailableError, match="HYPE_1y"):
        asyncio.run(source.fetch_heatmap(request))
    # Any other error body is served as recorded, for the normalizer to quarantine.
    assert b"something else" in asyncio.run(source.fetch_heatmap(other))


def test_missing_recording_names_the_file(tmp_path: Path) -> None:
    source = ReplaySource(tmp_path)
    with pytest.raises(
        CoinGlassRequestError, match=r"no recording aggregated-heatmap_model1_BTC_3d\.json"
    ):
        asyncio.run(source.fetch_heatmap(HeatmapRequest("coin", "BTC", 1, "3d")))


def test_garbled_universe_recording_is_a_payload_error(tmp_path: Path) -> None:
    (tmp_path / "supported-coins.json").write_bytes(b"{not json")
    with pytest.raises(CoinGlassPayloadError, match=r"supported-coins\.json"):
        asyncio.run(ReplaySource(tmp_path).supported_coins())


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="replay directory"):
        ReplaySource(tmp_path / "nope")


def test_source_selection_precedence(tmp_path: Path) -> None:
    assert SourceSettings().kind == "sandbox"
    assert SourceSettings(replay_dir=tmp_path).kind == "replay"
    keyed = SourceSettings(api_key="secret-key-123", replay_dir=tmp_path)
    assert keyed.kind == "coinglass"
    assert "secret-key-123" not in keyed.describe()
    assert "SANDBOX" in SourceSettings().describe()
    assert type(open_source(SourceSettings(replay_dir=tmp_path))).__name__ == "ReplaySource"
