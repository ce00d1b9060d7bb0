"""Unit tests of how CoinGlass failures are classified, and of the helpers the client builds on.

The retry policy is decided entirely by the exception *type* `error_for_status` returns, so each
status is checked against its exact class (not an isinstance that a base class would satisfy).
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from helix_pipelines.coinglass.client import _code_as_status, peek_code, retry_after_seconds
from helix_pipelines.coinglass.errors import (
    RETRYABLE,
    CoinGlassAuthError,
    CoinGlassError,
    CoinGlassPayloadError,
    CoinGlassRateLimitError,
    CoinGlassRequestError,
    CoinGlassServerError,
    error_for_status,
)
from helix_pipelines.secrets import redact


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, CoinGlassRequestError),
        (401, CoinGlassAuthError),
        (403, CoinGlassAuthError),
        (404, CoinGlassRequestError),
        (405, CoinGlassRequestError),
        (408, CoinGlassServerError),
        (409, CoinGlassRequestError),
        (422, CoinGlassRequestError),
        (429, CoinGlassRateLimitError),
        (499, CoinGlassRequestError),
        (500, CoinGlassServerError),
        (502, CoinGlassServerError),
        (503, CoinGlassServerError),
        (504, CoinGlassServerError),
        (599, CoinGlassServerError),
        (200, CoinGlassPayloadError),
        (302, CoinGlassPayloadError),
    ],
)
def test_error_for_status_picks_the_exact_type(status: int, expected: type[CoinGlassError]) -> None:
    error = error_for_status(status, "GET /x?symbol=BTC: boom", "c1")
    assert type(error) is expected
    assert str(error) == "GET /x?symbol=BTC: boom"
    assert error.status == status
    assert error.code == "c1"


def test_error_for_status_code_defaults_to_none() -> None:
    assert error_for_status(500, "m").code is None


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (422, False),
        (429, True),
        (500, True),
        (503, True),
        (200, False),
    ],
)
def test_only_rate_limit_timeouts_and_server_errors_are_retryable(
    status: int, retryable: bool
) -> None:
    assert isinstance(error_for_status(status, "m"), RETRYABLE) is retryable


def test_every_error_type_is_a_coinglass_error() -> None:
    for cls in (
        CoinGlassAuthError,
        CoinGlassRequestError,
        CoinGlassRateLimitError,
        CoinGlassServerError,
        CoinGlassPayloadError,
    ):
        assert issubclass(cls, CoinGlassError)
    assert set(RETRYABLE) == {CoinGlassRateLimitError, CoinGlassServerError}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"code":"0","msg":"success","data":[]}', "0"),
        (b'{"code": "400", "msg": "bad"}', "400"),
        (b'{"code":0,"data":null}', "0"),
        (b'{"code" : 429}', "429"),
        (b'{"code":"-1","msg":"x"}', "-1"),
        (b'{"msg":"success","code":"500","data":null}', "500"),
        (b'{"data":{"y_axis":[1,2]}}', None),
        (b"", None),
        (b"<html>502 Bad Gateway</html>", None),
    ],
)
def test_peek_code(body: bytes, code: str | None) -> None:
    assert peek_code(body) == code


def test_peek_code_only_looks_at_the_head_of_the_body() -> None:
    """A large heatmap is not scanned: `code` far into the body is not the envelope's."""
    padding = b'{"data":{"y_axis":[' + b"1.0," * 100 + b'1.0]},"code":"500"}'
    assert len(padding) > 256
    assert peek_code(padding) is None
    real = orjson.dumps({"code": "0", "msg": "success", "data": {"y_axis": [1.0] * 500}})
    assert peek_code(real) == "0"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "-2"}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"Retry-After": ""}, None),
        ({}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(httpx.Headers(headers)) == seconds


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("400", 400),
        ("401", 401),
        ("403", 403),
        ("404", 404),
        ("408", 408),
        ("429", 429),
        ("500", 500),
        ("503", 503),
        ("599", 599),
        # Codes that are not HTTP-like error statuses: treated as a bad request, never retried.
        ("0", 400),
        ("1", 400),
        ("200", 400),
        ("399", 400),
        ("600", 400),
        ("-1", 400),
        ("40001", 400),
        ("abc", 400),
        ("", 400),
    ],
)
def test_code_as_status(code: str, status: int) -> None:
    assert _code_as_status(code) == status


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("500", CoinGlassServerError),
        ("429", CoinGlassRateLimitError),
        ("401", CoinGlassAuthError),
        ("400", CoinGlassRequestError),
        ("10001", CoinGlassRequestError),
        ("oops", CoinGlassRequestError),
    ],
)
def test_body_codes_map_through_the_same_table(code: str, expected: type[CoinGlassError]) -> None:
    error = error_for_status(_code_as_status(code), f"code {code}", code)
    assert type(error) is expected
    assert error.code == code


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        ("key=abc123 and again abc123", "abc123", "key=*** and again ***"),
        ("nothing to hide", "abc123", "nothing to hide"),
        ("abc123", "abc123", "***"),
        ("text with abc", "", "text with abc"),
        ("text with abc", None, "text with abc"),
        ("", "abc123", ""),
        # Short secrets are tokens, never pieces of ordinary words.
        ("Invalid API key", "k", "Invalid API key"),
        ("Invalid API key k", "k", "Invalid API key ***"),
        ("api_key=k&symbol=BTC", "k", "api_key=***&symbol=BTC"),
        ("secret abcdef abcdefgh xabcdef", "abcdef", "secret *** abcdefgh xabcdef"),
        # A long key is caught even glued into other text (Bybit's 10004 origin_string).
        (
            "error sign! origin_string[1796163859325helixFakeBybitKey015000{}]",
            "helixFakeBybitKey01",
            "error sign! origin_string[1796163859325***5000{}]",
        ),
        # Long keys are caught wherever a URL, a header or JSON quotes them.
        (
            'GET /x?cg-api-key=test-cg-key-0123456789abcdef&range=1y {"key":"test-cg-key-0123456789abcdef"}',
            "test-cg-key-0123456789abcdef",
            'GET /x?cg-api-key=***&range=1y {"key":"***"}',
        ),
        (
            "CG-API-KEY: 9f8e7d6c5b4a39281706f5e4d3c2b1a0.",
            "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            "CG-API-KEY: ***.",
        ),
        ("a.b*c a.bxc", "a.b*c", "*** a.bxc"),
    ],
)
def test_redact(text: str, secret: str | None, expected: str) -> None:
    assert redact(text, secret) == expected


@pytest.mark.parametrize(
    ("header", "expected"), [("inf", None), ("nan", None), ("1e9", 120.0), ("-3", 0.0)]
)
def test_retry_after_is_finite_and_capped(header: str, expected: float | None) -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": header})) == expected
