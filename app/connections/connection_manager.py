"""Opening the service a profile names, and watching that it stays reachable.

``connect(profile)`` opens the embedded engine or a :class:`RemoteService`, asks for its
``version()`` (for a server: the API version check, and the first call that needs a valid
key) and only then adopts it: ``connected(service, profile)`` is emitted and the previous
service is closed *after* every listener has switched. The manager owns the services it
opens; close them through it (``close``).

While connected, a health watcher calls ``service.health()`` every ``health_interval``
seconds, each call bounded by ``health_timeout``, all on the qasync loop, so a server that
stops answering never freezes the window. The first failure emits ``connectionLost``;
then it retries with backoff (``retrying(attempt, delay)``) and emits ``reconnected`` once
the server answers again. Live event streams need nothing from here to resume:
``RemoteService.subscribe`` reconnects with ``Last-Event-ID`` by itself (the manager gives
it ``stream_reconnects`` tries: minutes); per-execution streams resume from the store, the
all-executions stream only from the server's recent-events buffer, which a server restart
empties, so panes listing executions should reload on ``reconnected``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final

from PySide6.QtCore import QObject, Signal

from app.asyncqt import describe, spawn
from app.connections.profiles import Profile, ProfileError, ProfileStore
from app.connections.secrets import SecretStore
from engine.service.errors import (
    Forbidden,
    InvalidInput,
    ServiceError,
    Unauthorized,
    Unavailable,
)
from engine.service.models import VersionInfo
from engine.service.protocol import StudioService

log = logging.getLogger("wfstudio.app")

HEALTH_INTERVAL_S: Final = 3.0
HEALTH_TIMEOUT_S: Final = 3.0
BACKOFF_S: Final = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
REMOTE_TIMEOUT_S: Final = 30.0
# A live stream retries this often (backoff capped at the server's retry hint, ~5 s) before it
# gives up: minutes, so an outage the watcher reports does not end every pane's stream.
STREAM_RECONNECTS: Final = 120
KEY_HELP: Final = "create one on the server with `wfstudio keys create --name studio --scope admin`"


class ConnectionManager(QObject):
    connected = Signal(object, object)  # (StudioService, Profile)
    connectionLost = Signal(str)  # what failed, for a person
    retrying = Signal(int, float)  # (failed health checks in a row, seconds to the next try)
    reconnected = Signal()
    disconnected = Signal()
    profilesChanged = Signal()

    def __init__(self, profiles: ProfileStore | None = None, secrets: SecretStore | None = None, *,
                 health_interval: float = HEALTH_INTERVAL_S, health_timeout: float = HEALTH_TIMEOUT_S,
                 backoff: Sequence[float] = BACKOFF_S, remote_timeout: float = REMOTE_TIMEOUT_S,
                 stream_reconnects: int = STREAM_RECONNECTS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = profiles if profiles is not None else ProfileStore()
        self.secrets = secrets if secrets is not None else SecretStore()
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.backoff = tuple(backoff) or BACKOFF_S
        self.remote_timeout = remote_timeout
        self.stream_reconnects = stream_reconnects
        self.service: StudioService | None = None
        self.profile: Profile | None = None
        self.version: VersionInfo | None = None
        self.lost = False  # the watcher's last health check failed
        self.last_error = ""
        self._watcher: asyncio.Task[Any] | None = None

    # ------------------------------------------------------------------ profiles

    def profiles(self) -> list[Profile]:
        return self.store.profiles()

    def api_key(self, name: str) -> str | None:
        return self.secrets.get(name)

    def save_profile(self, profile: Profile, api_key: str | None = None, *,
                     previous_name: str | None = None) -> Profile:
        """Save ``profile`` (replacing ``previous_name`` when renamed). ``api_key``: None
        keeps the saved key, "" deletes it, anything else replaces it. The key of a remote
        profile goes to the secret store, never to the profiles file."""
        saved = self.store.save(profile, previous_name)
        if previous_name is not None and previous_name != saved.name:
            self.secrets.rename(previous_name, saved.name)
        if api_key is not None:
            self.secrets.set(saved.name, api_key.strip())
        if not saved.remote:
            self.secrets.delete(saved.name)  # an embedded profile has no key to keep
        self.profilesChanged.emit()
        return saved

    def delete_profile(self, name: str) -> None:
        if self.profile is not None and self.profile.name == name:
            raise ProfileError(f"profile {name!r} is in use; connect to another one first")
        if self.store.delete(name):
            self.secrets.delete(name)
            self.profilesChanged.emit()

    # ------------------------------------------------------------------ connecting

    async def open(self, profile: Profile, api_key: str | None = None
                   ) -> tuple[StudioService, VersionInfo]:
        """Open and check the service ``profile`` names, without adopting it. ``api_key``
        overrides the saved key. Errors are typed, with a message that says what to do."""
        try:
            profile = profile.check()
        except ProfileError as exc:
            raise InvalidInput(str(exc)) from None
        if profile.remote:
            if api_key is None:
                api_key = await asyncio.to_thread(self.secrets.get, profile.name)
            return await self._open_remote(profile, api_key or None)
        return await self._open_embedded(profile)

    async def _open_embedded(self, profile: Profile) -> tuple[StudioService, VersionInfo]:
        from engine.service.local import LocalService

        try:
            service = await LocalService.open(store=profile.store or None)
        except ServiceError:
            raise
        except Exception as exc:  # a bad store URL, a database that will not open
            raise Unavailable(f"the embedded engine could not open its store "
                              f"{profile.store or '(default)'}: {describe(exc)}") from None
        return service, await service.version()

    async def _open_remote(self, profile: Profile, api_key: str | None
                           ) -> tuple[StudioService, VersionInfo]:
        from engine.client import RemoteService

        service = RemoteService(profile.url, api_key, timeout=self.remote_timeout,
                                max_reconnects=self.stream_reconnects, verify=profile.verify_tls)
        try:
            version = await service.version()
        except Unauthorized as exc:
            await service.aclose()
            if not api_key:
                raise Unauthorized(f"the server at {profile.url} needs an API key and profile "
                                   f"{profile.name!r} has none; {KEY_HELP}") from None
            raise Unauthorized(f"the server at {profile.url} refused the API key of profile "
                               f"{profile.name!r} (401 unauthorized: {exc.message}). Check the "
                               f"key, or {KEY_HELP}") from None
        except Forbidden as exc:
            await service.aclose()
            raise Forbidden(f"the API key of profile {profile.name!r} may not read from "
                            f"{profile.url} (403: {exc.message}); it needs the read scope "
                            "or more") from None
        except BaseException:
            await service.aclose()
            raise
        return service, version

    async def test(self, profile: Profile, api_key: str | None = None) -> VersionInfo:
        """Connect, read the version, disconnect: what a "Test" button shows."""
        service, version = await self.open(profile, api_key)
        await _close(service)
        return version

    # Shadows QObject.connect on purpose (the studio's word for it); signals are connected
    # through their own ``.connect``, which this does not touch.
    async def connect(self, profile: Profile,  # type: ignore[override]
                      api_key: str | None = None) -> StudioService:
        """Switch to ``profile``'s service; the current one stays until the new one works."""
        service, version = await self.open(profile, api_key)
        previous = self.service
        self._stop_watcher()
        self.service, self.profile, self.version = service, profile.check(), version
        self.lost, self.last_error = False, ""
        try:
            self.store.set_last_used(self.profile.name)
        except OSError as exc:  # not remembering the choice is no reason to fail the switch
            log.warning("cannot remember the last profile: %s", exc)
        self.connected.emit(service, self.profile)
        if previous is not None and previous is not service:
            await _close(previous)
        self._watcher = spawn(self._watch(service), what="Watching the connection", background=True)
        return service

    async def close(self) -> None:
        """Stop watching and close the current service (the studio is closing, say)."""
        self._stop_watcher()
        service, self.service, self.profile, self.version = self.service, None, None, None
        self.lost = False
        if service is not None:
            self.disconnected.emit()
            await _close(service)

    def _stop_watcher(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    # ------------------------------------------------------------------ health

    async def check_health(self, service: StudioService) -> str:
        """An empty string when ``service`` answers a health check in time, else what failed."""
        try:
            report = await asyncio.wait_for(service.health(), self.health_timeout)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            return f"no answer to a health check in {self.health_timeout:g} s"
        except Exception as exc:
            return describe(exc)
        if isinstance(report, dict) and report.get("ok") is False:
            return "the server reports that it is not healthy"
        return ""

    async def _watch(self, service: StudioService) -> None:
        failures = 0
        while service is self.service:
            if failures:
                delay = self.backoff[min(failures - 1, len(self.backoff) - 1)]
            else:
                delay = self.health_interval
            await asyncio.sleep(delay)
            if service is not self.service:
                return
            problem = await self.check_health(service)
            if service is not self.service:
                return
            if not problem:
                if self.lost:
                    self.lost, self.last_error, failures = False, "", 0
                    self.reconnected.emit()
                continue
            failures += 1
            self.last_error = problem
            if not self.lost:
                self.lost = True
                self.connectionLost.emit(problem)
            self.retrying.emit(failures, self.backoff[min(failures - 1, len(self.backoff) - 1)])


async def _close(service: StudioService) -> None:
    close = getattr(service, "aclose", None) or getattr(service, "close", None)
    if close is None:
        return
    try:
        await close()
    except Exception as exc:  # closing a service whose server is gone may fail: nothing to save
        log.warning("closing the previous service failed: %s", exc)
