"""Ctrl-C in the terminal that started the studio closes it cleanly (a real process)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_ctrl_c_closes_the_studio_without_a_traceback(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    shutil.copy(ROOT / "resources" / "workspace" / "routing.yaml", workspace)
    store = tmp_path / "store.db"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.main", str(workspace), "--store", f"sqlite:///{store}",
         "--settings", str(tmp_path / "settings.ini")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the store is opened by the running event loop, after the handler is installed
        wait_until(lambda: (store.exists() and store.stat().st_size > 0) or proc.poll() is not None,
                   timeout=120, what="the studio to open its store")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
