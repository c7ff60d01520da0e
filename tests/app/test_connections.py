"""Connection profiles, secrets, the dialog and the status against a real server on loopback.

The server is the real app (``create_app`` over a ``LocalService``) under uvicorn in a thread
with its own event loop, on a fixed port so it can be stopped and started again there; the
studio side runs on the test's qasync loop, as in the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QListWidget, QMessageBox, QPushButton

from app.connections.connection_dialog import ConnectionDialog
from app.connections.connection_manager import ConnectionManager
from app.connections.profiles import DEFAULT_PROFILE, Profile, ProfileError, ProfileStore
from app.connections.secrets import SecretStore, usable_keyring
from app.connections.status import ConnectionStatus
from engine import __version__
from engine.service.errors import Unauthorized
from tests.app.support import LoopbackServer, eventually, free_port, until

PIPELINES = """
pipelines:
  hello:
    steps:
      - {name: greet, type: step.set, config: {values: {greeting: "hi {{ .name }}"}}}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[LoopbackServer, str]]:
    """The real studio server and an admin key of it."""
    from engine.server import KeyStore
    from engine.store.store import Store

    pipelines = tmp_path / "server" / "pipelines.yaml"
    pipelines.parent.mkdir()
    pipelines.write_text(PIPELINES)
    store_url = f"sqlite:///{tmp_path / 'server' / 'store.db'}"
    with Store.open(store_url) as store:  # the key first: the server reads keys from the store
        _, secret = KeyStore(store).create("studio", scopes=["admin"])
    live = LoopbackServer(free_port(), store_url, [pipelines]).start()
    try:
        yield live, secret
    finally:
        live.stop()


@pytest.fixture(autouse=True)
def keep_running(qapp) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """A dialog closing is not the app closing (the test has no main window).

    Also collects garbage at the end, on the GUI thread: otherwise a server thread's Python
    code may be the one to collect this test's qasync loop, deleting its timer QObject
    from the wrong thread, which crashes Qt later.
    """
    before = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)
    yield
    qapp.setQuitOnLastWindowClosed(before)
    gc.collect()


