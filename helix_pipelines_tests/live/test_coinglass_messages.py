"""Parsing CoinGlass `liquidationOrders` messages: numbers as numbers or strings, every kind of
malformed message reported with its reason instead of raised."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from helix_pipelines.contracts.live import LiquidationEvent
from helix_pipelines.live.coinglass_ws import parse_event, parse_message
from helix_pipelines.testing.coinglass_ws_server import liquidation_item, message

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DOCUMENTED = (
    '{"channel":"liquidationOrders","data":[{"baseAsset":"BTC","exName":"Binance",'
    '"price":56738.0,"side":2,"symbol":"BTCUSDT","time":1725416318379,"volUsd":3858.18}]}'
)
BTC_EVENT = LiquidationEvent(
    event_time=datetime(2024, 9, 4, 2, 18, 38, 379_000, tzinfo=UTC),
    received_at=AT,
    base_asset="BTC",
    exchange="Binance",
    symbol="BTCUSDT",
    price=56738.0,
    side_code=2,
    usd=3858.18,
)


def test_the_documented_message_parses_to_its_event_with_the_exact_millisecond() -> None:
    assert parse_message(DOCUMENTED, AT) == ([BTC_EVENT], [])


def test_numbers_sent_as_strings_parse_to_the_same_event() -> None:
    text = message(
        [liquidation_item(price="56738.0", side="2", time_ms="1725416318379", usd="3858.18")]
    )
    assert parse_message(text, AT) == ([BTC_EVENT], [])


def test_whole_floats_are_accepted_for_side_and_time() -> None:
    item = liquidation_item(side=1.0, time_ms=1725416318379.0)  # type: ignore[arg-type]
    event = parse_event(item, AT)
    assert (event.side_code, event.event_time) == (1, BTC_EVENT.event_time)


def test_several_events_in_one_message_keep_their_order() -> None:
    items = [liquidation_item(base_asset=coin, time_ms=1725416318379 + i) for i, coin in
             enumerate(["BTC", "ETH", "1000PEPE"])]  # fmt: skip
    events, problems = parse_message(message(items), AT)
    assert problems == []
    assert [(e.base_asset, e.symbol) for e in events] == [
        ("BTC", "BTCUSDT"), ("ETH", "ETHUSDT"), ("1000PEPE", "1000PEPEUSDT"),
    ]  # fmt: skip


def test_another_channel_is_not_ours_and_not_malformed() -> None:
    assert parse_message('{"channel":"tickers","data":[{"price":1}]}', AT) == ([], [])


def test_an_empty_data_list_is_no_events_and_no_problem() -> None:
    assert parse_message('{"channel":"liquidationOrders","data":[]}', AT) == ([], [])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON"),
        ("", "not JSON"),
        ('{"channel":"liquidationOrders","data":[{"price":NaN}]}', "not JSON"),
        ("[1, 2]", "a JSON list, not an object"),
        ('"pong!"', "a JSON str, not an object"),
        ('{"data":[]}', "no channel"),
        ('{"channel":"liquidationOrders"}', "data is a NoneType, not a list"),
        ('{"channel":"liquidationOrders","data":{"price":1}}', "data is a dict, not a list"),
        ('{"channel":"liquidationOrders","data":[42]}', "data[0]: item is a int, not an object"),
    ],
)
def test_a_malformed_envelope_is_reported(text: str, reason: str) -> None:
    events, problems = parse_message(text, AT)
    assert events == []
    assert len(problems) == 1
    assert problems[0].startswith(reason)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("baseAsset", None, "baseAsset is missing"),
        ("exName", None, "exName is missing"),
        ("symbol", None, "symbol is missing"),
        ("price", None, "price is missing"),
        ("side", None, "side is missing"),
        ("time", None, "time is missing"),
        ("volUsd", None, "volUsd is missing"),
        ("baseAsset", "  ", "baseAsset '  ' is not a name"),
        ("symbol", 42, "symbol 42 is not a name"),
        ("price", "abc", "price 'abc' is not a number"),
        ("price", "NaN", "price 'NaN' is not finite"),
        ("price", "Infinity", "price 'Infinity' is not finite"),
        ("price", "1e999", "price '1e999' is not finite"),
        ("price", -5.0, "price -5.0 is negative"),
        ("price", 0, "price is 0"),
        ("price", [1], "price is a list, not a number"),
        ("volUsd", "-0.5", "volUsd '-0.5' is negative"),
        ("volUsd", True, "volUsd is a bool, not a number"),
        ("side", 3, "side 3 is neither 1 nor 2"),
        ("side", 0, "side 0 is neither 1 nor 2"),
        ("side", 1.5, "side 1.5 is not a whole number"),
        ("side", True, "side is a bool, not a number"),
        ("time", 1725416318379.5, "time 1725416318379.5 is not a whole number"),
        ("time", 1725416318, "time 1725416318 is not a time in ms between 2009 and 2100"),
        ("time", "99999999999999999999", "time '99999999999999999999' is not a time in ms"),
    ],
)
def test_each_invalid_field_is_reported_with_its_reason(
    field: str, value: object, reason: str
) -> None:
    item = liquidation_item()
    if value is None:
        del item[field]
    else:
        item[field] = value
    events, problems = parse_message(
        json.dumps({"channel": "liquidationOrders", "data": [item]}), AT
    )
    assert events == []
    assert len(problems) == 1
    assert problems[0].startswith(f"data[0]: {reason}")


def test_the_valid_items_of_a_partly_malformed_message_still_count() -> None:
    good, bad = liquidation_item(), liquidation_item(usd=-1.0)
    events, problems = parse_message(message([good, bad, good]), AT)
    assert events == [BTC_EVENT, BTC_EVENT]
    assert problems == ["data[1]: volUsd -1.0 is negative"]
