"""KeyStore over a real store (SQLite and PostgreSQL): secrets shown once, hashed at rest,
scopes, tenants, expiry, revocation and the verify cache."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from engine.server.keys import KeyStore
from engine.service.errors import InvalidInput, NotFound
from engine.store import models
from engine.store.store import Store
from tests.waiting import wait_until


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    yield opened
    opened.close()


def test_secret_is_shown_once_and_stored_only_as_its_hash(store: Store) -> None:
    keys = KeyStore(store)
    key, secret = keys.create("ci", "acme", ["read", "run"])
    assert secret.startswith(f"wfs_{key.id}_") and len(secret) > 40
    assert key.prefix == f"wfs_{key.id}" and key.tenant == "acme" and key.scopes == ["read", "run"]
    with store.read() as conn:
        row = conn.execute(select(models.api_keys)).mappings().one()
    assert row["key_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    stored = " ".join(str(v) for v in row.values())
    assert secret not in stored and secret[len(key.prefix):] not in stored
    verified = keys.verify(secret)
    assert verified is not None and verified.id == key.id and verified.tenant == "acme"


def test_verify_refuses_wrong_revoked_and_expired_keys(store: Store) -> None:
    keys = KeyStore(store)
    key, secret = keys.create("a", scopes=["admin"])
    assert keys.verify(secret) is not None
    assert keys.verify(secret + "x") is None
    assert keys.verify("not-a-key") is None
    assert keys.verify("") is None
    keys.revoke(key.id)
    assert keys.verify(secret) is None  # at once on the KeyStore that revoked it
    # Expiry is checked on every call, cache or not: a key cached for an hour still expires.
    cached = KeyStore(store, cache_ttl=3600)
    _short, short_secret = cached.create("short", expires=time.time() + 3)  # 3 s: ample to verify once
    assert cached.verify(short_secret) is not None
    wait_until(lambda: cached.verify(short_secret) is None, "the short key to expire")


def test_revocation_elsewhere_applies_after_the_cache_ttl(store: Store) -> None:
    server = KeyStore(store, cache_ttl=0.2)
    cli = KeyStore(store)
    key, secret = cli.create("x", scopes=["read"])
    assert server.verify(secret) is not None
    cli.revoke(key.id)
    time.sleep(0.25)
    assert server.verify(secret) is None


def test_scope_checks_admin_implies_all(store: Store) -> None:
    keys = KeyStore(store)
    admin, _ = keys.create("admin", scopes=["admin"])
    reader, _ = keys.create("reader", scopes=["read"])
    assert all(admin.allows(s) for s in ("read", "run", "debug", "admin"))
    assert reader.allows("read") and not reader.allows("run") and not reader.allows("admin")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": " "}, "name"),
    ({"name": "x", "scopes": []}, "at least one scope"),
    ({"name": "x", "scopes": ["write"]}, "unknown scope 'write'"),
    ({"name": "x", "tenant": "a b"}, "invalid tenant"),
    ({"name": "x", "expires": 1.0}, "future"),
])
def test_create_rejects_bad_input(store: Store, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        KeyStore(store).create(**kwargs)


def test_list_by_tenant_and_revoke_within_a_tenant(store: Store) -> None:
    keys = KeyStore(store)
    a, _ = keys.create("a", "t1")
    b, _ = keys.create("b", "t2")
    assert [k.id for k in keys.list()] == [a.id, b.id]
    assert [k.id for k in keys.list("t2")] == [b.id]
    with pytest.raises(NotFound):
        keys.revoke(a.id, tenant="t2")
    assert keys.revoke(a.id, tenant="t1").active is False
    assert [k.active for k in keys.list("t1")] == [False]
    assert [k.id for k in keys.list(include_revoked=False)] == [b.id]
    assert keys.count_active() == 1


def test_last_used_is_written_throttled(store: Store) -> None:
    keys = KeyStore(store, cache_ttl=0)
    key, secret = keys.create("k")
    assert keys.get(key.id).last_used is None
    keys.verify(secret)
    first = keys.get(key.id).last_used
    assert first is not None
    time.sleep(0.01)
    keys.verify(secret)
    assert keys.get(key.id).last_used == first  # within touch_interval: not written again
    eager = KeyStore(store, cache_ttl=0, touch_interval=0)
    eager.verify(secret)
    assert keys.get(key.id).last_used > first
