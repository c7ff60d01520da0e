"""API keys of the hosted server, in the store's ``api_keys`` table.

A key's secret is ``wfs_<id>_<random>``: shown once by ``create``, stored only as its
SHA-256 hex digest. The ``<id>`` part lets a person tell keys apart in lists and logs
without the secret. Scopes: ``read``, ``run``, ``debug``, ``admin`` (admin implies those
three) and ``deploy`` (writing pipeline files onto the server, ``PUT /definitions``), which
no other scope implies: deployed files run on the server's machine, so a tenant's admin
does not get that power unless the operator grants it by name.

``verify`` is on every request's path, so it keeps a short-lived cache of digest → key
(positive and negative answers; expiry is still checked on every call). A key revoked
through this ``KeyStore`` stops working at once; one revoked by another process (the CLI,
another server) within ``cache_ttl`` seconds. ``last_used`` is written at most once per
``touch_interval`` per key.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import func, select, update

from engine.service.errors import InvalidInput, NotFound
from engine.store import models
from engine.store.store import Store

Scope = Literal["read", "run", "debug", "admin", "deploy"]
SCOPES: tuple[Scope, ...] = ("read", "run", "debug", "admin", "deploy")
IMPLIED_BY_ADMIN: frozenset[Scope] = frozenset({"read", "run", "debug", "admin"})
SECRET_PREFIX = "wfs_"
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CACHE_LIMIT = 10_000


class ApiKey(BaseModel):
    """A key as listed: everything but the secret (which is never stored)."""

    id: str
    name: str
    prefix: str  # "wfs_<id>": the start of the secret, to recognise a key
    tenant: str
    scopes: list[Scope]
    created: float
    expires: float | None = None
    last_used: float | None = None
    active: bool = True

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or ("admin" in self.scopes and scope in IMPLIED_BY_ADMIN)

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and self.expires <= (time.time() if now is None else now)


class NewApiKey(BaseModel):
    """What creating a key returns: the record and the secret, shown this once."""

    key: ApiKey
    secret: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[Scope]:
    chosen: list[Scope] = []
    for scope in scopes:
        if scope not in SCOPES:
            raise InvalidInput(f"unknown scope {scope!r}: use {', '.join(SCOPES)}")
        if scope not in chosen:
            chosen.append(scope)  # type: ignore[arg-type]  # checked just above
    if not chosen:
        raise InvalidInput(f"a key needs at least one scope ({', '.join(SCOPES)})")
    return chosen


def check_tenant(tenant: str) -> str:
    if not _TENANT.fullmatch(tenant):
        raise InvalidInput(f"invalid tenant {tenant!r}: 1-64 letters, digits, '_', '.' or '-', "
                           "starting with a letter or digit")
    return tenant


class KeyStore:
    def __init__(self, store: Store, *, cache_ttl: float = 5.0, touch_interval: float = 60.0):
        self.store = store
        self.cache_ttl = cache_ttl
        self.touch_interval = touch_interval
        self._cache: dict[str, tuple[ApiKey | None, float]] = {}  # digest -> (key, fetched at)

    # ------------------------------------------------------------------ managing

    def create(self, name: str, tenant: str = "default", scopes: Iterable[str] = ("read",),
               expires: float | None = None) -> tuple[ApiKey, str]:
        """A new key; ``expires`` is a unix time (None: never). Returns (record, secret)."""
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("a key needs a name of 1-200 characters (who or what uses it)")
        now = time.time()
        if expires is not None and expires <= now:
            raise InvalidInput("the expiry must be in the future")
        key_id = secrets.token_hex(8)
        secret = f"{SECRET_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(id=key_id, name=name, prefix=f"{SECRET_PREFIX}{key_id}",
                     tenant=check_tenant(tenant), scopes=check_scopes(scopes), created=now,
                     expires=expires)
        with self.store.begin() as conn:
            conn.execute(models.api_keys.insert().values(
                id=key.id, name=key.name, prefix=key.prefix, key_sha256=digest(secret),
                tenant=key.tenant, scopes=list(key.scopes), created=now, expires=expires,
                last_used=None, active=True))
        return key, secret

    def list(self, tenant: str | None = None, *, include_revoked: bool = True) -> builtins.list[ApiKey]:
        t = models.api_keys
        query = select(t).order_by(t.c.created, t.c.id)
        if tenant is not None:
            query = query.where(t.c.tenant == tenant)
        if not include_revoked:
            query = query.where(t.c.active.is_(True))
        with self.store.read() as conn:
            rows = conn.execute(query).mappings().all()
        return [_key(row) for row in rows]

    def get(self, key_id: str, tenant: str | None = None) -> ApiKey:
        t = models.api_keys
        query = select(t).where(t.c.id == key_id)
        if tenant is not None:
            query = query.where(t.c.tenant == tenant)
        with self.store.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"no API key {key_id!r}")
        return _key(row)

    def revoke(self, key_id: str, tenant: str | None = None) -> ApiKey:
        """Deactivate a key (kept for the record); with ``tenant``, only one of that tenant."""
        key = self.get(key_id, tenant)
        with self.store.begin() as conn:
            conn.execute(update(models.api_keys).where(models.api_keys.c.id == key.id)
                         .values(active=False))
        self._cache = {d: entry for d, entry in self._cache.items()
                       if entry[0] is None or entry[0].id != key.id}
        return key.model_copy(update={"active": False})

    def count_active(self) -> int:
        t = models.api_keys
        with self.store.read() as conn:
            return int(conn.scalar(select(func.count()).select_from(t)
                                   .where(t.c.active.is_(True))) or 0)

    # ------------------------------------------------------------------ checking

    def verify(self, secret: str) -> ApiKey | None:
        """The active, unexpired key whose secret this is, else None."""
        if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
            return None
        hashed = digest(secret)
        now = time.time()
        cached = self._cache.get(hashed)
        if cached is not None and now - cached[1] < self.cache_ttl:
            key = cached[0]
        else:
            key = self._load(hashed)
            if len(self._cache) >= _CACHE_LIMIT:  # bounded even under a flood of bad keys
                self._cache.clear()
            self._cache[hashed] = (key, now)
        if key is None or not key.active or key.expired(now):
            return None
        if key.last_used is None or now - key.last_used >= self.touch_interval:
            self._touch(key, now)
        return key

    def _load(self, hashed: str) -> ApiKey | None:
        t = models.api_keys
        with self.store.read() as conn:
            row = conn.execute(select(t).where(t.c.key_sha256 == hashed)).mappings().first()
        return None if row is None else _key(row)

    def _touch(self, key: ApiKey, now: float) -> None:
        key.last_used = now  # the cached record too: the next write waits touch_interval
        with self.store.begin() as conn:
            conn.execute(update(models.api_keys).where(models.api_keys.c.id == key.id)
                         .values(last_used=now))


def _key(row: object) -> ApiKey:
    m = dict(row)  # type: ignore[call-overload]  # a SQLAlchemy RowMapping
    return ApiKey(id=m["id"], name=m["name"], prefix=m["prefix"], tenant=m["tenant"],
                  scopes=[s for s in (m["scopes"] or []) if s in SCOPES], created=m["created"],
                  expires=m["expires"], last_used=m["last_used"], active=bool(m["active"]))
