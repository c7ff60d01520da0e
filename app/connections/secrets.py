"""API keys of connection profiles: the system keyring when one works, else a private file.

The keyring (GNOME Keyring, KWallet, macOS Keychain, Windows Credential Locker…) is used
when ``keyring`` finds a real backend. A headless machine often has none: ``keyring`` then
answers with its ``fail`` (or ``null``) backend, and keys go to ``secrets.json`` in the
config directory, created readable and writable by the user only (mode 0600, folder 0700).
``where`` says which one, for the connection dialog. A keyring that fails on use (locked,
D-Bus gone) does not lose the key: it is written to the file instead and ``warning`` says so.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, Final

from app.connections.profiles import config_dir
from engine.service.errors import ServiceError

log = logging.getLogger("wfstudio.app")

SERVICE: Final = "wfstudio"  # the keyring's service name; the profile name is the user name
FILE_NAME: Final = "secrets.json"
FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
AUTO: Final = "auto"


class SecretError(ServiceError):
    """The key could not be stored or read; the message says where and why."""

    code = "secret_store"


def usable_keyring() -> Any | None:
    """The system keyring backend, or None when ``keyring`` has no working one."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken keyring configuration counts as none
        return None
    if isinstance(backend, fail.Keyring | null.Keyring):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    return backend


class SecretStore:
    """Keys by profile name.

    ``path``: the secrets file (default: ``secrets.json`` in the user config dir).
    ``backend``: a keyring backend, None for the file only, or ``"auto"`` (detect).
    """

    def __init__(self, path: Path | str | None = None, *, backend: Any = AUTO) -> None:
        self.path = Path(path) if path is not None else config_dir() / FILE_NAME
        self.backend = usable_keyring() if backend == AUTO else backend
        self.warning = ""  # the last keyring failure that sent a key to the file instead

    @property
    def in_keyring(self) -> bool:
        return self.backend is not None

    @property
    def where(self) -> str:
        """Where new keys are kept, for a person."""
        if self.backend is not None:
            return f"the system keyring ({getattr(self.backend, 'name', type(self.backend).__name__)})"
        return f"{self.path} (no system keyring here; the file is readable only by you)"

    # ------------------------------------------------------------------ operations

    def get(self, name: str) -> str | None:
        if self.backend is not None:
            try:
                found = self.backend.get_password(SERVICE, name)
            except Exception as exc:
                log.warning("the keyring could not be read (%s); trying %s", exc, self.path)
            else:
                if found is not None:
                    return str(found)
        value = self._read().get(name)
        return value if isinstance(value, str) else None

    def set(self, name: str, secret: str) -> None:
        """Store ``secret`` for profile ``name`` (an empty secret deletes it)."""
        if not secret:
            self.delete(name)
            return
        self.warning = ""
        if self.backend is not None:
            try:
                self.backend.set_password(SERVICE, name, secret)
            except Exception as exc:
                self.warning = (f"the system keyring refused the key ({exc}); it was saved in "
                                f"{self.path}, readable only by you")
                log.warning("%s", self.warning)
            else:
                self._drop_from_file(name)  # never two copies that can disagree
                return
        keys = self._read()
        keys[name] = secret
        self._write(keys)

    def delete(self, name: str) -> None:
        if self.backend is not None:
            try:
                if self.backend.get_password(SERVICE, name) is not None:
                    self.backend.delete_password(SERVICE, name)
            except Exception as exc:
                log.warning("the keyring could not delete the key of %r: %s", name, exc)
        self._drop_from_file(name)

    def rename(self, old: str, new: str) -> None:
        """Move the key of a renamed profile."""
        if old == new:
            return
        secret = self.get(old)
        if secret is not None:
            self.set(new, secret)
            self.delete(old)

    # ------------------------------------------------------------------ the file

    def _drop_from_file(self, name: str) -> None:
        keys = self._read()
        if name in keys:
            del keys[name]
            self._write(keys)

    def _read(self) -> dict[str, Any]:
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
            if mode & 0o077 and os.name == "posix":
                os.chmod(self.path, FILE_MODE)  # someone widened it: close it again
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SecretError(f"cannot read the API keys in {self.path}: {exc}") from None
        keys = data.get("keys") if isinstance(data, dict) else None
        return dict(keys) if isinstance(keys, dict) else {}

    def _write(self, keys: dict[str, Any]) -> None:
        folder = self.path.parent
        try:
            if not folder.exists():
                folder.mkdir(parents=True, mode=DIR_MODE)
            tmp = self.path.with_name(self.path.name + ".tmp")
            # Created with the final mode: the key is never readable by others, not even briefly.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                if os.name == "posix":
                    os.fchmod(out.fileno(), FILE_MODE)  # O_CREAT's mode does not apply to an old tmp
                json.dump({"format": 1, "keys": keys}, out, indent=2)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise SecretError(f"cannot save the API key in {self.path}: {exc}") from None
