"""The pre-Qt check of `make run`: which system libraries the X11 plugin lacks, and the
one install line for all of them. The decision is a pure function over the libraries found;
one run of the real check is compared with what ``ldd`` says of the real plugin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.syscheck import (
    QT_XCB_LIBRARIES,
    distro_family,
    install_command,
    missing_libraries,
    needs_xcb,
)

ROOT = Path(__file__).resolve().parents[2]
ALL = [lib.soname for lib in QT_XCB_LIBRARIES]


def test_nothing_is_missing_when_everything_is_found() -> None:
    assert missing_libraries(ALL) == []


def test_every_missing_library_is_named_not_just_the_first() -> None:
    found = [s for s in ALL if s not in {"libxcb-cursor.so.0", "libxcb-icccm.so.4",
                                         "libxcb-keysyms.so.1"}]
    missing = missing_libraries(found)
    assert [lib.soname for lib in missing] == ["libxcb-cursor.so.0", "libxcb-icccm.so.4",
                                               "libxcb-keysyms.so.1"]
    assert install_command(missing, "debian") == (
        "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1")
    assert install_command(missing, "fedora") == (
        "sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms")


def test_a_package_providing_several_libraries_is_named_once() -> None:
    missing = missing_libraries([s for s in ALL if not s.startswith("libxcb-s")])
    assert install_command(missing, "fedora") == "sudo dnf install libxcb"  # shape, shm, sync
    assert install_command(missing, "debian") == (
        "sudo apt-get install libxcb-shape0 libxcb-shm0 libxcb-sync1")


@pytest.mark.parametrize(("release", "family"), [
    ('ID=debian\nVERSION_ID="12"\n', "debian"),
    ('ID=ubuntu\nID_LIKE=debian\n', "debian"),
    ('ID=fedora\nVERSION_ID=40\n', "fedora"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "fedora"),
    ("", "debian"),
])
def test_the_distribution_family_picks_the_package_names(release: str, family: str) -> None:
    assert distro_family(release) == family


def test_only_the_x11_platform_needs_the_check() -> None:
    linux = sys.platform.startswith("linux")
    assert needs_xcb({}) is linux
    assert needs_xcb({"QT_QPA_PLATFORM": "xcb"}) is linux
    assert needs_xcb({"QT_QPA_PLATFORM": "offscreen"}) is False
    assert needs_xcb({"QT_QPA_PLATFORM": "wayland"}) is False


def _qt_dir() -> Path:
    import PySide6

    return Path(PySide6.__file__).resolve().parent / "Qt"


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ldd") is None,
                    reason="the X11 plugin and ldd exist on Linux only")
def test_the_real_check_agrees_with_ldd_on_the_real_plugin() -> None:
    qt = _qt_dir()
    plugin_libs = [qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt6XcbQpa.so.6"]
    ldd = "".join(subprocess.run(["ldd", str(p)], capture_output=True, text=True, check=True).stdout
                  for p in plugin_libs)
    not_found = {line.split()[0] for line in ldd.splitlines() if "not found" in line}
    assert not_found <= set(ALL), f"the check does not know {sorted(not_found - set(ALL))}"
    # Every system library the plugin and its Qt module link is in the list the check knows.
    linked = {line.split()[0] for line in ldd.splitlines() if "=>" in line}
    xcb_family = {s for s in linked if s.startswith(("libxcb", "libX11", "libxkbcommon"))}
    assert xcb_family <= set(ALL), sorted(xcb_family - set(ALL))

    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    done = subprocess.run([sys.executable, "-m", "app.syscheck"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    if not not_found:
        assert (done.returncode, done.stderr) == (0, "")
    else:
        assert done.returncode == 1
        expected = missing_libraries(set(ALL) - not_found)
        assert ", ".join(lib.soname for lib in expected) in done.stderr
        assert "sudo " in done.stderr and "Traceback" not in done.stderr
