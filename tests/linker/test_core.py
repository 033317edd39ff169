"""Pure core: link tokens, their redemption check, rate-limit arithmetic, request parsing."""

from datetime import timedelta

import pytest

from services.linker.api.schemas import iso_utc, parse_chat_id
from services.linker.ratelimit import gcra
from services.linker.tokens import (
    TokenProblem,
    TokenState,
    check_token,
    hash_token,
    is_well_formed,
    linking_url,
    new_token,
)
from services.linker.usecase import chat_type_for
from tests.support.examples import AT as NOW

pytestmark = pytest.mark.unit


def test_tokens_are_random_url_safe_start_payloads():
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in tokens:
        assert is_well_formed(token)
        assert len(token) == 43  # 32 bytes = 256 bits, base64url without padding


def test_token_hash_is_sha256_hex_and_not_the_token():
    token = new_token()
    digest = hash_token(token)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest == hash_token(token) and token not in digest


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        ("abcXYZ019_-", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("", False),
        ("has space", False),
        ("plus+slash/", False),
        ("ümlaut", False),
    ],
)
def test_well_formed_tokens_follow_telegrams_start_payload_rules(token, ok):
    assert is_well_formed(token) is ok


def test_linking_url():
    assert linking_url("piwpiwtelegrambot", "abc") == "https://t.me/piwpiwtelegrambot?start=abc"


LIVE = TokenState("u1", expires_at=NOW + timedelta(minutes=15))


@pytest.mark.parametrize(
    ("state", "user", "expected"),
    [
        (LIVE, None, None),
        (LIVE, "u1", None),
        (None, "u1", TokenProblem.NOT_FOUND),
        (LIVE, "u2", TokenProblem.WRONG_USER),
        (TokenState("u1", NOW + timedelta(1), used_at=NOW), "u1", TokenProblem.USED),
        (TokenState("u1", NOW + timedelta(1), revoked_at=NOW), "u1", TokenProblem.REVOKED),
        (TokenState("u1", NOW), "u1", TokenProblem.EXPIRED),
        (TokenState("u1", NOW - timedelta(seconds=1)), None, TokenProblem.EXPIRED),
        # Another user learns nothing about the token's state.
        (TokenState("u1", NOW - timedelta(1), used_at=NOW), "u2", TokenProblem.WRONG_USER),
    ],
)
def test_check_token(state, user, expected):
    assert check_token(state, NOW, user) is expected


def test_gcra_allows_a_burst_then_one_per_interval():
    period = timedelta(minutes=1)
    tat = None
    for _ in range(3):
        decision = gcra(tat, NOW, limit=3, period=period)
        assert decision.allowed
        tat = decision.tat
    refused = gcra(tat, NOW, limit=3, period=period)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(20.0)
    assert refused.tat == tat  # a refusal costs nothing
    assert not gcra(tat, NOW + timedelta(seconds=19), limit=3, period=period).allowed
    assert gcra(tat, NOW + timedelta(seconds=20), limit=3, period=period).allowed
    # After a quiet minute the whole burst is available again.
    later = NOW + timedelta(minutes=5)
    assert gcra(tat, later, limit=3, period=period).tat == later + timedelta(seconds=20)


def test_gcra_needs_a_positive_limit():
    with pytest.raises(ValueError, match="limit"):
        gcra(None, NOW, limit=0, period=timedelta(minutes=1))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7910169750", 7910169750),
        (7910169750, 7910169750),
        ("-1001234567890", -1001234567890),
        ("0", None),
        (0, None),
        ("abc", None),
        ("12.5", None),
        ("1e9", None),
        ("", None),
        (True, None),
        (10**15, None),
        (-(10**15), None),
        (10**15 - 1, 10**15 - 1),
        ("-0", None),
        ("007", None),
        ("99999999999999999999", None),
    ],
)
def test_parse_chat_id(value, expected):
    assert parse_chat_id(value) == expected


def test_iso_utc():
    assert iso_utc(NOW) == "2026-02-26T10:30:00Z"
    assert iso_utc(None) is None


@pytest.mark.parametrize(
    ("chat_id", "given", "expected"),
    [(42, None, "private"), (-42, None, "group"), (-100123, "supergroup", "supergroup")],
)
def test_chat_type_for(chat_id, given, expected):
    assert chat_type_for(chat_id, given) == expected
