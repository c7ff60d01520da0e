"""Redaction: secrets under every level, personal data under ``redacted``, shape under ``metadata``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.redaction import (
    REDACTED,
    is_secret_key,
    mask_personal_data,
    redact,
    redact_secrets,
    shape,
)

# ---------------------------------------------------------------------- secret keys


@pytest.mark.parametrize("key", [
    "password", "Password", "PASSWORD", "db_password", "passwd", "pwd", "passphrase",
    "token", "access_token", "refreshToken", "id_token", "X-Auth-Token", "secret",
    "client_secret", "webhookSecret", "api_key", "apiKey", "API-KEY", "x-api-key", "apikey",
    "XAPIKEY", "authorization", "Proxy-Authorization", "auth", "cookie", "Set-Cookie",
    "private_key", "privateKey", "credentials", "aws_secret_access_key", "session_id",
    "sessionId", "jwt", "signing_key", "cvv",
])
def test_secret_looking_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "name", "email", "total_tokens", "max_tokens", "author", "keyboard", "primary_key",
    "monkey", "passenger", "id", "url", "status", "description", "tokenizer",
    "session_count", "cookbook",
])
def test_ordinary_keys(key: str) -> None:
    assert not is_secret_key(key)


@pytest.mark.parametrize("level", ["full", "redacted"])
def test_secrets_are_redacted_at_any_depth_under_full_and_redacted(level: str) -> None:
    value = {
        "user": "ann",
        "password": "hunter2",
        "config": {"headers": {"Authorization": "Bearer abc", "Accept": "json"},
                   "items": [{"api_key": 12345, "n": 1}, {"token": {"nested": "secret"}}]},
        "cookie": None,  # nothing to hide
    }
    got = redact(value, level)
    assert got["user"] == "ann" and got["password"] == REDACTED and got["cookie"] is None
    assert got["config"]["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert got["config"]["items"] == [{"api_key": REDACTED, "n": 1}, {"token": REDACTED}]
    assert value["password"] == "hunter2"  # the input is not mutated


def test_credentials_inside_strings_are_redacted_under_every_storing_level() -> None:
    for level in ("full", "redacted"):
        got = redact({
            "dsn": "postgresql://app:s3cr3t@db.internal:5432/prod",
            "header": "Authorization: Bearer abcDEF123456789",
            "basic": "Basic dXNlcjpwYXNzd29yZA==",
            "note": "token is eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sflKxwRJSMeKKF2QT4fw",
            "prose": "Basic idea: Bearer of news",
        }, level)
        assert "s3cr3t" not in got["dsn"] and got["dsn"].startswith("postgresql://app:[REDACTED]@")
        assert got["header"] == "Authorization: Bearer [REDACTED]"
        assert got["basic"] == "Basic [REDACTED]"
        assert got["note"] == "token is [REDACTED]"
        assert got["prose"] == "Basic idea: Bearer of news"
    assert redact_secrets({"password": "x", "email": "a@b.com"}) == {
        "password": REDACTED, "email": "a@b.com"}


def test_full_keeps_everything_else_as_is() -> None:
    value = {"email": "ann@example.com", "ip": "10.1.2.3", "card": "4111 1111 1111 1111",
             "list": [1, 2.5, None, True, "x"]}
    assert redact(value, "full") is value  # nothing to redact: the very same object


# ---------------------------------------------------------------------- personal data


@pytest.mark.parametrize(("text", "masked"), [
    ("john.doe@example.com", "j***@example.com"),
    ("write to Ann.B+tag@mail.example.co.uk today", "write to A***@mail.example.co.uk today"),
    ("4111 1111 1111 1111", "****1111"),
    ("card 4111-1111-1111-1111 ok", "card ****1111 ok"),
    ("5500005555555559", "****5559"),
    ("4111 1111 1111 1112", "4111 1111 1111 1112"),  # fails the Luhn check: not a card
    ("SSN 123-45-6789", "SSN ***-**-6789"),
    ("000-12-3456", "000-12-3456"),  # not a valid SSN area
    ("DE89 3704 0044 0532 0130 00", "DE****************3000"),
    ("GB82WEST12345698765432", "GB****************5432"),
    ("GB82WEST12345698765433", "GB82WEST12345698765433"),  # bad IBAN checksum
    ("+1 (555) 123-4567", "***4567"),
    ("+49 30 1234567", "***4567"),
    ("call (555) 123-4567", "call ***4567"),
    ("555.123.4567", "***4567"),
    ("from 192.168.10.1:8080", "from 192.*.*.*:8080"),
    ("2001:db8::8a2e:370:7334", "2001:*"),
    ("fe80::1", "fe80:*"),
])
def test_personal_data_is_masked_with_a_hint(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked
    assert redact({"v": text}, "redacted") == {"v": masked}


@pytest.mark.parametrize("text", [
    "2024-01-15T10:30:00Z", "2024-01-15", "10:30:45", "version 1.2.3", "order #12345",
    "id 550e8400-e29b-41d4-a716-446655440000", "price 1,234.56", "hello world", "",
    "a:b:c", "sha 3f786850e387550fdab836ed7e6dc881de23001b", "no @ here", "1234",
])
def test_ordinary_strings_are_left_alone(text: str) -> None:
    assert mask_personal_data(text) == text


def test_redacted_masks_inside_lists_and_tuples_and_keeps_types() -> None:
    value = {"people": [{"email": "a@b.org", "age": 31}, ("x@y.io", 2)], "n": 1.5}
    got = redact(value, "redacted")
    assert got == {"people": [{"email": "a***@b.org", "age": 31}, ("x***@y.io", 2)], "n": 1.5}
    assert isinstance(got["people"][1], tuple)


def test_unchanged_branches_are_shared_not_copied() -> None:
    clean = {"a": [1, 2, {"b": "c"}]}
    value = {"clean": clean, "email": "z@example.com"}
    got = redact(value, "redacted")
    assert got["clean"] is clean and got is not value


def test_non_json_values_pass_through() -> None:
    class Thing:
        pass

    thing = Thing()
    assert redact({"t": thing, "b": b"bytes"}, "redacted") == {"t": thing, "b": b"bytes"}
    assert redact(thing, "redacted") is thing


# ---------------------------------------------------------------------- metadata


def test_metadata_keeps_only_the_shape() -> None:
    value = {"user": {"email": "a@b.c", "age": 3, "ok": True, "score": 1.5, "none": None},
             "tags": ["x", "y"], "empty": [], "password": "hunter2"}
    assert redact(value, "metadata") == {
        "user": {"email": "string", "age": "integer", "ok": "boolean", "score": "number",
                 "none": "null"},
        "tags": {"type": "array", "length": 2, "items": "string"},
        "empty": {"type": "array", "length": 0},
        "password": "string",
    }
    assert shape("text") == "string" and shape(b"x") == "bytes"


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown record level 'everything'"):
        redact({}, "everything")


# ---------------------------------------------------------------------- properties

_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["ann@example.com", "4111 1111 1111 1111", "+1 (555) 123-4567",
                     "123-45-6789", "DE89 3704 0044 0532 0130 00", "10.0.0.1", "::1",
                     "Bearer abcdef123456789", "https://u:p@h.io/x", "2001:db8::1"]),
    st.lists(st.sampled_from(["a@b.co", "4111111111111111", " ", "1.2.3.4", ":", "-", "55",
                              "+", "x", "Bearer ", "123-45-6789", "@", "."]),
             max_size=6).map("".join),
)
_KEYS = st.one_of(st.text(max_size=12),
                  st.sampled_from(["password", "api_key", "token", "email", "name", "ip"]))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_KEYS, children,
                                                                       max_size=5),
    max_leaves=30,
)


def _no_secret_values(value: Any) -> bool:
    if isinstance(value, dict):
        return all((v is None or v == REDACTED) if is_secret_key(k) else _no_secret_values(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return all(_no_secret_values(v) for v in value)
    return True


@settings(max_examples=400, deadline=None)
@given(JSON, st.sampled_from(["full", "redacted", "metadata"]))
def test_never_raises_and_stays_json(value: Any, level: str) -> None:
    before = json.dumps(value)
    got = redact(value, level)
    json.dumps(got)
    assert json.dumps(value) == before  # the input is untouched


@settings(max_examples=400, deadline=None)
@given(JSON, st.sampled_from(["full", "redacted"]))
def test_redaction_is_idempotent_and_leaves_no_secret(value: Any, level: str) -> None:
    once = redact(value, level)
    assert redact(once, level) == once
    assert _no_secret_values(once)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_metadata_has_no_scalar_content(value: Any) -> None:
    names = {"string", "integer", "number", "boolean", "null", "array"}

    def leaves(v: Any) -> list[Any]:
        if isinstance(v, dict):
            return [x for k, w in v.items() if k not in ("length",) for x in leaves(w)]
        return [v]

    assert all(leaf in names for leaf in leaves(redact(value, "metadata")))


def test_an_event_triggers_identity_is_kept_and_its_data_redacted() -> None:
    from engine.redaction import redact_trigger

    envelope = {"specversion": "1.0", "id": "1796688848416-2", "source": "redis://h/orders",
                "type": "order.created", "time": "2026-12-08T00:00:00Z",
                "subject": "ann@example.com", "data": {"card": "4111 1111 1111 1111"}}
    kept = redact_trigger(envelope, "redacted")
    # the id looks like a card number to the masker, but it is the event's identity
    assert kept["id"] == "1796688848416-2" and kept["source"] == "redis://h/orders"
    assert kept["type"] == "order.created" and kept["time"] == "2026-12-08T00:00:00Z"
    assert "ann@example.com" not in str(kept) and "4111 1111 1111 1111" not in str(kept)
    # anything else is redacted exactly as before
    other = {"id": "1796688848416-2", "email": "ann@example.com"}
    assert redact_trigger(other, "redacted") == redact(other, "redacted")
    assert redact_trigger(envelope, "metadata")["id"] == "1796688848416-2"
