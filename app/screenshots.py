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
    from app.connections.connection_manager import ConnectionManager
    from app.connections.profiles import Profile, ProfileStore
    from app.connections.secrets import SecretStore
    from app.run.output_panel import run_pipeline
    from app.run.run_dialog import RunDialog
    from app.run.samples import load_samples, samples_for
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

    for name in ("light", "dark"):
        settings = Settings(str(tmp / f"settings-{name}.ini"))  # each window starts for the first time
        theme.apply(name, app)
        connections = ConnectionManager(ProfileStore(tmp / f"profiles-{name}.json"),
                                        SecretStore(tmp / f"secrets-{name}.json", backend=None))
        window = MainWindow(settings, workspace, connections=connections)
        window.resize(1600, 980)
        window.show()
        profile = Profile(name="Embedded", kind="embedded", store=f"sqlite:///{tmp / f'store-{name}.db'}")
        await window.adopt_service(await connections.connect(profile), profile.name)
        backend = window.backend
        assert backend is not None
        window.open_start_files()  # the first start: the first example, the welcome strip
        window.docks["Output"].raise_()  # its empty state says what to do
        await _settle(app)
        save(window, "first-start" if name == "light" else "first-start-dark")
        window.welcome.hide()  # the other pictures show the studio in use
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
            samples = samples_for(load_samples(workspace), "create-order", infos["create-order"].file)
            dialog = RunDialog(infos["create-order"], settings, window, samples=samples)
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
            await _connectors_scene(window, save)
            await _execution_scenes(window, backend, save)
            await _sources_scene(window, save, "")
        else:
            save(window, "main-window-dark")
            await _sources_scene(window, save, "-dark")
        while asyncqt.pending():
            await asyncio.sleep(0.02)
        for e in window.editors():
            e.document.undo_stack.setClean()
        window.close()
        await connections.close()
    theme.apply("light", app)
    shutil.rmtree(tmp, ignore_errors=True)
    return written


