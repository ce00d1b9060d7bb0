"""The signal bus against the machine's real Redis.

Every test works under a key prefix of its own and deletes every key under it afterwards, so test
runs (and parallel CI runs) never see each other's streams, groups or sets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
import redis

from helix_pipelines.bus.consumer import SignalConsumer, StreamSignal
from helix_pipelines.bus.publisher import PublishResult, SignalPublisher
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.secrets import redacted_url
from helix_pipelines.testing.local_services import (
    REDIS_URL,
    redis_url_with_password,
)
from helix_pipelines.testing.signals import make_signal

CREATED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def signal(n: int) -> TradeSignal:
    """Signal number n; the same n always makes an equal signal."""
    side = "long" if n % 2 else "short"
    return make_signal(f"sig-{n:04d}", "BTC", side, entry=60_000.0 + n, created_at=CREATED)


@pytest.fixture
def publisher(prefix: str) -> Iterator[SignalPublisher]:
    with SignalPublisher(REDIS_URL, key_prefix=prefix) as pub:
        yield pub


def consumer(prefix: str, group: str, name: str, **kwargs: int) -> SignalConsumer:
    kwargs.setdefault("block_ms", 50)
    return SignalConsumer(REDIS_URL, group, name, key_prefix=prefix, **kwargs)


def drain(cons: SignalConsumer, count: int = 10) -> list[StreamSignal]:
    """Read until a read returns nothing."""
    out: list[StreamSignal] = []
    while batch := cons.read(count=count):
        out.extend(batch)
    return out


def test_a_group_gets_each_signal_once_split_between_its_consumers(
    publisher: SignalPublisher, prefix: str
) -> None:
    signals = [signal(n) for n in range(20)]
    result = publisher.publish(signals)
    assert result.published == 20
    assert result.duplicates == 0
    assert len(result.stream_ids) == 20
    assert len(set(result.stream_ids)) == 20

    a = consumer(prefix, "executors", "a")
    b = consumer(prefix, "executors", "b")
    got: dict[str, list[StreamSignal]] = {"a": [], "b": []}
    while True:
        batch_a, batch_b = a.read(count=3), b.read(count=3)
        got["a"] += batch_a
        got["b"] += batch_b
        if not batch_a and not batch_b:
            break
    a.ack([s.stream_id for s in got["a"]])
    b.ack([s.stream_id for s in got["b"]])

    ids_a = [s.signal.signal_id for s in got["a"]]
    ids_b = [s.signal.signal_id for s in got["b"]]
    assert (len(ids_a), len(ids_b)) == (11, 9)  # alternating reads of 3: a 3+3+3+2, b 3+3+3
    assert set(ids_a).isdisjoint(ids_b)
    assert sorted(ids_a + ids_b) == [f"sig-{n:04d}" for n in range(20)]
    # Payloads round-trip whole, and stream ids match what the publisher returned.
    by_id = {s.signal.signal_id: s for s in got["a"] + got["b"]}
    assert by_id["sig-0007"].signal == signal(7)
    assert by_id["sig-0007"].deliveries == 1
    assert by_id["sig-0007"].stream_id == result.stream_ids[7]
    assert a.pending() == 0
    # Nothing is left over for a late reader of the same group.
    assert drain(consumer(prefix, "executors", "c")) == []


def test_a_second_group_receives_every_signal_independently(
    publisher: SignalPublisher, prefix: str
) -> None:
    publisher.publish([signal(n) for n in range(5)])
    executors = consumer(prefix, "executors", "a")
    first = drain(executors)
    executors.ack([s.stream_id for s in first])

    # A group created after the fact still sees the stream's history (group starts at id 0).
    dashboards = consumer(prefix, "dashboards", "a")
    second = drain(dashboards)
    assert [s.signal.signal_id for s in first] == [f"sig-{n:04d}" for n in range(5)]
    assert [s.signal.signal_id for s in second] == [f"sig-{n:04d}" for n in range(5)]
    assert [s.stream_id for s in first] == [s.stream_id for s in second]
    assert executors.pending() == 0
    assert dashboards.pending() == 5  # acks are per group


def test_creating_a_consumer_twice_keeps_the_group_and_its_position(
    publisher: SignalPublisher, prefix: str
) -> None:
    publisher.publish([signal(n) for n in range(3)])
    first = consumer(prefix, "executors", "a")
    first.ack([s.stream_id for s in drain(first)])
    restarted = consumer(prefix, "executors", "a")  # BUSYGROUP is ignored, position kept
    assert drain(restarted) == []
    publisher.publish([signal(3)])
    assert [s.signal.signal_id for s in drain(restarted)] == ["sig-0003"]


def test_a_consumer_survives_its_stream_being_deleted(
    publisher: SignalPublisher, prefix: str, client: redis.Redis
) -> None:
    cons = consumer(prefix, "executors", "a")
    publisher.publish([signal(1)])
    cons.ack([s.stream_id for s in drain(cons)])
    client.delete(publisher.stream, publisher.published_set)  # e.g. a flushed Redis
    assert cons.read() == []  # NOGROUP: the group is created again
    publisher.publish([signal(2)])
    assert [s.signal.signal_id for s in drain(cons)] == ["sig-0002"]


def test_publishing_a_signal_again_appends_nothing(
    publisher: SignalPublisher, prefix: str, client: redis.Redis
) -> None:
    first = publisher.publish([signal(1), signal(2)])
    again = publisher.publish([signal(2), signal(3), signal(3)])
    assert first == PublishResult(published=2, duplicates=0, stream_ids=first.stream_ids)
    assert again.published == 1
    assert again.duplicates == 2  # sig-0002 from before, sig-0003 repeated within the call
    assert client.xlen(publisher.stream) == 3
    assert client.smembers(publisher.published_set) == {b"sig-0001", b"sig-0002", b"sig-0003"}
    # A second publisher (another run, another process) shares the same memory of ids.
    with SignalPublisher(REDIS_URL, key_prefix=prefix) as other:
        assert other.publish([signal(1)]) == PublishResult(0, 1, [])
    ids = [fields[b"signal_id"] for _entry_id, fields in client.xrange(publisher.stream, "-", "+")]
    assert ids == [b"sig-0001", b"sig-0002", b"sig-0003"]


def test_concurrent_duplicate_publishes_append_once(prefix: str, client: redis.Redis) -> None:
    publishers = [SignalPublisher(REDIS_URL, key_prefix=prefix) for _ in range(2)]
    rounds = 25
    results: list[list[PublishResult]] = [[], []]

    def run(i: int, barrier: threading.Barrier, batch: list[TradeSignal]) -> None:
        barrier.wait()  # both threads send the same batch at the same moment
        results[i].append(publishers[i].publish(batch))

    for round_no in range(rounds):
        batch = [signal(round_no * 10 + k) for k in range(10)]
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=run, args=(i, barrier, batch)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    for pub in publishers:
        pub.close()

    assert client.xlen(f"{prefix}helix:signals") == rounds * 10
    for mine, theirs in zip(results[0], results[1], strict=True):
        assert mine.published + theirs.published == 10
        assert mine.duplicates + theirs.duplicates == 10
    ids = [fields[b"signal_id"] for _id, fields in client.xrange(f"{prefix}helix:signals")]
    assert len(ids) == len(set(ids)) == rounds * 10


def test_subscribers_are_notified_with_the_new_ids(
    publisher: SignalPublisher, client: redis.Redis
) -> None:
    pubsub = client.pubsub()
    pubsub.subscribe(publisher.channel)
    try:
        confirmation = pubsub.get_message(timeout=2)
        assert confirmation is not None
        assert confirmation["type"] == "subscribe"

        publisher.publish([signal(n) for n in range(60)])
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        assert message is not None
        assert message["channel"] == publisher.channel.encode()
        assert orjson.loads(message["data"]) == {
            "count": 60,
            "signal_ids": [f"sig-{n:04d}" for n in range(50)],  # the first 50 only
            "stream": publisher.stream,
        }

        # Only new signals are announced; an all-duplicate call stays quiet.
        publisher.publish([signal(0), signal(60)])
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        assert message is not None
        assert orjson.loads(message["data"])["signal_ids"] == ["sig-0060"]
        publisher.publish([signal(60)])
        assert pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3) is None
    finally:
        pubsub.close()


def test_entries_of_a_dead_consumer_are_reclaimed_by_another(
    publisher: SignalPublisher, prefix: str
) -> None:
    publisher.publish([signal(n) for n in range(4)])
    dead = consumer(prefix, "executors", "a", claim_idle_ms=200)
    taken = dead.read(count=10)  # "a" dies here: read, never acked
    assert [s.deliveries for s in taken] == [1, 1, 1, 1]
    assert dead.pending() == 4

    survivor = consumer(prefix, "executors", "b", claim_idle_ms=200)
    assert survivor.read(count=10) == []  # not idle long enough yet, and nothing new
    time.sleep(0.3)
    reclaimed = survivor.read(count=10)
    assert [s.stream_id for s in reclaimed] == [s.stream_id for s in taken]
    assert [s.signal for s in reclaimed] == [signal(n) for n in range(4)]
    assert [s.deliveries for s in reclaimed] == [2, 2, 2, 2]
    assert survivor.ack([s.stream_id for s in reclaimed]) == 4
    assert survivor.pending() == 0
    assert dead.pending() == 0
    # Acked entries are not handed out again, to anyone in the group.
    time.sleep(0.25)
    assert survivor.read(count=10) == []
    assert dead.read(count=10) == []


def test_reclaimed_entries_come_before_new_ones_within_count(
    publisher: SignalPublisher, prefix: str
) -> None:
    publisher.publish([signal(n) for n in range(3)])
    consumer(prefix, "executors", "a", claim_idle_ms=100).read(count=3)
    publisher.publish([signal(n) for n in range(3, 6)])
    survivor = consumer(prefix, "executors", "b", claim_idle_ms=100)
    time.sleep(0.2)
    batch = survivor.read(count=4)
    assert [(s.signal.signal_id, s.deliveries) for s in batch] == [
        ("sig-0000", 2),
        ("sig-0001", 2),
        ("sig-0002", 2),
        ("sig-0003", 1),
    ]
    rest = survivor.read(count=10)
    assert [s.signal.signal_id for s in rest] == ["sig-0004", "sig-0005"]
    assert survivor.ack([s.stream_id for s in batch + rest]) == 6
    assert survivor.pending() == 0


def test_malformed_entries_are_dead_lettered_and_good_ones_still_flow(
    publisher: SignalPublisher, prefix: str, client: redis.Redis
) -> None:
    publisher.publish([signal(1)])
    not_json = client.xadd(publisher.stream, {"signal_id": "bad-1", "payload": b"{not json"})
    not_utf8 = client.xadd(publisher.stream, {"payload": b"\xff\xfe\x00"})
    no_payload = client.xadd(publisher.stream, {"signal_id": "bad-3"})
    a_list = client.xadd(publisher.stream, {"payload": b"[1, 2]"})
    publisher.publish([signal(2)])

    cons = consumer(prefix, "executors", "a")
    got = drain(cons)
    assert [s.signal.signal_id for s in got] == ["sig-0001", "sig-0002"]
    assert cons.dead_lettered == 4
    assert cons.ack([s.stream_id for s in got]) == 2
    assert cons.pending() == 0  # malformed entries were acked too

    dead = client.xrange(cons.dead_letter_stream)
    assert [fields[b"source_id"] for _id, fields in dead] == [
        not_json,
        not_utf8,
        no_payload,
        a_list,
    ]
    reasons = [fields[b"reason"].decode() for _id, fields in dead]
    assert reasons[0].startswith("signal payload is not JSON")
    assert reasons[1].startswith("signal payload is not JSON")
    assert reasons[2] == "no 'payload' field"
    assert reasons[3] == "signal payload is a JSON list, not an object"
    first = dead[0][1]
    assert first[b"field:payload"] == b"{not json"
    assert first[b"field:signal_id"] == b"bad-1"
    assert first[b"group"] == b"executors"
    assert first[b"consumer"] == b"a"
    assert first[b"source_stream"] == publisher.stream.encode()


def test_only_trade_signals_are_published_and_nothing_on_a_bad_batch(
    publisher: SignalPublisher, client: redis.Redis
) -> None:
    bad = signal(1).to_row()
    with pytest.raises(TypeError, match=r"signal #1 is a dict, not a TradeSignal"):
        publisher.publish([signal(0), bad])  # type: ignore[list-item]
    assert client.exists(publisher.stream, publisher.published_set) == 0
    assert publisher.publish([]) == PublishResult(0, 0, [])


def test_entries_breaking_the_contract_or_of_unknown_version_are_dead_lettered(
    publisher: SignalPublisher, prefix: str, client: redis.Redis
) -> None:
    def entry(**changes: object) -> bytes:
        row = {**signal(9).to_row(), "created_at": "2026-11-30T12:00:00Z", **changes}
        row["as_of"] = row["created_at"]
        return orjson.dumps(row)

    newer = client.xadd(publisher.stream, {"payload": entry(schema_version=3)})
    stop_above = client.xadd(publisher.stream, {"payload": entry(stop_loss=70_000.0)})
    missing = client.xadd(publisher.stream, {"payload": orjson.dumps({"signal_id": "x"})})
    no_id = client.xadd(publisher.stream, {"payload": entry(signal_id="")})
    fractional_version = client.xadd(publisher.stream, {"payload": entry(schema_version=1.9)})
    leverage_as_text = client.xadd(publisher.stream, {"payload": entry(leverage="2")})
    null_zone = client.xadd(publisher.stream, {"payload": entry(target_zone_id=None)})
    publisher.publish([signal(1)])

    cons = consumer(prefix, "executors", "a")
    assert [s.signal for s in drain(cons)] == [signal(1)]
    dead = {
        fields[b"source_id"]: fields[b"reason"].decode()
        for _, fields in client.xrange(cons.dead_letter_stream)
    }
    assert dead[newer].startswith("signal 'sig-0009' has schema_version 3; this build reads [1, 2]")
    assert dead[stop_above] == ("signal sig-0009: stop and target are not on both sides of entry")
    assert dead[missing].startswith("signal 'x' is malformed: KeyError(")
    # Nothing is coerced into shape: a wrong type is a broken contract, not a guess.
    assert dead[no_id] == "signal '': signal_id must be non-empty text"
    assert "expected an integer, got 1.9" in dead[fractional_version]
    assert "expected an integer, got '2'" in dead[leverage_as_text]
    assert "expected text, got None" in dead[null_zone]
    assert len(dead) == 7


def test_the_stream_is_trimmed_to_about_maxlen(prefix: str, client: redis.Redis) -> None:
    with SignalPublisher(REDIS_URL, key_prefix=prefix, stream_maxlen=50) as pub:
        for start in range(0, 600, 100):
            pub.publish([signal(n) for n in range(start, start + 100)])
        length = client.xlen(pub.stream)
    # Approximate trimming drops whole radix-tree nodes (100 entries by default): never below
    # maxlen, and far below the 600 published.
    assert 50 <= length <= 250
    # Trimmed entries stay remembered: they are not appended again.
    with SignalPublisher(REDIS_URL, key_prefix=prefix, stream_maxlen=50) as pub:
        assert pub.publish([signal(0)]).duplicates == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://helix:s3cret@cache.example:6379/0", "redis://helix:***@cache.example:6379/0"),
        ("redis://:s3cret@cache.example:6379/2", "redis://:***@cache.example:6379/2"),
        ("rediss://default:p%40ss@cache.example:6380", "rediss://default:***@cache.example:6380"),
        (
            "redis://cache.example:6379/0?password=s3cret&socket_timeout=5",
            "redis://cache.example:6379/0?password=***&socket_timeout=5",
        ),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://helix@cache.example:6379", "redis://helix@cache.example:6379"),
        ("unix://:s3cret@/run/redis.sock?db=1", "unix://:***@/run/redis.sock?db=1"),
    ],
)
def test_redacted_url_hides_the_password(url: str, expected: str) -> None:
    assert redacted_url(url) == expected


def test_reprs_and_logs_never_show_the_password(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The local server's default user is `nopass`, which accepts any password: a real
    # connection with a secret in its URL.
    url = redis_url_with_password("s3cret")
    with caplog.at_level("DEBUG"):
        with SignalPublisher(url, key_prefix=prefix) as pub:
            assert pub.publish([signal(1)]).published == 1
        with SignalConsumer(url, "executors", "a", key_prefix=prefix, claim_idle_ms=0) as cons:
            assert len(cons.read()) == 1
            assert len(cons.read()) == 1  # its own entry, idle >= 0 ms: reclaimed and logged
    assert "s3cret" not in repr(pub)
    assert url.replace("s3cret", "***") in repr(pub)
    assert "s3cret" not in repr(cons)
    assert "Published 1 signal(s)" in caplog.text
    assert "reclaimed 1 idle entries" in caplog.text
    assert "s3cret" not in caplog.text
