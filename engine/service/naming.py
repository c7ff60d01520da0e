"""How a hosted server names pipeline files: relative to their definition root.

The studio names a file by its path on the user's machine; a server must not show its
callers where it keeps files (``/srv/wfstudio/deploy/acme/orders.yaml``). On a server a
file is named relative to its definition root, the folder its imports are read from:

- a deployed file, ``<deploy dir>/<tenant>/sub/orders.yaml``: ``sub/orders.yaml``, the name
  the tenant deployed it under (also when a restarted server finds it on disk);
- a file ``serve`` was started with: its file name, relative to its own folder.

That name is what listings, definitions, diagnostics, positions in error messages and
definition snapshots carry; the service keeps the disk path to itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.config.loader import ImportPolicy


@dataclass(frozen=True)
class ServerNames:
    deploy_dir: Path | None = None  # where tenants' deployments live, if anywhere

    def root_of(self, disk: str) -> str:
        """The definition root of the file at ``disk`` (an absolute path)."""
        if self.deploy_dir is not None:
            deploy = self.deploy_dir.resolve()
            try:
                inside = Path(disk).resolve().relative_to(deploy)
            except ValueError:
                pass
            else:
                if len(inside.parts) > 1:  # <deploy dir>/<tenant>/...
                    return str(deploy / inside.parts[0])
        return os.path.dirname(disk)

    def tenant_of(self, disk: str) -> str | None:
        """The tenant whose deploy folder holds ``disk``, None for the operator's files."""
        root = self.root_of(disk)
        if self.deploy_dir is None or Path(root).parent != self.deploy_dir.resolve():
            return None
        return Path(root).name

    def name(self, disk: str, root: str | None = None) -> tuple[str, ImportPolicy]:
        """The name of the file at ``disk`` relative to ``root`` (default: its definition
        root), and the policy that reads it and its imports under that name."""
        root = root if root is not None else self.root_of(disk)
        real_root, real_disk = os.path.realpath(root), os.path.realpath(disk)
        if os.path.commonpath([real_root, real_disk]) == real_root:
            shown = os.path.relpath(real_disk, real_root)
        else:  # not under the root: shown by its file name, read from its own folder
            shown, root = os.path.basename(disk), os.path.dirname(disk)
        return Path(shown).as_posix(), ImportPolicy(base=root)
