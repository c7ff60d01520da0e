"""The event store: opening (and migrating) the database, and every query the engine needs.

``Store.open(url)`` accepts ``sqlite:///path``, ``sqlite://`` (in memory), a plain file
path, or ``postgresql://user@host/db`` (run through psycopg 3). Without a URL the store
is ``store.db`` in the user's data directory. Methods are synchronous and short; the
engine calls them from its event loop. Recording goes through ``store.recorder``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    false,
    func,
    make_url,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from engine.errors import StoreError
from engine.store import models
from engine.store.batch import Sink
from engine.store.codec import dumps, loads
from engine.store.locks import StoreLocks
from engine.store.payload_refs import needs_payload, restore_payloads
from engine.store.presence import Listener, PgPresence, SqlitePresence, new_instance_id
from engine.store.recorder import Recorder
from engine.store.records import EventRecord, ExecutionRecord, StepRunRecord
from engine.store.recovery import Recovered, recover_pg, recover_sqlite
from engine.store.sink_core import CoreSink
from engine.store.sink_pg import PgSink
from engine.store.sink_sqlite import SqliteSink

SQLITE_INLINE_ROWS = 3000  # larger SQLite batches are written off the loop (see recorder.py)
HEAD_REVISION = "0005"  # the newest migration in migrations/versions (a test keeps them equal)
MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK = 0x77667374  # advisory lock id held while migrating a PostgreSQL store
_MAX_KEY = 255  # longer idempotency keys are stored as their sha256


def default_url() -> str:
    """``sqlite:///<user data dir>/wfstudio/store.db``; the directory is created."""
    from platformdirs import user_data_dir

    directory = Path(user_data_dir("wfstudio"))
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'store.db'}"


def _parse_url(url: str) -> URL:
    if "://" not in url:  # a plain path to a SQLite file
        return URL.create("sqlite", database=url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid store URL {url!r}: expected sqlite:///path/to/store.db "
                         "or postgresql://user@host:5432/dbname") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise StoreError(f"store URL {parsed.render_as_string(hide_password=True)!r}: "
                             f"PostgreSQL is used through psycopg 3; drop the '+{driver}'")
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed
    raise StoreError(f"unsupported store URL {url!r}: the store runs on SQLite "
                     "(sqlite:///path) or PostgreSQL (postgresql://user@host/db)")


def _shown(url: str, parsed: URL) -> str:
    """The URL as the user wrote it, password hidden (for messages and ``Store.url``)."""
    if "://" not in url:
        return parsed.render_as_string()
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # The driver's implicit transactions are off; SQLAlchemy's begin event issues BEGIN.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout = 30000")
    # Switching a new file to WAL needs an exclusive lock and SQLite does not wait for it
    # through busy_timeout: when several processes open one new store at once, retry.
    for attempt in range(100):
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # ``store_begin="IMMEDIATE"`` takes the write lock up front, so a transaction that
    # reads before it writes cannot fail half-way on a lock upgrade.
    mode = conn.get_execution_options().get("store_begin", "")
    conn.exec_driver_sql(f"BEGIN {mode}")


