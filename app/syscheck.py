"""Before Qt starts: are the system libraries its X11 (xcb) platform plugin loads present?

Without them Qt aborts naming only the first one it missed ("xcb-cursor0 or libxcb-cursor0
is needed"), so a newcomer installs one package per attempt. This names all of them at
once, with the install line for the distribution: ``python -m app.syscheck`` (``make run``
runs it) exits 1 and prints that line when something is missing.

The list is what ``ldd PySide6/Qt/plugins/platforms/libqxcb.so`` (and the
``libQt6XcbQpa`` it links) needs outside the wheel; macOS and Windows need nothing.
Imports no Qt: it must run where Qt cannot.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SystemLibrary:
    soname: str
    debian: str  # Debian / Ubuntu package
    fedora: str  # Fedora / RHEL package


QT_XCB_LIBRARIES: tuple[SystemLibrary, ...] = (
    SystemLibrary("libxcb.so.1", "libxcb1", "libxcb"),
    SystemLibrary("libxcb-cursor.so.0", "libxcb-cursor0", "xcb-util-cursor"),
    SystemLibrary("libxcb-icccm.so.4", "libxcb-icccm4", "xcb-util-wm"),
    SystemLibrary("libxcb-keysyms.so.1", "libxcb-keysyms1", "xcb-util-keysyms"),
    SystemLibrary("libxcb-image.so.0", "libxcb-image0", "xcb-util-image"),
    SystemLibrary("libxcb-render-util.so.0", "libxcb-render-util0", "xcb-util-renderutil"),
    SystemLibrary("libxcb-util.so.1", "libxcb-util1", "xcb-util"),
    SystemLibrary("libxcb-randr.so.0", "libxcb-randr0", "libxcb"),
    SystemLibrary("libxcb-render.so.0", "libxcb-render0", "libxcb"),
    SystemLibrary("libxcb-shape.so.0", "libxcb-shape0", "libxcb"),
    SystemLibrary("libxcb-shm.so.0", "libxcb-shm0", "libxcb"),
    SystemLibrary("libxcb-sync.so.1", "libxcb-sync1", "libxcb"),
    SystemLibrary("libxcb-xfixes.so.0", "libxcb-xfixes0", "libxcb"),
    SystemLibrary("libxcb-xkb.so.1", "libxcb-xkb1", "libxcb"),
    SystemLibrary("libX11.so.6", "libx11-6", "libX11"),
    SystemLibrary("libX11-xcb.so.1", "libx11-xcb1", "libX11-xcb"),
    SystemLibrary("libxkbcommon.so.0", "libxkbcommon0", "libxkbcommon"),
    SystemLibrary("libxkbcommon-x11.so.0", "libxkbcommon-x11-0", "libxkbcommon-x11"),
    SystemLibrary("libGL.so.1", "libgl1", "libglvnd-glx"),
    SystemLibrary("libEGL.so.1", "libegl1", "libglvnd-egl"),
    SystemLibrary("libfontconfig.so.1", "libfontconfig1", "fontconfig"),
    SystemLibrary("libfreetype.so.6", "libfreetype6", "freetype"),
    SystemLibrary("libglib-2.0.so.0", "libglib2.0-0", "glib2"),
    SystemLibrary("libdbus-1.so.3", "libdbus-1-3", "dbus-libs"),
)


def missing_libraries(found: Iterable[str],
                      required: Iterable[SystemLibrary] = QT_XCB_LIBRARIES) -> list[SystemLibrary]:
    """The required libraries whose soname is not among ``found``, in list order."""
    present = set(found)
    return [lib for lib in required if lib.soname not in present]


def install_command(missing: Iterable[SystemLibrary], distro: str) -> str:
    """The one command that installs every missing library on ``distro`` (an os-release id)."""
    libs = list(missing)
    if distro == "fedora":
        return "sudo dnf install " + " ".join(dict.fromkeys(lib.fedora for lib in libs))
    return "sudo apt-get install " + " ".join(dict.fromkeys(lib.debian for lib in libs))


def distro_family(os_release: str) -> str:
    """``fedora`` for Fedora/RHEL-likes, else ``debian`` (the packages' names differ)."""
    fields = dict(line.split("=", 1) for line in os_release.splitlines() if "=" in line)
    ids = " ".join(fields.get(k, "").strip('"').lower() for k in ("ID", "ID_LIKE")).split()
    return "fedora" if {"fedora", "rhel", "centos"} & set(ids) else "debian"


def loadable(sonames: Iterable[str]) -> list[str]:
    """The sonames the dynamic loader can open here (the same search Qt's plugin gets)."""
    found = []
    for soname in sonames:
        try:
            ctypes.CDLL(soname)
        except OSError:
            continue
        found.append(soname)
    return found


def needs_xcb(environ: dict[str, str]) -> bool:
    """Whether Qt will use its X11 plugin: Linux, and no other platform chosen."""
    platform = environ.get("QT_QPA_PLATFORM", "")
    return sys.platform.startswith("linux") and (not platform or platform.startswith("xcb"))


def main() -> int:
    if not needs_xcb(dict(os.environ)):
        return 0
    missing = missing_libraries(loadable(lib.soname for lib in QT_XCB_LIBRARIES))
    if not missing:
        return 0
    release = Path("/etc/os-release")
    distro = distro_family(release.read_text() if release.exists() else "")
    names = ", ".join(lib.soname for lib in missing)
    print(f"The studio's Qt (X11) needs system libraries that are missing: {names}.\n"
          f"Install them with:\n\n    {install_command(missing, distro)}\n\n"
          "then run `make run` again (README.md, \"System packages\", lists them per OS).",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
