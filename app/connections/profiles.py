"""Named connection profiles, kept in a JSON file in the user's config directory.

A profile says which backend the studio talks to: the embedded engine (with an optional
store URL) or a hosted server (its URL). API keys are never written here; they live in the
:mod:`app.connections.secrets` store under the profile's name. A damaged profiles file is
reported (``load_error``) and set aside before the next save, never silently overwritten.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

Kind = Literal["embedded", "remote"]
KINDS: Final[tuple[Kind, ...]] = ("embedded", "remote")
FILE_NAME: Final = "profiles.json"
FORMAT: Final = 1  # the file's format version


class ProfileError(ValueError):
    """A profile (or the profiles file) that cannot be used; the message says why."""


def config_dir() -> Path:
    """The studio's folder in the user's config directory (created on first write)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("wfstudio"))


@dataclass(frozen=True)
class Profile:
    name: str
    kind: Kind = "embedded"
    url: str = ""  # remote: the server's base URL (http or https)
    store: str = ""  # embedded: the store URL; "" is the default file in the user data dir
    verify_tls: bool = True  # remote over https: check the server's certificate

    @property
    def remote(self) -> bool:
        return self.kind == "remote"

    def describe(self) -> str:
        """Where this profile connects, for a person: "server https://…" or "embedded"."""
        if self.remote:
            return f"server {self.url}"
        return f"embedded engine ({self.store})" if self.store else "embedded engine"

    def problems(self) -> list[str]:
        """What is wrong with the profile's fields (empty: usable)."""
        found: list[str] = []
        if not self.name.strip():
            found.append("a profile needs a name")
        elif len(self.name) > 100:
            found.append("a profile name has at most 100 characters")
        if self.kind not in KINDS:
            found.append(f"unknown kind {self.kind!r}: use embedded or remote")
        if self.remote:
            parts = urlsplit(self.url.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                found.append("the server URL must look like https://host:port "
                             f"(got {self.url.strip() or 'nothing'!r})")
        return found

    def check(self) -> Profile:
        """``self`` with surrounding spaces trimmed; ProfileError when it is not usable."""
        trimmed = replace(self, name=self.name.strip(), url=self.url.strip().rstrip("/"),
                          store=self.store.strip())
        problems = trimmed.problems()
        if problems:
            raise ProfileError("; ".join(problems))
        return trimmed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Profile:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ProfileError(f"not a profile: {str(data)[:80]}")
        kind = data.get("kind", "embedded")
        return cls(name=data["name"], kind=kind if kind in KINDS else "embedded",
                   url=str(data.get("url") or ""), store=str(data.get("store") or ""),
                   verify_tls=bool(data.get("verify_tls", True)))


DEFAULT_PROFILE: Final = Profile("Embedded", "embedded")


class ProfileStore:
    """The profiles file. ``ProfileStore()`` uses the user config dir; tests pass a path."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else config_dir() / FILE_NAME
        self.load_error = ""  # why the file could not be read ("" when it could)
        self._profiles: list[Profile] = []
        self._last_used = ""
        self.reload()

    def reload(self) -> None:
        self.load_error = ""
        self._profiles, self._last_used = [], ""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            self.load_error = f"cannot read {self.path}: {exc}"
            return
        try:
            data = json.loads(text)
            items = data["profiles"] if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise ProfileError("it has no list of profiles")
            profiles = [Profile.from_dict(item) for item in items]
        except (ValueError, KeyError) as exc:
            self.load_error = f"{self.path} is damaged ({exc}); it will be kept as a backup"
            return
        seen: set[str] = set()
        for profile in profiles:  # a hand-edited file may repeat a name: the first one wins
            if profile.name not in seen:
                seen.add(profile.name)
                self._profiles.append(profile)
        last = data.get("last_used")
        self._last_used = last if isinstance(last, str) else ""

    # ------------------------------------------------------------------ reading

    def profiles(self) -> list[Profile]:
        """The saved profiles; the default embedded one when none is saved."""
        return list(self._profiles) or [DEFAULT_PROFILE]

    def get(self, name: str) -> Profile | None:
        return next((p for p in self.profiles() if p.name == name), None)

    def last_used(self) -> Profile:
        """The profile connected last (the first one when it is gone)."""
        return self.get(self._last_used) or self.profiles()[0]

    # ------------------------------------------------------------------ writing

    def save(self, profile: Profile, previous_name: str | None = None) -> Profile:
        """Add ``profile`` or replace the one named ``previous_name`` (a rename) or its own
        name. Returns the checked profile. A name taken by another profile is refused."""
        profile = profile.check()
        old = previous_name if previous_name is not None else profile.name
        profiles = self.profiles()
        if profile.name != old and any(p.name == profile.name for p in profiles):
            raise ProfileError(f"a profile named {profile.name!r} already exists")
        position = next((i for i, p in enumerate(profiles) if p.name == old), None)
        if position is None:
            profiles.append(profile)
        else:
            profiles[position] = profile
        if self._last_used == old:
            self._last_used = profile.name
        self._write(profiles)
        return profile

    def delete(self, name: str) -> bool:
        profiles = self.profiles()
        kept = [p for p in profiles if p.name != name]
        if len(kept) == len(profiles):
            return False
        self._write(kept)
        return True

    def set_last_used(self, name: str) -> None:
        if name != self._last_used:
            self._last_used = name
            self._write(self.profiles())

    def _write(self, profiles: list[Profile]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.load_error and self.path.exists():
            # Whatever was in the damaged file may matter to someone: keep it beside.
            backup = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            os.replace(self.path, backup)
        body = {"format": FORMAT, "last_used": self._last_used,
                "profiles": [p.to_dict() for p in profiles]}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)  # a crash mid-write leaves the old file whole
        self._profiles = list(profiles)
        self.load_error = ""
