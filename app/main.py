"""Start the studio: ``wfstudio`` (the example workspace) or ``wfstudio studio PATH``.

The window is shown before the engine is opened: the embedded service (store, migrations,
step registry) starts on the event loop while the window is already usable, and the panes
fill in when it is ready.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication, QWidget

_STARTED = time.perf_counter()

from app.icons import resources_dir  # noqa: E402  (after _STARTED: it is timed too)

EXAMPLE_WORKSPACE = resources_dir() / "workspace"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wfstudio studio",
                                     description="Open the Workflow Studio desktop app.")
    parser.add_argument("path", nargs="?", help="a folder of pipeline files, or one file "
                        "(default: the example workspace)")
    parser.add_argument("--store", help="event store URL for the embedded engine "
                        "(default: the user data dir)")
    parser.add_argument("--theme", choices=["light", "dark"],
                        help="colour theme (default: the last one used)")
    parser.add_argument("--settings", help=argparse.SUPPRESS)  # an INI file (tests, screenshots)
    parser.add_argument("--startup-probe", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import qasync
    from pyqtgraph.util.garbage_collector import GarbageCollector
    from PySide6.QtWidgets import QApplication

    from app import asyncqt, theme
    from app.settings import Settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    # Collect garbage on the GUI thread only, on a timer: a collection that runs in a worker
    # thread (store writes, timeline building) and finalizes a Qt object there crashes Qt.
    collector = GarbageCollector(interval=1.0)
    app.setApplicationName("Workflow Studio")
    app.setOrganizationName("wfstudio")
    settings = Settings(args.settings) if args.settings else Settings()
    theme.apply(args.theme or settings.theme(), app)  # type: ignore[arg-type]

    target = Path(args.path).expanduser() if args.path else None
    if target is not None and not target.exists():
        print(f"wfstudio: {target} does not exist; pass a folder of pipeline files", file=sys.stderr)
        return 2
    # no path: the example workspace (File > Open Recent has the others)
    folder = EXAMPLE_WORKSPACE if target is None else target if target.is_dir() else target.parent
    settings.set_last_workspace(folder.resolve())  # listed under File > Open Recent
    if folder == EXAMPLE_WORKSPACE or folder.resolve() == EXAMPLE_WORKSPACE.resolve():
        _example_environment()

    from app.connections.connection_manager import ConnectionManager
    from app.connections.profiles import Profile
    from app.shell.main_window import MainWindow

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    connections = ConnectionManager()
    window = MainWindow(settings, folder.resolve(), connections=connections)
    window.restore_state()
    window.show()
    shown = time.perf_counter() - _STARTED
    shown_at = time.time()
    ready = asyncio.Event()

    async def connect() -> None:
        # --store names an embedded store for this session; else the profile used last
        profile = (Profile(name="Embedded", kind="embedded", store=args.store) if args.store
                   else connections.store.last_used())
        try:
            service = await connections.connect(profile)
        except Exception as exc:  # the window stays; the message says what failed and what to do
            window.backend_label.setText("Not connected")
            window._show_error(f"Cannot connect to {profile.name}", str(exc))
            ready.set()
            return
        await window.adopt_service(service, profile.name)
        gc.freeze()  # start-up objects live as long as the app: keep them out of every collection
        ready.set()
        window.open_start_files(target)  # last time's files; on a first start the first example

    async def probe() -> None:
        await ready.wait()
        await asyncio.sleep(0)
        figures = {"window_shown_s": round(shown, 3),
                   "engine_ready_s": round(time.perf_counter() - _STARTED, 3)}
        launched = os.environ.get("WFSTUDIO_LAUNCHED")  # the launcher's clock: interpreter start counts
        if launched:
            figures["launch_to_window_s"] = round(shown_at - float(launched), 3)
            figures["launch_to_ready_s"] = round(time.time() - float(launched), 3)
        print(json.dumps(figures))
        window.close()

    _quit_on_interrupt(window, app)
    starting = loop.create_task(connect())
    if args.startup_probe:
        loop.create_task(probe())
    loop.run_forever()  # until the last window closes and Qt quits
    # Closed while starting (Ctrl-C, or the window closed at once) or busy: let the start-up
    # and what the studio was asked for finish before the service is closed under them.
    loop.run_until_complete(starting)
    loop.run_until_complete(asyncqt.settle())
    loop.run_until_complete(connections.close())
    # Destroy the window while the loop still runs: its panes cancel their live tasks from
    # `destroyed`, which needs a loop that can take the cancellations.
    import shiboken6

    shiboken6.delete(window)
    loop.run_until_complete(asyncio.sleep(0))
    collector.timer.stop()
    loop.close()  # joins the loop's worker threads before Qt objects are torn down
    return 0


def _quit_on_interrupt(window: QWidget, app: QApplication) -> None:
    """Ctrl-C in the terminal closes the window as its close button would (unsaved edits
    are asked about); a second Ctrl-C quits at once. Without this, Python raises
    KeyboardInterrupt inside whichever Qt callback runs next and the studio stays open."""
    from PySide6.QtCore import QTimer

    interrupts = 0

    def interrupted(_signum: int, _frame: object) -> None:
        nonlocal interrupts
        interrupts += 1
        # Qt is not re-entered from a signal handler: the close runs on the next loop turn.
        QTimer.singleShot(0, window.close if interrupts == 1 else app.quit)

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    # Python runs signal handlers only between bytecodes: a light timer keeps that prompt
    # while Qt waits in C for events.
    wake = QTimer(window)
    wake.timeout.connect(lambda: None)
    wake.start(250)


def _example_environment() -> None:
    """The example workspace writes its SQLite database under the user data dir."""
    from platformdirs import user_data_dir

    data = Path(user_data_dir("wfstudio")) / "demo"
    data.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DATA_DIR", str(data))


if __name__ == "__main__":
    sys.exit(main())
