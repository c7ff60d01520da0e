"""What the event store keeps of a value, per a pipeline's ``record`` level.

- ``full``: the value as is, except that secrets are **still** redacted: a value stored
  under a secret-looking key (password, token, api_key, authorization, cookie, …) becomes
  ``"[REDACTED]"``, and so do passwords in URLs, bearer/basic credentials and JWTs inside
  strings. Credentials have no debugging value and the store is readable by everyone
  who can open the studio, so no level keeps them.
- ``redacted`` (the default): secrets as above, and strings that look like personal data
  are masked, keeping a hint: ``j***@example.com``, ``****4242`` (Luhn-checked card
  numbers), ``***-**-6789`` (US SSN), ``DE**…3000`` (IBAN, checksum-verified),
  ``***4567`` (phone numbers), ``192.*.*.*`` / ``2001:db8:*`` (IP addresses); bearer
  tokens, JWTs and passwords in URLs become ``[REDACTED]``.
- ``metadata``: no values at all, only the shape: objects keep their keys, arrays become
  ``{"type": "array", "length": n, "items": <shape of the first item>}``, scalars become
  their JSON type name (``"string"``, ``"integer"``, ``"number"``, ``"boolean"``, ``"null"``).

Values are never mutated; unchanged parts are returned as the same objects, so a value
with nothing to redact costs one walk and no copies. Under ``full`` a value of 1 KB of JSON
and more is not even walked whole: when its orjson encoding proves that no string in it
holds a credential, only the dicts are walked, to redact what sits under secret-looking
keys (at about half the cost on a 100 KB webhook); otherwise, or when orjson refuses the
value, the exact walk runs. Both give the same result (``redact_secrets``). Under
``redacted`` every string is still visited, but one that none of the masks could match
(no "@", fewer than four digits, …) skips them (``_maybe_personal``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from functools import lru_cache
from itertools import pairwise
from typing import Any

import orjson

from engine.store.codec import MAX_DEPTH

REDACTED = "[REDACTED]"
LEVELS = ("full", "redacted", "metadata")

# ---------------------------------------------------------------------- secret keys

# Words (of a key split at separators and camelCase) that mark the whole value secret.
_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "secrets", "token", "apikey",
    "authorization", "auth", "cookie", "cookies", "credential", "credentials", "privatekey",
    "sessionid", "jwt", "bearer", "otp", "cvv", "cvc", "signature", "xsrf", "csrf",
    "accesskey", "secretkey", "clientsecret", "refreshtoken", "accesstoken", "idtoken",
})
# Two adjacent words that together mark a secret: api key, private key, session id …
_SECRET_PAIRS = frozenset({
    ("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"),
    ("session", "id"), ("set", "cookie"), ("client", "secret"), ("signing", "key"),
    ("encryption", "key"), ("master", "key"), ("pass", "word"), ("pin", "code"),
})
# Substrings of the squashed key that are unambiguous on their own (``xapikey``).
_SECRET_PARTS = ("password", "passwd", "apikey", "privatekey", "secretkey", "accesstoken",
                 "refreshtoken", "authtoken", "clientsecret", "authorization")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True if a value stored under ``key`` must never be recorded."""
    words = [w.lower() for w in _WORD.findall(key)]
    if not words:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    if any(pair in _SECRET_PAIRS for pair in pairwise(words)):
        return True
    squashed = "".join(words)
    return any(part in squashed for part in _SECRET_PARTS)


# ---------------------------------------------------------------------- personal data

# An Authorization header value; a credential is not a plain lowercase word ("Basic idea").
_BEARER = re.compile(r"\b(Bearer|Basic) +(?![a-z]+\b)[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_URL_PASSWORD = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]+):[^\s/@]+@")
# The local part starts at a boundary that a masked address ("j***@x.org@y") cannot offer.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+*@-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*"
                    r"@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})\b")
_IBAN = re.compile(r"\b([A-Z]{2}[0-9]{2})((?: ?[A-Z0-9]){11,30})\b")
_CARD = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_SSN = re.compile(r"(?<![0-9-])(?!000|666|9[0-9]{2})[0-9]{3}-(?!00)[0-9]{2}-(?!0000)([0-9]{4})(?![0-9-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+[0-9](?:[ .()-]{0,2}[0-9]){6,14}"  # international: +49 30 1234567
    r"|\(?[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4})(?![0-9])")  # North American: (555) 123-4567