@pytest.fixture
def manager(qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[ConnectionManager]:
    config = tmp_path / "config"
    m = ConnectionManager(ProfileStore(config / "profiles.json"),
                          SecretStore(config / "secrets.json", backend=None),
                          health_interval=0.2, health_timeout=1.0, backoff=(0.2, 0.4), remote_timeout=5.0)
    try:
        yield m
    finally:
        qloop.run_until_complete(m.close())


def open_dialog(qtbot, manager: ConnectionManager) -> ConnectionDialog:  # type: ignore[no-untyped-def]
    dialog = ConnectionDialog(manager)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def fill_remote(qtbot, dialog: ConnectionDialog, name: str, url: str, key: str) -> None:  # type: ignore[no-untyped-def]
    dialog.findChild(QPushButton, "connectionNew").click()
    qtbot.keyClicks(dialog.findChild(QLineEdit, "connectionName"), name)
    url_field = dialog.findChild(QLineEdit, "connectionUrl")
    url_field.selectAll()
    qtbot.keyClicks(url_field, url)
    qtbot.keyClicks(dialog.findChild(QLineEdit, "connectionKey"), key)


def result(dialog: ConnectionDialog) -> str:
    return dialog.findChild(QLabel, "connectionResult").text()


# ---------------------------------------------------------------------- profiles and secrets


def test_profiles_persist_without_secrets_and_the_key_file_is_private(tmp_path: Path) -> None:
    config = tmp_path / "config"
    profiles = ProfileStore(config / "profiles.json")
    assert profiles.profiles() == [DEFAULT_PROFILE]  # nothing saved yet: the embedded default
    secrets = SecretStore(config / "secrets.json", backend=None)
    manager = ConnectionManager(profiles, secrets)
    saved = manager.save_profile(Profile(" staging ", "remote", "https://ci.example:8443/ "), "s3cret-key")
    assert saved == Profile("staging", "remote", "https://ci.example:8443")
    assert "s3cret-key" not in (config / "profiles.json").read_text()
    assert stat.S_IMODE((config / "secrets.json").stat().st_mode) == 0o600
    assert "secrets.json" in secrets.where and "readable only by you" in secrets.where

    again = ConnectionManager(ProfileStore(config / "profiles.json"),
                              SecretStore(config / "secrets.json", backend=None))
    assert [p.name for p in again.profiles()] == ["Embedded", "staging"]
    assert again.api_key("staging") == "s3cret-key"

    # A rename moves the key; None keeps it; deleting the profile deletes its key.
    again.save_profile(Profile("ci", "remote", "https://ci.example:8443"), previous_name="staging")
    assert again.api_key("ci") == "s3cret-key" and again.api_key("staging") is None
    with pytest.raises(ProfileError, match="already exists"):
        again.save_profile(Profile("Embedded", "remote", "https://x.example"), previous_name="ci")
    with pytest.raises(ProfileError, match="server URL"):
        again.save_profile(Profile("bad", "remote", "ftp://x"))
    again.delete_profile("ci")
    assert again.api_key("ci") is None
    assert json.loads((config / "secrets.json").read_text())["keys"] == {}


def test_a_damaged_profiles_file_is_reported_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text("{not json")
    store = ProfileStore(path)
    assert "damaged" in store.load_error
    assert store.profiles() == [DEFAULT_PROFILE]
    store.save(Profile("local", "embedded", store=f"sqlite:///{tmp_path / 'x.db'}"))
    backups = list(tmp_path.glob("profiles.json.damaged-*"))
    assert [b.read_text() for b in backups] == ["{not json"]
    assert [p.name for p in ProfileStore(path).profiles()] == ["Embedded", "local"]


def test_keyring_detection_and_use(tmp_path: Path) -> None:
    import keyring
    from keyring.backend import KeyringBackend
    from keyring.backends import fail

    class MemoryKeyring(KeyringBackend):  # a stand-in for a desktop keyring (third-party API)
        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.items: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.items.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.items[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.items.pop((service, username), None)

    before = keyring.get_keyring()
    try:
        keyring.set_keyring(fail.Keyring())
        assert usable_keyring() is None
        ring = MemoryKeyring()
        keyring.set_keyring(ring)
        assert usable_keyring() is ring
        secrets = SecretStore(tmp_path / "secrets.json")
        assert secrets.in_keyring and "system keyring" in secrets.where
        secrets.set("prod", "k-123")
        assert ring.items == {("wfstudio", "prod"): "k-123"}
        assert not (tmp_path / "secrets.json").exists()  # nothing on disk
        assert secrets.get("prod") == "k-123"
        secrets.delete("prod")
        assert ring.items == {}
    finally:
        keyring.set_keyring(before)


def test_dialog_keeps_drafts_renames_with_the_key_and_asks_before_dropping_edits(qtbot, manager) -> None:  # type: ignore[no-untyped-def]
    manager.save_profile(Profile("staging", "remote", "https://staging.example"), "key-1")
    dialog = open_dialog(qtbot, manager)
    profiles = dialog.findChild(QListWidget, "connectionProfiles")
    assert [profiles.item(i).text() for i in range(profiles.count())] == ["Embedded", "staging"]
    profiles.setCurrentRow(1)
    assert dialog.findChild(QLineEdit, "connectionUrl").text() == "https://staging.example"
    assert "saved" in dialog.findChild(QLineEdit, "connectionKey").placeholderText()
    name = dialog.findChild(QLineEdit, "connectionName")
    name.selectAll()
    qtbot.keyClicks(name, "prod")

    profiles.setCurrentRow(0)  # another profile: the edit is kept as a draft
    assert profiles.item(1).text() == "staging *"
    assert dialog.findChild(QComboBox, "connectionKind").currentData() == "embedded"
    profiles.setCurrentRow(1)
    assert name.text() == "prod"

    dialog.findChild(QPushButton, "connectionSave").click()
    assert result(dialog) == "Saved 'prod'."
    assert [p.name for p in manager.profiles()] == ["Embedded", "prod"]
    assert manager.api_key("prod") == "key-1" and manager.api_key("staging") is None
    assert [profiles.item(i).text() for i in range(profiles.count())] == ["Embedded", "prod"]
    assert profiles.currentItem().text() == "prod"

    url = dialog.findChild(QLineEdit, "connectionUrl")
    url.selectAll()
    qtbot.keyClicks(url, "ftp://nowhere")
    dialog.findChild(QPushButton, "connectionSave").click()
    assert "Not saved: the server URL must look like" in result(dialog)
    dialog.findChild(QPushButton, "connectionClose").click()  # unsaved: asks first
    box = dialog.findChild(QMessageBox, "connectionUnsaved")
    assert "'prod'" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert dialog.isVisible() and url.text() == "ftp://nowhere"
    dialog.findChild(QPushButton, "connectionClose").click()
    box = next(b for b in dialog.findChildren(QMessageBox, "connectionUnsaved") if b.isVisible())
    box.button(QMessageBox.StandardButton.Discard).click()
    assert not dialog.isVisible()
    assert manager.store.get("prod") == Profile("prod", "remote", "https://staging.example")


# ---------------------------------------------------------------------- connecting


def test_embedded_profile_connects_and_shows_its_version(qtbot, qloop, manager, tmp_path) -> None:  # type: ignore[no-untyped-def]
    status = ConnectionStatus(manager)
    qtbot.addWidget(status)
    assert status.text() == "Not connected"
    seen: list[tuple[Any, Profile]] = []
    manager.connected.connect(lambda service, profile: seen.append((service, profile)))
    profile = manager.save_profile(Profile("local", "embedded", store=f"sqlite:///{tmp_path / 'e.db'}"))
    service = qloop.run_until_complete(manager.connect(profile))
    assert seen == [(service, profile)]
    assert manager.version is not None and manager.version.backend == "local"
    assert status.text() == f"local — embedded · engine {__version__} (API 1)"
    assert ProfileStore(manager.store.path).last_used().name == "local"


def test_dialog_tests_and_connects_to_a_server_with_a_good_key(qtbot, qloop, manager, server) -> None:  # type: ignore[no-untyped-def]
    live, secret = server
    status = ConnectionStatus(manager)
    qtbot.addWidget(status)
    dialog = open_dialog(qtbot, manager)
    fill_remote(qtbot, dialog, "staging", live.url, secret)
    assert "readable only by you" in dialog.findChild(QLabel, "connectionKeyNote").text()

    dialog.findChild(QPushButton, "connectionTest").click()
    until(qloop, lambda: result(dialog).startswith(("OK", "Failed")))
    assert result(dialog).startswith(f"OK: engine {__version__}, API version 1, remote backend, store sqlite")
    assert manager.service is None  # a test does not switch

    dialog.findChild(QPushButton, "connectionConnect").click()  # saves the draft, then connects
    until(qloop, lambda: manager.service is not None)
    assert manager.profile == Profile("staging", "remote", live.url)
    assert manager.api_key("staging") == secret
    assert status.text() == f"staging — remote · engine {__version__} (API 1)"
    assert status.state == "connected"
    assert not dialog.isVisible()  # accepted


def test_a_bad_key_gives_a_clear_401_message(qtbot, qloop, manager, server) -> None:  # type: ignore[no-untyped-def]
    live, _secret = server
    dialog = open_dialog(qtbot, manager)
    fill_remote(qtbot, dialog, "wrong", live.url, "wfs_not-a-real-key")
    dialog.findChild(QPushButton, "connectionTest").click()
    until(qloop, lambda: result(dialog).startswith(("OK", "Failed")))
    text = result(dialog)
    assert "refused the API key of profile 'wrong' (401 unauthorized" in text
    assert "wfstudio keys create" in text

    dialog.findChild(QPushButton, "connectionConnect").click()
    until(qloop, lambda: result(dialog).startswith("Not connected"))
    assert "401" in result(dialog) and manager.service is None
    assert dialog.isVisible()

    with pytest.raises(Unauthorized, match="has none"):  # no key at all says so
        qloop.run_until_complete(manager.test(Profile("bare", "remote", live.url), ""))


def test_an_incompatible_server_is_refused_with_advice(qtbot, qloop, manager) -> None:  # type: ignore[no-untyped-def]
    def future_server() -> Any:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            body = json.dumps({"engine_version": "9.0.0", "api_version": "2", "backend": "local"})
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body.encode()})
        return app

    live = LoopbackServer(free_port(), app=future_server).start()
    try:
        dialog = open_dialog(qtbot, manager)
        fill_remote(qtbot, dialog, "future", live.url, "any-key")
        dialog.findChild(QPushButton, "connectionTest").click()
        until(qloop, lambda: result(dialog).startswith(("OK", "Failed")))
        assert "speaks API version 2, this client speaks version 1" in result(dialog)
        assert "upgrade this client" in result(dialog)
    finally:
        live.stop()


