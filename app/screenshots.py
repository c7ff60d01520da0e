"""`make screenshots`: render the studio and each of its panes to PNG files, offscreen.

The data is real: a copy of the example workspace loaded into the embedded engine on a
fresh SQLite store, a step selected, a pipeline run and a problem introduced, so every
pane shows what a developer would see. Files go to ``docs/screenshots/``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"


async def _settle(app: object, rounds: int = 10) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0.02)


async def shoot(out: Path) -> list[Path]:
    from PySide6.QtWidgets import QApplication

    from app import asyncqt, theme
    from app.backend import Backend
    from app.run.output_panel import run_pipeline
    from app.run.run_dialog import RunDialog
    from app.settings import Settings
    from app.shell.command_palette import CommandPalette
    from app.shell.main_window import MainWindow
    from engine.service.models import RunOptions

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    tmp = Path(tempfile.mkdtemp(prefix="wfstudio-shots-"))
    workspace = tmp / "workspace"
    shutil.copytree(REPO / "resources" / "workspace", workspace)
    os.environ["DATA_DIR"] = str(tmp)
    written: list[Path] = []

    def save(widget: object, name: str) -> None:
        path = out / f"{name}.png"
        widget.grab().save(str(path))  # type: ignore[attr-defined]
        written.append(path)

    settings = Settings(str(tmp / "settings.ini"))
    for name in ("light", "dark"):
        theme.apply(name, app)
        window = MainWindow(settings, workspace)
        window.resize(1600, 980)
        window.show()
        backend = await Backend.embedded_backend(f"sqlite:///{tmp / f'store-{name}.db'}")
        window.set_backend(backend)
        await backend.load_workspace(workspace)
        editor = window.open_file(workspace / "orders.yaml")
        assert editor is not None
        await _settle(app)
        editor.graph.zoom_to_fit()
        editor.select_step("create-order", "price")
        await run_pipeline(backend.service, "create-order",
                           {"method": "POST", "path": "/orders", "body": {"sku": "AB-12", "qty": 3},
                            "headers": {}, "query": {}, "path_params": {}},
                           RunOptions(), window.output)
        await run_pipeline(backend.service, "create-order",
                           {"method": "POST", "path": "/orders", "body": {"sku": "bad", "qty": 0},
                            "headers": {}, "query": {}, "path_params": {}},
                           RunOptions(), window.output)
        await _settle(app)
        if name == "light":
            window.docks["Output"].raise_()
            await _settle(app)
            save(window, "main-window")
            save(window.docks["Output"].widget(), "output-panel")
            save(window.tree, "workspace-panel")
            save(window.palette, "step-palette")
            save(window.properties, "property-panel")
            save(editor.graph, "graph-editor")
            save(editor.yaml, "yaml-view")
            # a broken reference shows up on the node, in the text and in Problems
            routing = window.open_file(workspace / "routing.yaml")
            assert routing is not None
            text = routing.document.text.replace("default: auto-reply", "default: auto-replyy", 1)
            routing.document.set_text(text, "Break a reference")
            await backend.validate(workspace / "routing.yaml", routing.document.text)
            window.docks["Problems"].raise_()
            await _settle(app)
            routing.graph.zoom_to_fit()
            await _settle(app)
            save(window, "problems-in-editor")
            save(window.problems, "problems-panel")
            infos = {p.name: p for p in await backend.service.list_pipelines()}
            dialog = RunDialog(infos["create-order"], settings, window)
            dialog.show()
            await _settle(app)
            save(dialog, "run-dialog")
            dialog.close()
            palette = CommandPalette(window.actions(), window)
            palette.query.setText("run")
            palette.show()
            await _settle(app)
            save(palette, "command-palette")
            palette.close()
            routing.document.undo_stack.undo()
        else:
            save(window, "main-window-dark")
        while asyncqt.pending():
            await asyncio.sleep(0.02)
        for e in window.editors():
            e.document.undo_stack.setClean()
        window.close()
        await backend.close()
    theme.apply("light", app)
    shutil.rmtree(tmp, ignore_errors=True)
    return written


def main() -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)  # the light window closes before the dark one opens
    OUT.mkdir(parents=True, exist_ok=True)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    written = loop.run_until_complete(shoot(OUT))
    loop.close()
    for path in written:
        print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