class Store:
    """One database holding executions, events, step runs and the engine's other tables."""

    def __init__(self, engine: Engine, url: str, *, core_recorder: bool = False):
        self._engine = engine
        self.url = url  # as given, password hidden
        self.dialect: str = engine.dialect.name
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        memory = self.dialect == "sqlite" and engine.url.database in (None, "", ":memory:")
        sink: Sink
        if core_recorder or memory:
            sink = CoreSink(engine)
        elif self.dialect == "sqlite":
            sink = SqliteSink(engine)
        else:
            sink = PgSink(engine)
        # SQLite writes batches inline when the lock is free (see recorder.py); a server
        # round trip always goes to a worker thread. In memory there is one shared
        # connection: write on the loop thread, never in parallel with a read.
        inline = SQLITE_INLINE_ROWS if self.dialect == "sqlite" else 0
        self.recorder = Recorder(sink, inline_rows=inline, threaded=not memory)
        self._closed = False
        # Which engine process this open store is (see presence.py): the owner of the
        # executions, DLQ retries and backfills it runs, for crash recovery by others.
        self.instance_id = new_instance_id()
        self.recorder.owner = self.instance_id
        self._locks = StoreLocks(engine, "memory:" + self.instance_id if memory else
                                 f"{self.dialect}:{engine.url.render_as_string(hide_password=True)}")
        self._pg_presence: PgPresence | None = None
        self._sqlite_presence: SqlitePresence | None = None
        self.recovered = Recovered()  # what recovery found when this store opened

    def _start_presence(self) -> None:
        """Register this instance and recover what dead ones left (see recovery.py)."""
        if self.dialect == "postgresql":
            self._pg_presence = PgPresence(self._engine, self.instance_id, sweep=self._sweep)
            self.recovered = self.recover()
        elif self._engine.url.database not in (None, "", ":memory:"):
            presence = self._sqlite_presence = SqlitePresence(str(self._engine.url.database))
            try:
                if presence.alone:
                    self.recovered = self.recover()
            finally:
                presence.settle()

    def recover(self) -> Recovered:
        """Mark what dead engine processes left running; returns what was found.

        PostgreSQL: any instance whose liveness lock is free is dead. SQLite: only when this
        store was the only one open on the file at open (otherwise nothing is touched).
        """
        if self.dialect == "postgresql":
            with self.begin() as conn:
                return recover_pg(conn, self.instance_id)
        if self._sqlite_presence is not None and self._sqlite_presence.alone:
            with self.begin() as conn:
                return recover_sqlite(conn)
        return Recovered()

    def _sweep(self) -> None:
        if not self._closed:
            self.recover()

    # ------------------------------------------------------------------ cross-process

    @property
    def distributed(self) -> bool:
        """Whether locks and notifications reach other processes (PostgreSQL)."""
        return self._pg_presence is not None

    def lock(self, name: str, timeout: float | None = None) -> AbstractAsyncContextManager[None]:
        """``async with store.lock(name, timeout=5):`` one holder of ``name`` at a time.

        PostgreSQL: across every process on the database (advisory locks; a dead process's
        locks go with its connection). SQLite: within this process. A lock not free within
        ``timeout`` seconds raises ``LockTimeout`` (a ``StoreError``).
        """
        return self._locks.lock(name, timeout)

    def listen(self, channel: str, listener: Listener) -> None:
        """Call ``listener(channel, payload)`` (on a background thread) for each NOTIFY on
        ``channel`` (one of presence.CHANNELS). Nothing on SQLite."""
        if self._pg_presence is not None:
            self._pg_presence.listen(channel, listener)

    def unlisten(self, channel: str, listener: Listener) -> None:
        if self._pg_presence is not None:
            self._pg_presence.unlisten(channel, listener)

    def notify(self, channel: str, payload: str, conn: Connection | None = None) -> None:
        """NOTIFY every process listening on ``channel`` (PostgreSQL; delivered at commit,
        so pass ``conn`` to send it with that transaction's writes)."""
        if self.dialect != "postgresql":
            return
        if conn is not None:
            conn.exec_driver_sql("SELECT pg_notify(%(c)s, %(p)s)", {"c": channel, "p": payload})
            return
        with self.begin() as own:
            own.exec_driver_sql("SELECT pg_notify(%(c)s, %(p)s)", {"c": channel, "p": payload})

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, url: str | None = None, *, core_recorder: bool = False) -> Store:
        """Open (creating and migrating as needed) the store at ``url``.

        ``core_recorder`` makes the recorder write through SQLAlchemy Core (the reference
        the benchmarks compare with); by default it appends through the raw driver
        (sqlite3, psycopg), which is two to three times faster.
        """
        url = url if url is not None else default_url()
        parsed = _parse_url(url)
        shown = _shown(url, parsed)
        engine = _create_engine(parsed)
        try:
            _migrate(engine, shown)
            store = cls(engine, shown, core_recorder=core_recorder)
        except BaseException:
            engine.dispose()
            raise
        try:
            store._start_presence()
        except SQLAlchemyError as exc:
            store.close()
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
            raise StoreError(f"cannot open the store {shown}: {reason}") from exc
        except BaseException:
            store.close()
            raise
        return store

    @property
    def sa_engine(self) -> Engine:
        """The SQLAlchemy engine, for modules that keep their own tables in this store."""
        return self._engine

    def close(self) -> None:
        """Flush what the recorder holds and release every connection."""
        if self._closed:
            return
        self._closed = True
        try:
            self.recorder.close()
        finally:
            self._locks.close()
            if self._pg_presence is not None:
                self._pg_presence.close()
            if self._sqlite_presence is not None:
                self._sqlite_presence.close()
            self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction (SQLite: takes the write lock at BEGIN); errors → StoreError."""
        with self._errors("write to"), self._engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(store_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._errors("read from"), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        if self._closed:
            raise StoreError(f"the store {self.url} is closed")
        try:
            yield
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            raise StoreError(f"could not {action} the store {self.url}: {reason}") from exc

    # ------------------------------------------------------------------ definitions

    def save_definition(self, hash: str, sources: dict[str, str]) -> None:
        """Keep the snapshot of the files an execution ran; a known hash is left alone."""
        stmt = self._insert(models.definitions).values(
            hash=hash, sources=sources, created=time.time()).on_conflict_do_nothing()
        with self.begin() as conn:
            conn.execute(stmt)

    def get_definition(self, hash: str) -> dict[str, str] | None:
        with self.read() as conn:
            value = conn.scalar(select(models.definitions.c.sources)
                                .where(models.definitions.c.hash == hash))
        return dict(value) if value is not None else None

    # ------------------------------------------------------------------ executions

    def list_executions(self, pipeline: str | Sequence[str] | None = None,
                        status: str | Sequence[str] | None = None,
                        since: float | datetime | None = None,
                        until: float | datetime | None = None,
                        text: str | None = None, limit: int = 50, cursor: str | None = None,
                        tenant: str | None = None) -> tuple[list[ExecutionRecord], str | None]:
        """Executions newest first, and the cursor of the next page (None on the last page).

        ``since``/``until`` bound ``started_at`` (inclusive / exclusive); ``text`` matches
        (case-insensitively) the id, the pipeline name or the error.
        """
        t = models.executions
        limit = max(1, min(int(limit), 1000))
        conds: list[Any] = []
        for column, value in ((t.c.pipeline, pipeline), (t.c.status, status)):
            if isinstance(value, str):
                conds.append(column == value)
            elif value is not None:
                conds.append(column.in_(list(value)))
        if tenant is not None:
            conds.append(t.c.tenant == tenant)
        if since is not None:
            conds.append(t.c.started_at >= _seconds(since))
        if until is not None:
            conds.append(t.c.started_at < _seconds(until))
        if text:
            needle = text.lower()
            conds.append(or_(*(func.lower(c).contains(needle, autoescape=True)
                               for c in (t.c.id, t.c.pipeline, _as_text(t.c.error)))))
        if cursor:
            started, last_id = _decode_cursor(cursor)
            conds.append(tuple_(t.c.started_at, t.c.id) < tuple_(started, last_id))
        query = (select(t).where(and_(True, *conds))
                 .order_by(t.c.started_at.desc(), t.c.id.desc()).limit(limit + 1))
        with self.read() as conn:
            rows = conn.execute(query).all()
        records = [_execution(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = records[-1]
            next_cursor = _encode_cursor(last.started_at, last.id)
        return records, next_cursor

    def get_execution(self, id: str) -> ExecutionRecord | None:
        t = models.executions
        with self.read() as conn:
            row = conn.execute(select(t).where(t.c.id == id)).first()
        return _execution(row) if row is not None else None

    def timeline(self, id: str) -> list[StepRunRecord]:
        """The step runs of an execution in order (seq of their step.started event)."""
        t = models.step_runs
        query = (select(*(t.c[c] for c in _STEP_READ)).where(t.c.execution_id == id)
                 .order_by(t.c.seq, t.c.id))
        with self.read() as conn:
            rows = conn.execute(query).all()
        return [StepRunRecord(id, path, step, type_, seq, iteration, attempt, status, started,
                              ended, duration, error, size, list(flags or ()))
                for (path, step, type_, seq, iteration, attempt, status, started, ended,
                     duration, error, size, flags) in rows]

    def events(self, id: str, after_seq: int = 0, types: Sequence[str] | None = None,
               limit: int = 1000) -> list[EventRecord]:
        """Events of an execution with seq > ``after_seq``, in order, at most ``limit``."""
        t = models.execution_events
        conds = [t.c.execution_id == id, t.c.seq > after_seq]
        if types:
            conds.append(t.c.type.in_([types] if isinstance(types, str) else list(types)))
        query = (select(t.c.seq, t.c.type, t.c.data, t.c.ts).where(*conds)
                 .order_by(t.c.seq).limit(max(0, int(limit))))
        with self.read() as conn:
            rows = conn.execute(query).all()
            events = [EventRecord(id, seq, type_, loads(data), ts) for seq, type_, data, ts in rows]
            if events and any(map(needs_payload, events)):
                ex = models.executions
                payload = conn.execute(select(ex.c.trigger_payload).where(ex.c.id == id)).scalar()
                restore_payloads(events, payload)
        return events

    def count_events(self, execution_id: str | None = None) -> int:
        t = models.execution_events
        query = select(func.count()).select_from(t)
        if execution_id is not None:
            query = query.where(t.c.execution_id == execution_id)
        with self.read() as conn:
            return int(conn.scalar(query) or 0)

    # ------------------------------------------------------------------ idempotency

    def idem_lookup(self, pipeline: str, step: str, key: str, now: float) -> tuple[bool, Any]:
        """(True, output) when a completed, unexpired record exists for the key."""
        t = models.idempotency_keys
        query = select(t.c.output).where(
            t.c.pipeline == pipeline, t.c.step == step, t.c.key == _idem_key(key),
            t.c.status == "done", t.c.expires > now)
        with self.read() as conn:
            row = conn.execute(query).first()
        return (True, row[0]) if row is not None else (False, None)

    def idem_claim(self, pipeline: str, step: str, key: str, owner: str, now: float,
                   ttl: float, take_over: bool = False) -> bool:
        """Claim the right to run the step for ``key`` for ``ttl`` seconds.

        Exactly one claimant wins, across processes: the pending row's primary key decides.
        An expired row (a crashed owner's claim, or an outdated result) may be taken over;
        the current owner claiming again also wins. ``take_over``: any pending claim may be
        taken (the caller holds the key's distributed lock, so its owner is gone).
        """
        t = models.idempotency_keys
        k = _idem_key(key)
        row = dict(pipeline=pipeline, step=step, key=k, status="pending", owner=owner,
                   output=None, created=now, expires=now + ttl)
        with self.begin() as conn:
            # RETURNING, not rowcount: SQLAlchemy may report -1 for an INSERT on PostgreSQL
            inserted = conn.execute(self._insert(t).values(row).on_conflict_do_nothing()
                                    .returning(t.c.key))
            if inserted.first() is not None:
                return True
            taken = conn.execute(
                update(t).where(t.c.pipeline == pipeline, t.c.step == step, t.c.key == k,
                                or_(t.c.expires <= now,
                                    and_(t.c.status == "pending",
                                         or_(t.c.owner == owner, true() if take_over else false()))))
                .values(status="pending", owner=owner, output=None, created=now,
                        expires=now + ttl))
            return taken.rowcount == 1

    def idem_complete(self, pipeline: str, step: str, key: str, output: Any, now: float,
                      ttl: float) -> None:
        """Store the step's output under the key until ``now + ttl``."""
        t = models.idempotency_keys
        stmt = self._insert(t).values(pipeline=pipeline, step=step, key=_idem_key(key),
                                      status="done", owner=None, output=_jsonable(output),
                                      created=now, expires=now + ttl)
        stmt = stmt.on_conflict_do_update(
            index_elements=["pipeline", "step", "key"],
            set_={c: stmt.excluded[c] for c in ("status", "owner", "output", "created",
                                                 "expires")})
        with self.begin() as conn:
            conn.execute(stmt)

    def idem_release(self, pipeline: str, step: str, key: str) -> None:
        """Drop a pending claim (the step failed), so the next claimant may run it."""
        t = models.idempotency_keys
        with self.begin() as conn:
            conn.execute(delete(t).where(t.c.pipeline == pipeline, t.c.step == step,
                                         t.c.key == _idem_key(key), t.c.status == "pending"))

    # ------------------------------------------------------------------ dead-letter queue

    def dlq_add(self, pipeline: str, step: str | None, execution_id: str | None, payload: Any,
                error: str | None, error_type: str | None, max_retries: int = 3, *,
                tenant: str = "default") -> str:
        """Write a pending DLQ entry; returns its id."""
        now = time.time()
        entry_id = uuid.uuid4().hex
        with self.begin() as conn:
            conn.execute(models.dlq_entries.insert().values(
                id=entry_id, tenant=tenant, pipeline=pipeline, step=step,
                execution_id=execution_id, payload=_jsonable(payload), error=error,
                error_type=error_type, status="pending", retry_count=0,
                max_retries=max_retries, created=now, updated=now))
        return entry_id


# ---------------------------------------------------------------------- helpers

_STEP_READ = ("path", "step", "type", "seq", "iteration", "attempt", "status", "started_at",
              "ended_at", "duration_ms", "error", "output_size", "flags")


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        memory = url.database in (None, "", ":memory:")
        if memory:
            engine = create_engine(url, poolclass=StaticPool,
                                   connect_args={"check_same_thread": False})
        else:
            engine = create_engine(url, connect_args={"check_same_thread": False,
                                                      "timeout": 30})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # pre-ping: after a server restart the first query reconnects instead of failing
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def _current_revision(conn: Connection) -> str | None:
    try:
        with conn.begin_nested() if conn.in_transaction() else conn.begin():
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except DBAPIError:  # no alembic_version table yet: an empty database
        return None


def _migrate(engine: Engine, shown: str) -> None:
    """Bring the schema to HEAD_REVISION; a store already there costs one query."""
    try:
        with engine.connect() as conn:
            if _current_revision(conn) == HEAD_REVISION:
                return
            if engine.dialect.name == "sqlite":
                conn = conn.execution_options(store_begin="IMMEDIATE")
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
                # Another process may have migrated while we waited for the lock.
                current = _current_revision(conn)
                if current != HEAD_REVISION:
                    _known_revision(current, shown)
                    _run_alembic(conn)
    except StoreError:
        raise
    except SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split()).rstrip(".?")
        hint = ("Check that the directory exists and is writable." if engine.dialect.name
                == "sqlite" else "Check that the database server is running and that the "
                "URL, user and permissions are right.")
        raise StoreError(f"cannot open the store {shown}: {reason}. {hint}") from exc
    except OSError as exc:
        raise StoreError(f"cannot open the store {shown}: {exc}") from exc


def _known_revision(current: str | None, shown: str) -> None:
    if current is None:
        return
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        known = ScriptDirectory.from_config(_alembic_config(None)).get_revision(current)
    except CommandError:
        known = None
    if known is None:
        raise StoreError(f"the store {shown} has schema revision {current!r}, which this "
                         "version of Workflow Studio does not know: it was written by a newer "
                         "version. Upgrade Workflow Studio or use another store.")


def _alembic_config(conn: Connection | None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _run_alembic(conn: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(conn), "head")


def _seconds(value: float | datetime) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _as_text(column: Any) -> Any:
    from sqlalchemy import Text, cast

    return cast(column, Text)


def _encode_cursor(started_at: float, id: str) -> str:
    raw = json.dumps([started_at, id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class InvalidCursorError(StoreError, ValueError):
    """A page cursor that this store did not hand out: bad input, not a storage failure."""


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, id = json.loads(raw)
        return float(started), str(id)
    except (ValueError, TypeError) as exc:
        raise InvalidCursorError(f"invalid cursor {cursor!r}: pass the cursor returned with the "
                         "previous page, or none for the first page") from exc


def _idem_key(key: str) -> str:
    if len(key) <= _MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    """A JSON-safe copy for a JSON column (odd values become strings, like event data)."""
    return None if value is None else loads(dumps(value))


def _execution(row: Any) -> ExecutionRecord:
    m = row._mapping
    return ExecutionRecord(
        id=m["id"], pipeline=m["pipeline"], status=m["status"], trigger_type=m["trigger_type"],
        trigger_payload=m["trigger_payload"], started_at=m["started_at"],
        ended_at=m["ended_at"], duration_ms=m["duration_ms"], output=m["output"],
        error=m["error"], definition_hash=m["definition_hash"], parent_id=m["parent_id"],
        replay_of=m["replay_of"], tenant=m["tenant"], event_count=m["event_count"])