def test_losing_the_server_shows_and_a_restart_recovers(qtbot, qloop, manager, server) -> None:  # type: ignore[no-untyped-def]
    live, secret = server
    status = ConnectionStatus(manager)
    qtbot.addWidget(status)
    profile = manager.save_profile(Profile("staging", "remote", live.url), secret)
    events: list[str] = []
    manager.connectionLost.connect(lambda message: events.append("lost"))
    manager.reconnected.connect(lambda: events.append("back"))
    received: list[str] = []

    async def scenario() -> None:
        # One coroutine, as in the app: the loop keeps running while the server is away.
        service = await manager.connect(profile)

        async def follow() -> None:  # a live stream of every execution, open across the outage
            async for event in service.subscribe(None):
                received.append(f"{event.type}:{event.execution_id}")

        async def run_until_streamed(name: str) -> None:
            # The stream of all executions is live only: run until it is seen to be open.
            for _attempt in range(100):
                done = f"execution.completed:{(await service.run('hello', {'name': name})).execution_id}"
                with contextlib.suppress(AssertionError):
                    await eventually(lambda done=done: done in received, timeout=0.2)  # type: ignore[misc]
                    return
            raise AssertionError("no run was streamed")

        follower = asyncio.ensure_future(follow())
        await run_until_streamed("before")

        await asyncio.to_thread(live.stop)
        await eventually(lambda: status.state == "lost", timeout=5)
        assert events == ["lost"]
        assert "disconnected — retrying" in status.text()
        assert "unavailable" in manager.last_error

        await asyncio.to_thread(live.start)  # the same port and store
        await eventually(lambda: status.state == "connected")
        assert events == ["lost", "back"]
        assert status.text() == f"staging — remote · engine {__version__} (API 1)"

        # The stream reconnected by itself (RemoteService retries with Last-Event-ID): runs
        # after the restart arrive on the same iterator.
        await run_until_streamed("after")
        assert not follower.done()
        follower.cancel()
        await manager.close()

    qloop.run_until_complete(scenario())