_IPV4 = re.compile(r"(?<![0-9.])((?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))"
                   r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}(?![0-9]|\.[0-9])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    s = text[4:] + text[:4]
    return int("".join(str(int(ch, 36)) for ch in s)) % 97 == 1


def _mask_email(m: re.Match[str]) -> str:
    return f"{m.group(1)}***@{m.group(2)}"


def _mask_iban(m: re.Match[str]) -> str:
    compact = (m.group(1) + m.group(2)).replace(" ", "")
    if not 15 <= len(compact) <= 34 or not _iban_valid(compact):
        return m.group(0)
    return compact[:2] + "*" * (len(compact) - 6) + compact[-4:]


def _mask_card(m: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", m.group(0))
    if not 13 <= len(digits) <= 19 or not _luhn(digits):
        return m.group(0)
    return "****" + digits[-4:]


def _mask_phone(m: re.Match[str]) -> str:
    digits = re.sub(r"[^0-9]", "", m.group(0))
    return "***" + digits[-4:]


def _mask_ipv4(m: re.Match[str]) -> str:
    return f"{m.group(1)}.*.*.*"


def _mask_ipv6(m: re.Match[str]) -> str:
    text = m.group(0)
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return text
    head = text.split(":", 1)[0]
    return f"{head}:*" if head else "*:*"


def mask_credentials(text: str) -> str:
    """``text`` with passwords in URLs, bearer/basic credentials and JWTs redacted."""
    if "://" in text and "@" in text:
        text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    if "Bearer" in text or "Basic" in text:
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    return text


_NO_DIGITS = str.maketrans("", "", "0123456789")


def mask_personal_data(text: str) -> str:
    """``text`` with credentials, e-mails, card numbers, national ids, phones and IPs masked.

    A mask can expose another pattern (``a@b.io4111…`` only reads as an address once the
    card number after it is masked), so passes repeat until nothing changes: masking the
    result again changes nothing.
    """
    if not _maybe_personal(text):
        return text  # most strings: nothing any pass below could match
    return _mask_until_stable(text)


def _mask_until_stable(text: str) -> str:
    """``_mask_once`` repeated (at most 5 times) until it changes nothing."""
    for _ in range(5):
        masked = _mask_once(text)
        if masked == text:
            break
        text = masked
    return text


_FOUR_DIGITS = re.compile(r"[0-9](?:[^0-9]*[0-9]){3}")


def _maybe_personal(text: str) -> bool:
    """False only if ``_mask_once(text)`` is ``text``: each of its passes needs an "@"
    (e-mails, URL passwords), "Bearer"/"Basic"/"eyJ", two colons (IPv6) or four digits
    (IPv4; seven for cards, ids, IBANs and phones) before it can match anything."""
    return ("@" in text or "Bearer" in text or "Basic" in text or "eyJ" in text
            or text.count(":") >= 2 or _FOUR_DIGITS.search(text) is not None)


def _mask_once(text: str) -> str:
    text = mask_credentials(text)
    if "@" in text:
        text = _EMAIL.sub(_mask_email, text)
    digits = len(text) - len(text.translate(_NO_DIGITS))
    if digits >= 7:  # the shortest phone number; cards, ids and IBANs have more
        text = _IBAN.sub(_mask_iban, text)
        text = _SSN.sub(r"***-**-\1", text)
        text = _CARD.sub(_mask_card, text)
        text = _PHONE.sub(_mask_phone, text)
    if digits >= 4 and text.count(".") >= 3:
        text = _IPV4.sub(_mask_ipv4, text)
    if text.count(":") >= 2:
        text = _IPV6.sub(_mask_ipv6, text)
    return text


# ---------------------------------------------------------------------- walking values

_KEYS: dict[Any, bool] = {}  # is_secret_key by key, without lru_cache's call overhead


def _key_is_secret(key: Any) -> bool:
    if len(_KEYS) > 20_000:  # keys are mostly a fixed vocabulary; bound it anyway
        _KEYS.clear()
    secret = _KEYS[key] = is_secret_key(key if isinstance(key, str) else str(key))
    return secret


def redact(value: Any, level: str) -> Any:
    """What the store keeps of ``value`` under ``level`` (``full``, ``redacted``, ``metadata``)."""
    if level == "redacted":
        return _bounded_walk(value, mask_personal_data)
    if level == "full":
        return redact_secrets(value)
    if level == "metadata":
        return shape(value)
    raise ValueError(f"unknown record level {level!r}: expected one of {', '.join(LEVELS)}")


# CloudEvents attributes that identify an event (an execution started by a source has its
# envelope as trigger): kept as they are, whatever the level says; a stream entry id like
# 1796688848416-2 would otherwise be masked as a card number.
EVENT_IDENTITY = ("specversion", "id", "source", "type", "time", "datacontenttype", "dataschema")


def redact_trigger(payload: Any, level: str) -> Any:
    """What the store keeps of an execution's trigger: ``redact``, except that a CloudEvents
    envelope's identifying attributes stay readable (its data, subject and extensions do not)."""
    if not isinstance(payload, dict) or payload.get("specversion") != "1.0" \
            or not isinstance(payload.get("id"), str):
        return redact(payload, level)
    kept = {k: payload[k] for k in EVENT_IDENTITY if k in payload}
    rest = redact({k: v for k, v in payload.items() if k not in kept}, level)
    return {**kept, **rest} if isinstance(rest, dict) else {**kept, "shape": rest}


def redact_secrets(value: Any) -> Any:
    """``value`` with secrets removed: what is stored under secret-looking keys, and
    credentials inside strings (URL passwords, bearer/basic credentials, JWTs)."""
    kind = type(value)
    if kind is dict or kind is list or kind is tuple:
        text = _encoded(value)
        if text is not None and len(text) >= _SMALL:
            return _redact_encoded(value, text)
    return _bounded_walk(value, mask_credentials)


def _redact_encoded(value: Any, text: bytes) -> Any:
    """``redact_secrets(value)`` for a dict, list or tuple whose ``_encoded`` form is ``text``."""
    if _credential_in(text):
        return _bounded_walk(value, mask_credentials)
    # No string in it changes, so only values under secret-looking keys can.
    return _keys_redacted(value) if type(value) is dict else _items_redacted(value)


# ---------------------------------------------------------------------- the fast proof

# A string that mask_credentials changes holds a match of _URL_PASSWORD, _BEARER or _JWT,
# so its JSON text holds "://" then "@" with no "/" or "@" between them (the last "/"
# before that "@" is the end of a "://"), "Bearer " or "Basic ", or "eyJ": orjson writes
# these characters as they are, and an escape (\", \\, \n, \u001f) never produces "/"
# or "@". Each test starts from a single byte, which memchr finds at memory speed; a
# multi-byte search costs some 60 times more on a 100 KB text.
_SMALL = 1024  # bytes of JSON below which the exact walk costs less than the proof
_MANY = 64  # past this many candidate bytes one substring search is cheaper than a loop
_CLEAN_KEYS: set[str] = set()  # keys known not to be secret-looking, for set operations
_LEAVES = frozenset({str, int, float, bool, type(None)})


def _encoded(value: Any) -> bytes | None:
    """``value`` as JSON, or None for what the exact walk alone knows how to treat:
    subclasses, non-str keys, cycles, nesting of 255 levels and more, big ints, …"""
    try:
        return orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except (TypeError, orjson.JSONEncodeError):
        return None


def _occurrences(text: bytes, byte: bytes) -> list[int] | None:
    """Where ``byte`` occurs in ``text``, or None when that is more than ``_MANY`` places."""
    if byte not in text:
        return []
    if text.count(byte) > _MANY:
        return None
    found: list[int] = []
    at = text.find(byte)
    while at >= 0:
        found.append(at)
        at = text.find(byte, at + 1)
    return found


def _credential_in(text: bytes) -> bool:
    """Whether some string in JSON ``text`` may hold a credential (never False when one does)."""
    at_b = _occurrences(text, b"B")
    if at_b is None:
        if b"Bearer " in text or b"Basic " in text:
            return True
    elif any(text.startswith(b"Bearer ", i) or text.startswith(b"Basic ", i) for i in at_b):
        return True
    at_j = _occurrences(text, b"J")
    if at_j is None:
        if b"eyJ" in text:
            return True
    elif any(i >= 2 and text.startswith(b"eyJ", i - 2) for i in at_j):
        return True
    at_at = _occurrences(text, b"@")
    if at_at is None:
        return b"://" in text
    for i in at_at:
        slash = text.rfind(b"/", 0, i)
        if slash >= 2 and text.startswith(b"://", slash - 2):
            return True
    return False


def _provably_clean(value: Any) -> bool:
    """True only if ``_bounded_walk(value, mask_credentials)`` returns ``value`` itself:
    orjson encodes it (so: plain dicts, lists, tuples and str keys, no subclass, no cycle,
    nested far less than ``MAX_DEPTH``), its text shows no credential, and no dict in it
    has a secret-looking key. False means "not proven": the exact walk decides."""
    text = _encoded(value)
    if text is None or _credential_in(text):
        return False
    kind = type(value)
    if kind is dict:
        return _keys_redacted(value) is value
    return _items_redacted(value) is value if kind is list or kind is tuple else True


def _keys_redacted(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with what sits under secret-looking keys redacted exactly as
    ``_walk_container`` does, strings left alone: the exact walk's result for a value that
    ``_encoded`` accepts and whose strings ``mask_credentials`` leaves unchanged."""
    if not _CLEAN_KEYS.issuperset(value):
        return _keys_redacted_from(value, None, None)
    for v in value.values():  # the usual case: every key known and not secret
        kind = type(v)
        if kind in _LEAVES:
            continue
        if kind is dict:
            new: Any = _keys_redacted(v)
        elif kind is list or kind is tuple:
            new = _items_redacted(v)
        else:
            continue
        if new is not v:
            return _keys_redacted_from(value, v, new)
    return value


def _keys_redacted_from(value: dict[str, Any], old: Any, new: Any) -> dict[str, Any]:
    """``_keys_redacted(value)`` deciding every key, resuming after the first value that
    is ``old`` (redacted as ``new``) when given: the values before it are unchanged."""
    out: dict[str, Any] | None = None
    items = iter(value.items())
    if old is not None:
        out = dict(value)
        for k, v in items:
            if v is old:
                out[k] = new
                break
    keys = _KEYS
    any_secret = False
    for k, v in items:
        secret = keys.get(k)
        if secret is None:
            secret = _key_is_secret(k)
        kind = type(v)
        if secret:
            any_secret = True
            if v is None or (kind is str and v == REDACTED):
                continue
            new = REDACTED
        elif kind in _LEAVES:
            continue
        elif kind is dict:
            new = _keys_redacted(v)
        elif kind is list or kind is tuple:
            new = _items_redacted(v)
        else:
            continue
        if new is not v:
            if out is None:
                out = dict(value)
            out[k] = new
    if old is None and not any_secret:  # every key was decided: remember them
        if len(_CLEAN_KEYS) > 20_000:
            _CLEAN_KEYS.clear()
        _CLEAN_KEYS.update(value)
    return value if out is None else out


def _items_redacted(value: list[Any] | tuple[Any, ...]) -> list[Any] | tuple[Any, ...]:
    for v in value:
        kind = type(v)
        if kind in _LEAVES:
            continue
        if kind is dict:
            new: Any = _keys_redacted(v)
        elif kind is list or kind is tuple:
            new = _items_redacted(v)
        else:
            continue
        if new is not v:
            return _items_redacted_from(value, v, new)
    return value


def _items_redacted_from(value: list[Any] | tuple[Any, ...], old: Any,
                         new: Any) -> list[Any] | tuple[Any, ...]:
    """``_items_redacted(value)`` resuming after the first item that is ``old``."""
    items = list(value)
    start = next(i for i, v in enumerate(value) if v is old)
    items[start] = new
    for i in range(start + 1, len(items)):
        v = items[i]
        kind = type(v)
        if kind is dict:
            items[i] = _keys_redacted(v)
        elif kind is list or kind is tuple:
            items[i] = _items_redacted(v)
    return items if type(value) is list else tuple(items)


_SCALARS = (int, float, bool, type(None))


CYCLE = "[cycle]"
TOO_DEEP = f"[nested deeper than {MAX_DEPTH} levels]"


class _TooDeep(Exception):
    """The fast walk went ``MAX_DEPTH`` deep: walk again, carefully."""


def _walk(value: Any, mask: Callable[[str], str], depth: int, on_path: set[int] | None) -> Any:
    """``value`` with secrets and (per ``mask``) strings redacted; unchanged parts shared.

    Bounded as the store's codec is (it would write the same markers): a container that
    holds itself is ``"[cycle]"``, one nested ``MAX_DEPTH`` deep the depth marker, so no
    value a step returns can make this recurse until Python's limit. ``on_path`` None: the
    fast walk, which only counts the depth and raises ``_TooDeep`` at the limit (a cycle
    reaches it too); else the ids of the containers being walked (shared ones elsewhere in
    the value are no cycle)."""
    kind = type(value)
    if kind is dict or kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            if on_path is None:
                raise _TooDeep
            return TOO_DEEP
        if on_path is None:
            return _walk_container(value, kind, mask, depth + 1, None)
        if id(value) in on_path:
            return CYCLE
        on_path.add(id(value))
        try:
            return _walk_container(value, kind, mask, depth + 1, on_path)
        finally:
            on_path.discard(id(value))
    if kind is str:
        masked = mask(value)
        return value if masked == value else masked
    if isinstance(value, dict | list | tuple | str):  # subclasses: same rules, plain results
        base = dict(value) if isinstance(value, dict) else (
            str(value) if isinstance(value, str) else list(value))
        result = _walk(base, mask, depth, on_path)
        return value if result is base or (type(base) is str and result == base) else result
    return value


def _bounded_walk(value: Any, mask: Callable[[str], str]) -> Any:
    try:
        return _walk(value, mask, 0, None)
    except _TooDeep:
        return _walk(value, mask, 0, set())


def _walk_container(value: Any, kind: type, mask: Callable[[str], str], depth: int,
                    on_path: set[int] | None) -> Any:
    if kind is dict:
        out: dict[Any, Any] | None = None
        keys = _KEYS
        for k, v in value.items():
            secret = keys.get(k)
            if secret is None:
                secret = _key_is_secret(k)
            vk = type(v)
            if secret:
                if v is None or (vk is str and v == REDACTED):
                    continue
                new: Any = REDACTED
            elif vk is str:
                new = mask(v)
                if new == v:
                    continue
            elif vk in _SCALARS:
                continue
            elif on_path is None and (vk is dict or vk is list):  # the fast walk, one call
                if depth >= MAX_DEPTH:
                    raise _TooDeep
                new = _walk_container(v, vk, mask, depth + 1, None)
                if new is v:
                    continue
            else:
                new = _walk(v, mask, depth, on_path)
                if new is v:
                    continue
            if out is None:
                out = dict(value)
            out[k] = new
        return value if out is None else out
    items: list[Any] | None = None
    for i, v in enumerate(value):
        vk = type(v)
        if vk is str:
            new = mask(v)
            if new == v:
                continue
        elif vk in _SCALARS:
            continue
        elif on_path is None and (vk is dict or vk is list):
            if depth >= MAX_DEPTH:
                raise _TooDeep
            new = _walk_container(v, vk, mask, depth + 1, None)
            if new is v:
                continue
        else:
            new = _walk(v, mask, depth, on_path)
            if new is v:
                continue
        if items is None:
            items = list(value)
        items[i] = new
    if items is None:
        return value
    return items if kind is list else tuple(items)


_TYPE_NAMES = {str: "string", bool: "boolean", int: "integer", float: "number",
               type(None): "null"}


def shape(value: Any, depth: int = 0, on_path: frozenset[int] = frozenset()) -> Any:
    """The shape of ``value`` without any of its content (the ``metadata`` level); bounded
    as ``_walk`` is."""
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if id(value) in on_path:
            return CYCLE
        on_path = on_path | {id(value)}
    if isinstance(value, dict):
        return {str(k): shape(v, depth + 1, on_path) for k, v in value.items()}
    if isinstance(value, list | tuple):
        out: dict[str, Any] = {"type": "array", "length": len(value)}
        if value:
            out["items"] = shape(value[0], depth + 1, on_path)
        return out
    for kind, name in _TYPE_NAMES.items():  # bool before int: True is an int too
        if isinstance(value, kind):
            return name
    return type(value).__name__
