"""Artist profiles: a name, a secret key, and optionally a detector specialised for that profile.

Stored under the user data dir (platformdirs; ``GWM_HOME`` overrides): ``profiles/<name>/key.bin``
(owner-only, 0600) and ``profile.json``. Keys never appear in images, logs or reports; export and
import move them between machines as a small JSON file that is itself written owner-only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gwm_desktop.core.keys import KEY_BYTES, new_key

APP_NAME = "gwm-desktop"
DEFAULT_PROFILE = "default"
_NAME_PATTERN = re.compile(r"^[\w][\w .\-]{0,63}$", re.UNICODE)


class ProfileError(ValueError):
    pass


def data_home() -> Path:
    override = os.environ.get("GWM_HOME")
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


@dataclass
class Profile:
    name: str
    created: float
    folder: Path

    @property
    def key(self) -> bytes:
        return (self.folder / "key.bin").read_bytes()

    @property
    def detector_folder(self) -> Path | None:
        """A model folder fine-tuned for this profile, if one was installed (Advanced tab / Phase 2)."""
        folder = self.folder / "detector"
        return folder if (folder / "manifest.json").exists() else None


def _write_private(path: Path, data: bytes) -> None:
    """Atomic write of a secret: temp file created 0600 in the same folder, then renamed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR) if hasattr(os, "fchmod") else None
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ProfileStore:
    """All profiles of one data home."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = Path(home) if home else data_home()
        self.root = self.home / "profiles"

    def _folder(self, name: str) -> Path:
        return self.root / name

    @staticmethod
    def validate_name(name: str) -> str:
        name = name.strip()
        if not _NAME_PATTERN.match(name) or name in (".", ".."):
            raise ProfileError(f"invalid profile name {name!r}: use letters, digits, spaces, '.', '-' or '_' "
                               "(at most 64 characters)")
        return name

    def list(self) -> list[Profile]:
        if not self.root.is_dir():
            return []
        return [self.get(p.name) for p in sorted(self.root.iterdir())
                if not p.name.startswith(".") and (p / "key.bin").exists()]

    def exists(self, name: str) -> bool:
        return (self._folder(name) / "key.bin").exists()

    def get(self, name: str) -> Profile:
        folder = self._folder(self.validate_name(name))
        if not (folder / "key.bin").exists():
            raise ProfileError(f"no profile named {name!r} (create it with `gwm profile create {name}`)")
        meta = json.loads((folder / "profile.json").read_text(encoding="utf-8"))
        return Profile(meta["name"], meta["created"], folder)

    def get_or_create_default(self) -> Profile:
        return self.get(DEFAULT_PROFILE) if self.exists(DEFAULT_PROFILE) else self.create(DEFAULT_PROFILE)

    def create(self, name: str, key: bytes | None = None) -> Profile:
        name = self.validate_name(name)
        if self.exists(name):
            raise ProfileError(f"a profile named {name!r} already exists")
        key = key if key is not None else new_key()
        if len(key) != KEY_BYTES:
            raise ProfileError(f"a key must be {KEY_BYTES} bytes")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        folder = self._folder(name)
        # Build the profile in a hidden folder and rename it into place: never a half-made profile.
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".new-"))
        try:
            meta = {"name": name, "created": time.time()}
            _write_private(staging / "profile.json", json.dumps(meta).encode())
            _write_private(staging / "key.bin", key)
            staging.rename(folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return Profile(name, meta["created"], folder)

    def rename(self, old: str, new: str) -> Profile:
        profile = self.get(old)
        new = self.validate_name(new)
        if self.exists(new):
            raise ProfileError(f"a profile named {new!r} already exists")
        target = self._folder(new)
        profile.folder.rename(target)
        meta = json.loads((target / "profile.json").read_text(encoding="utf-8"))
        meta["name"] = new
        _write_private(target / "profile.json", json.dumps(meta).encode())
        return self.get(new)

    def delete(self, name: str) -> None:
        profile = self.get(name)
        shutil.rmtree(profile.folder)

    def export(self, name: str, path: Path) -> None:
        """Write the profile (name + key) to ``path`` as owner-only JSON: a backup to keep safe."""
        profile = self.get(name)
        payload = {"format": "gwm-profile-v1", "name": profile.name, "created": profile.created,
                   "key": base64.b64encode(profile.key).decode("ascii")}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, json.dumps(payload, indent=2).encode())

    def import_(self, path: Path, name: str | None = None) -> Profile:
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
            if payload.get("format") != "gwm-profile-v1":
                raise ProfileError(f"{path} is not a GenWatermark profile export")
            key = base64.b64decode(payload["key"], validate=True)
        except (OSError, json.JSONDecodeError, KeyError, ValueError) as error:
            if isinstance(error, ProfileError):
                raise
            raise ProfileError(f"cannot read profile export {path}: {error}") from error
        return self.create(name or payload["name"], key)


def profile_summary(profile: Profile) -> dict[str, object]:
    data = asdict(profile)
    data["folder"] = str(profile.folder)
    data["custom_detector"] = profile.detector_folder is not None
    return data
