"""The price book's rules: newest tick per symbol wins, stale prices are never handed out, and
readers on other threads learn of every change."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from helix_pipelines.contracts.live import PriceOrigin, PriceTick
from helix_pipelines.live.prices import PriceBook

T0 = datetime(2024, 9, 4, 2, 18, 38, tzinfo=UTC)


def tick(
    price: float, seconds: float = 0.0, symbol: str = "BTCUSDT", origin: PriceOrigin = "ws"
) -> PriceTick:
    return PriceTick(symbol, price, T0 + timedelta(seconds=seconds), origin)


def test_a_newer_tick_replaces_the_held_one_and_an_older_one_is_ignored() -> None:
    book = PriceBook()
    assert book.update(tick(56738.5, 1.0))
    assert not book.update(tick(50000.0, 0.5, origin="rest"))  # a slow REST answer
    assert book.tick("BTCUSDT") == tick(56738.5, 1.0)
    assert book.stale_ignored == 1
    assert book.update(tick(56740.0, 2.0, origin="rest"))
    assert book.tick("BTCUSDT") == tick(56740.0, 2.0, origin="rest")


def test_an_equal_timestamp_replaces_the_held_tick() -> None:
    """Bybit stamps to the millisecond: pushes of one burst share a timestamp, the later wins."""
    book = PriceBook()
    book.update(tick(1.0))
    assert book.update(tick(2.0))
    assert book.tick("BTCUSDT") == tick(2.0)


def test_symbols_are_kept_apart_and_snapshot_is_a_copy() -> None:
    book = PriceBook()
    book.update(tick(56738.5))
    book.update(tick(0.019, symbol="1000PEPEUSDT"))
    snapshot = book.snapshot()
    book.update(tick(56800.0, 1.0))
    assert snapshot == {
        "BTCUSDT": tick(56738.5),
        "1000PEPEUSDT": tick(0.019, symbol="1000PEPEUSDT"),
    }
    assert book.tick("ETHUSDT") is None


def test_price_is_none_when_absent_or_older_than_max_age() -> None:
    book = PriceBook()
    assert book.price("BTCUSDT", max_age=5.0, now=T0) is None
    assert book.age("BTCUSDT", now=T0) is None
    book.update(tick(56738.5))
    assert book.price("BTCUSDT", max_age=5.0, now=T0 + timedelta(seconds=5)) == 56738.5
    assert book.price("BTCUSDT", max_age=5.0, now=T0 + timedelta(seconds=5.001)) is None
    assert book.age("BTCUSDT", now=T0 + timedelta(seconds=2.5)) == 2.5
    # The venue's clock ahead of ours: a negative age, and the price counts as fresh.
    assert book.age("BTCUSDT", now=T0 - timedelta(seconds=1)) == -1.0
    assert book.price("BTCUSDT", max_age=0.0, now=T0 - timedelta(seconds=1)) == 56738.5


def test_price_defaults_to_the_wall_clock() -> None:
    book = PriceBook()
    book.update(PriceTick("BTCUSDT", 56738.5, datetime.now(UTC), "ws"))
    assert book.price("BTCUSDT", max_age=60.0) == 56738.5
    book.update(PriceTick("ETHUSDT", 2400.0, datetime.now(UTC) - timedelta(minutes=5), "rest"))
    assert book.price("ETHUSDT", max_age=60.0) is None
    age = book.age("ETHUSDT")
    assert age is not None
    assert 300 <= age < 310


def test_version_counts_stored_ticks_and_origins_are_counted() -> None:
    book = PriceBook()
    assert book.version == 0
    book.update(tick(1.0, 1.0))
    book.update(tick(2.0, 2.0, origin="rest"))
    book.update(tick(0.5, 0.0))  # ignored: neither version nor counts move
    book.update(tick(3.0, 3.0, symbol="ETHUSDT"))
    assert book.version == 3
    assert book.updates_by_origin() == {"ws": 2, "rest": 1}


def test_wait_for_update_wakes_when_another_thread_stores_a_tick() -> None:
    book = PriceBook()
    seen = book.version
    writer = threading.Timer(0.05, book.update, args=(tick(56738.5),))
    writer.start()
    assert book.wait_for_update(seen, timeout=5.0) == seen + 1
    writer.join()
    # Nothing new: returns the same version once the timeout passes.
    assert book.wait_for_update(seen + 1, timeout=0.05) == seen + 1
    # A version already past the one given returns at once.
    assert book.wait_for_update(seen, timeout=None) == seen + 1


def test_listeners_get_every_stored_tick_and_a_failing_one_harms_nobody() -> None:
    book = PriceBook()
    received: list[PriceTick] = []

    def broken(_: PriceTick) -> None:
        raise RuntimeError("listener bug")

    book.add_listener(broken)
    book.add_listener(received.append)
    assert book.update(tick(1.0, 1.0))
    assert not book.update(tick(0.5, 0.0))  # not stored: not announced
    assert book.update(tick(2.0, 2.0))
    assert received == [tick(1.0, 1.0), tick(2.0, 2.0)]
    assert book.listener_errors == 2
    assert book.tick("BTCUSDT") == tick(2.0, 2.0)

    book.remove_listener(broken)
    book.remove_listener(received.append)
    book.update(tick(3.0, 3.0))
    assert len(received) == 2
    assert book.listener_errors == 2


@pytest.mark.timeout(30)
def test_concurrent_writers_leave_the_newest_tick_and_an_exact_version() -> None:
    book = PriceBook()
    symbols = ["BTCUSDT", "ETHUSDT", "1000PEPEUSDT"]
    per_thread = 2000

    def write(offset: int) -> None:
        for i in range(per_thread):
            # Threads interleave timestamps: each tick's time is unique across threads.
            seconds = (i * 4 + offset) / 1000
            book.update(tick(float(i), seconds, symbol=symbols[i % 3], origin="ws"))

    threads = [threading.Thread(target=write, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = book.updates_by_origin()["ws"]
    assert book.version == stored
    assert stored + book.stale_ignored == 4 * per_thread
    # The newest time per symbol is from the last i of that symbol in the thread with offset 3.
    for k, symbol in enumerate(symbols):
        last_i = max(i for i in range(per_thread) if i % 3 == k)
        held = book.tick(symbol)
        assert held is not None
        assert held.at == T0 + timedelta(seconds=(last_i * 4 + 3) / 1000)
        assert held.price == float(last_i)
