"""What an error may say: never a value that ``${VAR}`` substitution put into a file.

On a server, ``${DB_URL}`` lends a pipeline the operator's value without showing it to the
tenant. A driver's error does not know that: ``connection to server at "db.internal" …
database "billing" does not exist`` quotes the host and database, an unparsable URL may
quote all of it. So every error the engine records or answers passes through one
``Scrubber``, made per loaded definition from the values its load substituted
(``envvars.Substitutions``): each value (and, for a URL, its user, password, host and
database) is replaced by the variable's name. Independently of substitution, passwords in
URLs (``scheme://user:secret@host``) and ``password=…`` pairs are masked in every error.

Values shorter than ``MIN_LENGTH`` are left alone: ``8080`` or ``true`` would blot out
unrelated words. A value is matched only where it does not continue a longer word, so
the database ``orders`` does not mangle ``orders_archive``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

MIN_LENGTH = 4
REDACTED = "[REDACTED]"

# SQLAlchemy reads a password up to the host's '@'; a raw '@' or '/' in it is common in
# hand-written URLs, so the password runs to the token's last '@' (over-masking in an
# error message is harmless, a leaked tail is not).
_URL_PASSWORD = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*):[^\s'\"]*@")
_PASSWORD_PAIR = re.compile(r"\b(password|passwd|pwd)(\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s,;)]+)",
                            re.IGNORECASE)
_WORD = re.compile(r"\w")


def mask_passwords(text: str) -> str:
    """``text`` with passwords of URLs and ``password=…`` pairs replaced by [REDACTED]."""
    if "://" in text and "@" in text:
        text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    if "=" in text and re.search("p(?:ass)?w(?:or)?d", text, re.IGNORECASE):
        text = _PASSWORD_PAIR.sub(rf"\1\2{REDACTED}", text)
    return text


def _url_parts(name: str, value: str) -> dict[str, str]:
    """The parts of a URL value that drivers quote on their own, each shown as what it is.
    Parsers disagree on URLs with a raw '@' or '/' in the password (SQLAlchemy's host of
    ``u:p/w@x@h`` is ``x@h``), so the parts of both readings count."""
    if "://" not in value:
        return {}
    found: dict[str, str] = {}
    for parts in (_sqlalchemy_parts(value.strip()), _urllib_parts(value.strip())):
        for what, part in parts.items():
            for text in {part, unquote(part)} if part else ():
                found.setdefault(text, f"<{what} of ${{{name}}}>")
    return found


def _sqlalchemy_parts(value: str) -> dict[str, str | None]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        return {}
    return {"user": url.username, "password": url.password, "host": url.host,
            "database": url.database}


def _urllib_parts(value: str) -> dict[str, str | None]:
    try:
        url = urlsplit(value)
        return {"user": url.username, "password": url.password, "host": url.hostname,
                "database": url.path.lstrip("/") or None}
    except ValueError:  # e.g. a port that is not a number
        return {}


class Scrubber:
    """Replaces substituted values (longest first, in one pass) and masks passwords."""

    def __init__(self, substituted: Mapping[str, str] | None = None):
        shown: dict[str, str] = {}
        for name, value in (substituted or {}).items():
            for text, placeholder in _url_parts(name, value).items():
                shown.setdefault(text, placeholder)
        for name, value in (substituted or {}).items():
            shown[value] = f"${{{name}}}"  # the whole value wins over a part that equals it
        self._shown = {text: by for text, by in shown.items() if len(text.strip()) >= MIN_LENGTH}
        self._pattern = _alternation(self._shown) if self._shown else None

    def text(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(lambda m: self._shown[m.group(0)], text)
        return mask_passwords(text)

    def value(self, value: Any) -> Any:
        """``value`` with every string in it scrubbed (dicts and lists are copied)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value

    def error(self, error: dict[str, Any] | None) -> dict[str, Any] | None:
        """An error dict (``{message, type, …}``) as it may be recorded and answered."""
        return None if error is None else self.value(error)


def _alternation(texts: Iterable[str]) -> re.Pattern[str]:
    alternatives = []
    for text in sorted(texts, key=len, reverse=True):
        before = r"(?<!\w)" if _WORD.match(text[0]) else ""
        after = r"(?!\w)" if _WORD.match(text[-1]) else ""
        alternatives.append(f"{before}{re.escape(text)}{after}")
    return re.compile("|".join(alternatives))


NOTHING = Scrubber()  # for definitions that substituted nothing: passwords are still masked