async def _wait(condition: object, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("the studio did not reach the state to photograph")
        await asyncio.sleep(0.05)


async def _execution_scenes(window: object, backend: object, save: object) -> None:
    """Record real executions, then photograph the panes that show them."""
    from app import asyncqt
    from app.replay.replay_dialog import ReplayDialog
    from engine.service.models import ReplayOptions, RunOptions

    w, svc = window, backend.service  # type: ignore[attr-defined]
    from PySide6.QtCore import Qt

    w.resizeDocks([w.docks["Problems"]], [440], Qt.Orientation.Vertical)  # room for the bottom panes
    users = [{"name": n, "email": f"{n}@example.com", "orders": o, "age": a}
             for n, o, a in (("ada", 7, 36), ("linus", 3, 54), ("grace", 9, 85), ("alan", 4, 41))]
    fan = await svc.run("score-users", {"users": users})
    await svc.run("triage", {"id": "T-1", "severity": 9, "product": "billing"})
    await svc.run("fetch-quote", {"sku": "ABC-1"})  # no quote service runs here: it dead-letters
    await svc.set_mock("create-order", "store", output={"affected_rows": 1, "last_id": 42}, delay_ms=20)
    original = next(e.execution_id for e in w.output.entries() if e.status == "completed")
    replay = await svc.replay(original, ReplayOptions(mode="from_step", from_step="price",
                                                      mocks={"price": {"unit_price": 19.5, "discount": 0.1,
                                                                       "total": 52.65}}))
    w._replayed(original, replay.execution_id)
    await _wait(lambda: asyncqt.pending() == 0)
    await _settle(None)
    save(w.diff, "diff-pane")

    w.open_execution(fan.execution_id)
    await _wait(lambda: w.timeline.model is not None and w.timeline.execution_id == fan.execution_id)
    w.hub.select_step_run(fan.execution_id, "fan-out/row", 0)
    await _wait(lambda: asyncqt.pending() == 0)
    await _settle(None, 20)
    save(w.timeline, "timeline")
    save(w.inspector, "inspector")
    w.docks["Events"].raise_()
    await _settle(None)
    save(w.events, "event-list")
    w.docks["Executions"].raise_()
    w.executions.refresh()
    await _wait(lambda: asyncqt.pending() == 0)
    await _settle(None)
    save(w.executions, "executions-panel")
    w.docks["Dead Letters"].raise_()
    w.dlq.refresh()
    await _wait(lambda: asyncqt.pending() == 0)
    await _settle(None)
    save(w.dlq, "dlq-panel")
    w.docks["Mocks"].raise_()
    w.mocks.refresh()
    await _wait(lambda: asyncqt.pending() == 0)
    await _settle(None)
    save(w.mocks, "mocks-panel")

    dialog = ReplayDialog(svc, original, w)
    dialog.resize(760, 620)
    dialog.show()
    await dialog.load()
    dialog.set_from_step("price")
    await dialog.refresh_plan()
    await _settle(None)
    save(dialog, "replay-dialog")
    dialog.close()

    # the debugger: a conditional breakpoint stops a big order at `price`
    w.resizeDocks([w.docks["Problems"]], [300], Qt.Orientation.Vertical)
    await w.breakpoints.add_breakpoint("create-order", "price", ".qty > 5")
    started = await svc.run("create-order", {"sku": "ABC-9", "qty": 12}, RunOptions(wait=False))
    await _wait(lambda: any(p.execution_id == started.execution_id
                            for p in w.debugger.paused_panel.paused_executions()))
    w.hub.select_execution(started.execution_id)
    w.docks["Timeline"].raise_()
    w.docks["Debugger"].raise_()
    await _wait(lambda: asyncqt.pending() == 0)
    await _settle(None, 20)
    save(w, "debugging")
    save(w.debugger, "debugger-pane")
    w.resizeDocks([w.docks["Problems"]], [440], Qt.Orientation.Vertical)
    w.docks["Breakpoints"].raise_()
    await _settle(None)
    save(w.breakpoints, "breakpoints-panel")
    w.resizeDocks([w.docks["Problems"]], [240], Qt.Orientation.Vertical)
    await svc.resume(started.execution_id, "continue")
    if w.connections is not None:
        from app.connections.connection_dialog import ConnectionDialog

        connections = ConnectionDialog(w.connections, w)
        connections.show()
        await _settle(None)
        save(connections, "connections-dialog")
        connections.close()


CONNECTORS = """\
name: shop
connectors:
  - name: stripe
    type: source.webhook
    description: Payment events from Stripe
    config:
      path: /hooks/stripe
      secret: "${STRIPE_WEBHOOK_SECRET:-whsec_dev_only}"
      scheme: stripe
      type: payment.succeeded
      max_body: 262144
  - name: orders
    type: source.redis_streams
    config: {url: "redis://127.0.0.1:6379/0", stream: orders, group: wfstudio}
  - name: warehouse
    type: sink.webhook
    config: {url: "https://warehouse.example.com/hooks/ship", secret: "${WAREHOUSE_SECRET:-dev}"}
pipelines:
  paid:
    trigger: {type: event, config: {connector: stripe}}
    steps:
      - name: ship
        type: step.emit
        config: {connector: warehouse, type: com.example.order.ship, data: {order: "{{ .data.id }}"}}
  take-order:
    trigger: {type: event, config: {connector: orders, type: order.created}}
    steps:
      - {name: note, type: step.set, config: {values: {seen: true}}}
"""


async def _connectors_scene(window: object, save: object) -> None:
    """A file's connectors under the graph, the webhook source selected: its form in the
    Properties dock (the secret masked). The file goes afterwards."""
    w = window
    file = w.workspace / "shop.yaml"  # type: ignore[attr-defined]
    file.write_text(CONNECTORS, encoding="utf-8")
    try:
        editor = w.open_file(file)  # type: ignore[attr-defined]
        await _settle(None)
        editor.graph.zoom_to_fit()
        editor.select_connector("stripe")
        await _wait(lambda: w.connector_panel.current() == "stripe")  # type: ignore[attr-defined]
        await _settle(None, 20)
        save(w, "connector-editor")  # type: ignore[operator]
        save(w.connector_panel, "connector-panel")  # type: ignore[attr-defined,operator]
        w.close_tab(w.tabs.indexOf(editor))  # type: ignore[attr-defined]
    finally:
        file.unlink(missing_ok=True)


SOURCES = """\
schemas:
  order.created:
    type: object
    required: [id, sku]
    properties:
      id: {{type: string, description: "the shop's order number"}}
      sku: {{type: string}}
      qty: {{type: integer, minimum: 1, default: 1}}
      channel: {{enum: [web, store, phone]}}
      rush: {{type: boolean}}
connectors:
  - name: orders
    type: source.redis_streams
    config: {{url: "{url}", stream: "{orders}", schema: order.created, batch: 10, block_ms: 200,
              max_in_flight: 4}}
  - name: returns
    type: source.redis_streams
    config: {{url: "{url}", stream: "{returns}"}}
  - name: legacy-feed
    type: source.redis_streams
    config: {{url: "redis://127.0.0.1:1/0", stream: legacy, block_ms: 500}}
pipelines:
  take-order:
    trigger: {{type: event, config: {{connector: orders, type: order.created}}}}
    steps:
      - {{name: pack, type: step.delay, config: {{duration: 400ms}}}}
      - {{name: total, type: step.set, config: {{values: {{total: "{{{{ .data.qty * 10 }}}}"}}}}}}
  take-return:
    trigger: {{type: event, config: {{connector: returns}}}}
    steps:
      - {{name: note, type: step.set, config: {{values: {{returned: true}}}}}}
  legacy-import:
    trigger: {{type: event, config: {{connector: legacy-feed}}}}
    steps:
      - {{name: keep, type: step.set, config: {{values: {{kept: true}}}}}}
"""


async def _sources_scene(window: object, save: object, suffix: str) -> None:
    """Live sources: one draining bursts of Redis stream entries (its lag plot moves), one
    stopped that took test events, one that cannot reach its Redis. The streams and the
    file go afterwards."""
    import uuid

    import redis
    from PySide6.QtCore import Qt

    from app import asyncqt
    from engine.service.models import TestEvent

    w = window
    svc = w.backend.service  # type: ignore[attr-defined]
    url = "redis://127.0.0.1:6379/0"
    streams = {n: f"wfstudio-shots-{uuid.uuid4().hex[:8]}-{n}" for n in ("orders", "returns")}
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:  # the other pictures are still worth having
        print(f"sources-pane{suffix}.png not taken: no Redis at {url} ({exc})", file=sys.stderr)
        client.close()
        return
    file = w.workspace / "sources.yaml"  # type: ignore[attr-defined]
    file.write_text(SOURCES.format(url=url, **streams), encoding="utf-8")
    try:
        await svc.load_file(file)
        for n, data in enumerate(({"id": "R-1", "reason": "damaged"}, {"id": "R-2", "reason": "late"})):
            await svc.send_test_event("returns", TestEvent(type="return.requested", data=data,
                                                           subject=f"returns/{n}"))
        await svc.send_test_event("orders", TestEvent(data={"id": "O-bad", "qty": 0}))  # dead-lettered
        await svc.start_source("orders")
        await svc.start_source("legacy-feed")
        w.resizeDocks([w.docks["Problems"]], [540], Qt.Orientation.Vertical)  # type: ignore[attr-defined]
        w.show_sources()  # type: ignore[attr-defined]
        pane = w.sources  # type: ignore[attr-defined]
        await _wait(lambda: pane.model.rowCount() == 3 and pane.lag_plot is not None)
        pane.select("orders")
        sent = 0
        for burst in (120, 40, 300):  # bursts faster than the pipeline: the lag climbs and drains
            for _ in range(burst):
                client.xadd(streams["orders"], {"type": "order.created", "data": (
                    f'{{"id": "O-{sent}", "sku": "AB-{sent % 7}", "qty": {1 + sent % 4}}}')})
                sent += 1
            wanted = pane.loads + (3 if burst < 300 else 1)  # samples of the climb before the next
            await _wait(lambda n=wanted: pane.loads >= n)
        # photographed while it drains the last burst: lagging, executions in flight
        await _wait(lambda: (s := pane.model.by_name("orders")) is not None and s.state == "lagging"
                    and (s.lag or 0) > 0 and pane.lag_plot.points >= 6)
        await _settle(None, 5)
        save(pane, f"sources-pane{suffix}")  # type: ignore[operator]
        await _wait(lambda: (s := pane.model.by_name("orders")) is not None and s.lag == 0
                    and s.in_flight == 0, timeout=60)
        if not suffix:
            pane.open_test_dialog()
            await _wait(lambda: pane.dialog is not None and pane.dialog.isVisible())
            dialog = pane.dialog
            dialog.form.editors["id"].setText("O-1001")
            dialog.form.editors["sku"].setText("ZX-9")
            dialog.form.editors["qty"].setText("2")
            dialog.send_button.click()
            await _wait(lambda: dialog.delivery is not None and asyncqt.pending() == 0)
            await _settle(None)
            save(dialog, "source-test-event")  # type: ignore[operator]
            dialog.close()
        for name in ("orders", "legacy-feed"):
            await svc.stop_source(name)
        await svc.unload_file(file)
        await _wait(lambda: asyncqt.pending() == 0)
    finally:
        client.delete(*streams.values())
        client.close()
        file.unlink(missing_ok=True)
    w.resizeDocks([w.docks["Problems"]], [240], Qt.Orientation.Vertical)  # type: ignore[attr-defined]


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
