"""``record: full`` proves most values clean without walking them: the proof must never say
"clean" where the exact walk would change something, and redact() must return exactly what
the exact walk returns (the same object when nothing is redacted). ``record: redacted``
skips the masking passes for a string that none of them could match: the guard must never
skip a string they would change."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.redaction import (
    CYCLE,
    REDACTED,
    TOO_DEEP,
    _bounded_walk,
    _credential_in,
    _encoded,
    _mask_once,
    _maybe_personal,
    _provably_clean,
    _redact_encoded,
    is_secret_key,
    mask_credentials,
    mask_personal_data,
    redact,
    redact_secrets,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from payloads import KB, webhook


def exact(value: Any) -> Any:
    """The exact walk: what ``record: full`` stored before the fast proof existed."""
    return _bounded_walk(value, mask_credentials)


def same(got: Any, want: Any) -> bool:
    """Equal, with the same types all the way down (a tuple is no list, True is no 1)."""
    if got is want:
        return True
    if type(got) is not type(want):
        return False
    if isinstance(want, dict):
        return list(got) == list(want) and all(same(got[k], want[k]) for k in want)
    if isinstance(want, list | tuple):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want, strict=True))
    return bool(got == want)


def check(value: Any) -> None:
    want = exact(value)
    got = redact(value, "full")
    assert same(got, want)
    assert (got is value) == (want is value)  # nothing redacted: the very same object
    assert same(redact_secrets(value), want)
    if _provably_clean(value):
        assert want is value, "proved clean, yet the walk changes it"
    text = _encoded(value)
    if text is not None and isinstance(value, dict | list | tuple):  # the path of big values
        fast = _redact_encoded(value, text)
        assert same(fast, want) and (fast is value) == (want is value)


# ---------------------------------------------------------------------- strategies

_WORDS = ["password", "pass", "word", "pwd", "api", "key", "token", "tokens", "auth", "author",
          "secret", "session", "id", "set", "cookie", "pin", "code", "private", "access",
          "client", "jwt", "otp", "name", "email", "monkey", "x", "passenger", "sign", "ature"]
_SEPARATORS = ["", "_", "-", ".", " ", '"', "\\", "\n", "\x01", "é", "\u212a", "2", "/"]
_CASES = [str.lower, str.upper, str.title, lambda w: w]


@st.composite
def secretish_keys(draw: st.DrawFn) -> str:
    """Keys built from the words secret keys are made of, in any case, with any separator
    (escaped in JSON or not, non-ASCII, digits), camelCase or squashed."""
    words = draw(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=3))
    cased = [draw(st.sampled_from(_CASES))(w) for w in words]
    key = draw(st.sampled_from(_SEPARATORS)).join(cased)
    return draw(st.sampled_from(["", "X-", "my", '"'])) + key


_PIECES = ["https://", "postgres://", "git+ssh://", "u", "user", ":", "p@ss", "@", "/", "host",
           "Bearer ", "Basic ", "Bearer", "bearer ", "  ", "abcdefgh12345", "ABCDEFGH+/=", "idea",
           "eyJ", "eyJhbGciOiJIUzI1NiJ9", ".", "eyJzdWIiOiIxMjMifQ", '"', "\\", "\n", "\x01",
           "\x1f", "é", "\u2028", " ", "J", "B", "ey", "[REDACTED]", "mailto:a@b.io", "//"]
STRINGS = st.one_of(st.text(max_size=30),
                    st.lists(st.sampled_from(_PIECES), max_size=9).map("".join))
KEYS = st.one_of(st.text(max_size=12), secretish_keys(),
                 st.sampled_from(["password", "api_key", "token", "email", "name", "n"]))
ODD_KEYS = st.one_of(st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False),
                     st.tuples(st.sampled_from(["api", "x"]), st.sampled_from(["key", "y"])))


class Dict(dict[Any, Any]):
    pass


class List(list[Any]):
    pass


class Text(str):
    pass


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), STRINGS,
                    STRINGS.map(Text))
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=3).map(tuple),
        st.lists(children, max_size=3).map(List),
        st.dictionaries(KEYS, children, max_size=5),
        st.dictionaries(KEYS, children, max_size=3).map(Dict),
        st.dictionaries(st.one_of(KEYS, ODD_KEYS), children, max_size=3),
    ),
    max_leaves=30,
)
# What orjson encodes, with secret-looking keys and credential-like strings: the keys path.
ENCODABLE = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | STRINGS
    | st.just(REDACTED),
    lambda children: st.lists(children, max_size=5) | st.lists(children, max_size=3).map(tuple)
    | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=30,
)
# Plain JSON that is mostly clean, so that the proof often says so and is checked then.
PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.lists(children, max_size=3).map(tuple)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=40,
)


# ---------------------------------------------------------------------- properties


@settings(max_examples=600, deadline=None)
@given(JSONISH)
def test_full_is_exactly_the_walk(value: Any) -> None:
    check(value)


@settings(max_examples=800, deadline=None)
@given(ENCODABLE)
def test_full_is_exactly_the_walk_on_what_orjson_encodes(value: Any) -> None:
    check(value)


@settings(max_examples=300, deadline=None)
@given(PLAIN)
def test_full_is_exactly_the_walk_on_plain_json(value: Any) -> None:
    check(value)


@settings(max_examples=800, deadline=None)
@given(STRINGS, st.text(max_size=5), st.text(max_size=5))
def test_a_string_the_walk_masks_is_never_proved_clean(text: str, before: str,
                                                       after: str) -> None:
    if mask_credentials(text) == text:
        return
    for value in (text, [before, text, after], {"a": before, before + "b": text, "c": after}):
        try:
            encoded = orjson.dumps(value)
        except TypeError:  # surrogates: orjson refuses, the walk decides
            continue
        assert _credential_in(encoded)
    assert not _provably_clean([text]) and redact([text], "full") == [mask_credentials(text)]


@settings(max_examples=500, deadline=None)
@given(secretish_keys(), st.integers(0, 4))
def test_a_secret_key_at_any_depth_is_never_proved_clean(key: str, depth: int) -> None:
    value: Any = {key: "value"}
    for i in range(depth):
        value = [value] if i % 2 else {"level": value}
    if is_secret_key(key):
        assert not _provably_clean(value)
    check(value)


# ---------------------------------------------------------------------- examples


def test_a_clean_webhook_is_returned_as_is() -> None:
    for size in (KB, 107 * KB):
        payload = webhook(size, 3)
        assert _provably_clean(payload)
        assert redact(payload, "full") is payload


@pytest.mark.parametrize(("where", "secret", "masked"), [
    ("key", {"X-Api-Key": "k-123"}, {"X-Api-Key": REDACTED}),
    ("key", {"pass\"word": "hunter2"}, {"pass\"word": REDACTED}),
    ("key", {"pass\nword": "hunter2"}, {"pass\nword": REDACTED}),
    ("key", {":password": "hunter2"}, {":password": REDACTED}),
    ("key", {"PASSé": 1, "api\u212akey": 2}, {"PASSé": 1, "api\u212akey": REDACTED}),
    ("url", {"dsn": 'postgres://u:p"w\\@db/x'}, {"dsn": "postgres://u:[REDACTED]@db/x"}),
    ("url", {"dsn": "redis://default:s3cr3t@cache:6379"},
     {"dsn": "redis://default:[REDACTED]@cache:6379"}),
    ("bearer", {"h": "Bearer abcdefgh12345"}, {"h": "Bearer [REDACTED]"}),
    ("jwt", {"t": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abc"}, {"t": REDACTED}),
])
def test_a_secret_deep_in_a_webhook_is_redacted(where: str, secret: dict[str, Any],
                                                masked: dict[str, Any]) -> None:
    payload = webhook(107 * KB, 5)
    item = payload["data"]["order"]["line_items"][-1]
    item["variant"]["options"].update(secret)
    got = redact(payload, "full")
    assert got["data"]["order"]["line_items"][-1]["variant"]["options"] == {
        **item["variant"]["options"], **masked}
    assert got["data"]["order"]["line_items"][0] is payload["data"]["order"]["line_items"][0]
    check(payload)


def test_many_candidate_bytes_take_the_plain_search() -> None:
    busy = {"b": "B" * 200, "j": "J" * 200, "at": "@" * 200}
    assert redact(busy, "full") is busy
    assert redact({**busy, "h": "Basic dXNlcjpwYXNzd29yZA=="}, "full")["h"] == "Basic [REDACTED]"
    assert redact({**busy, "t": "x eyJabcdef.ghijkl.m"}, "full")["t"] == "x [REDACTED]"
    assert redact({**busy, "u": "ftp://a:b@c"}, "full")["u"] == "ftp://a:[REDACTED]@c"


def test_what_orjson_refuses_goes_to_the_exact_walk() -> None:
    class Loud(str):
        def __str__(self) -> str:
            return "Bearer abcdefgh12345"

    cyclic: list[Any] = ["x"]
    cyclic.append(cyclic)
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    values = [
        {("api", "key"): "v"}, {1: "Bearer abcdefgh12345"}, [Loud("quiet")], Dict(token="t"),
        [2**70, {"password": 1}], ["\ud800", {"secret": 2}], cyclic, deep, {"b": b"bytes"},
    ]
    for value in values:
        assert not _provably_clean(value)
        check(value)
    assert redact([Loud("quiet")], "full") == ["Bearer [REDACTED]"]
    assert redact(cyclic, "full") == ["x", CYCLE]
    assert TOO_DEEP in repr(redact(deep, "full"))


def test_secret_keys_holding_nothing_stay_shared() -> None:
    value = {"password": None, "token": REDACTED, "n": [1, 2]}
    assert _provably_clean(value)  # secret-looking keys, but nothing under them to hide
    assert redact(value, "full") is value
    assert redact({**value, "token": "t"}, "full")["token"] == REDACTED


# ---------------------------------------------------------------------- record: redacted

_PERSONAL = ["a@b.io", "ann.lee@example.com", "4111 1111 1111 1111", "4111-1111-1111-1111",
             "123-45-6789", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
             "+49 30 1234567", "(555) 123-4567", "555.123.4567", "192.168.1.1", "10.0.0.1",
             "2001:db8::1", "fe80::1", "::", "https://u:p@h", "Bearer abcdefgh1234", "eyJabcde.fghij.k",
             "0", "1", "12", "123", "1234", ".", ":", "-", " ", "+", "@", "x", "é", "\n", "٣"]


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(max_size=40),
                 st.lists(st.sampled_from(_PERSONAL), max_size=6).map("".join)))
def test_a_string_the_masks_would_change_is_never_skipped(text: str) -> None:
    if not _maybe_personal(text):
        assert _mask_once(text) == text
        assert mask_personal_data(text) is text


def test_the_guard_lets_personal_data_through() -> None:
    for text in _PERSONAL[:18]:
        assert _maybe_personal(text)
        assert mask_personal_data(text) != text
    for text in ("alpha bravo", "SKU 123", "1:30 pm", "v1.2.3", "", "٣٣٣٣"):
        assert not _maybe_personal(text) and mask_personal_data(text) is text
