"""The ``wfstudio`` command: the desktop studio, or the headless engine CLI.

``wfstudio`` alone or ``wfstudio studio [PATH]`` opens the app; every other verb
(``run``, ``validate``, ``serve``, ``replay``…) is the engine's CLI, which never loads Qt.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] == "studio":
        from app.main import main as studio

        return studio(args[1:])
    from engine.cli import main as cli

    return cli(args)


if __name__ == "__main__":
    sys.exit(main())
