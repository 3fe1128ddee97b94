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
# A profile's own detector (a model folder with a manifest) and the one it replaced, kept for a roll back.
DETECTOR_DIR, PREVIOUS_DETECTOR_DIR = "detector", "detector.previous"


class ProfileError(ValueError):
    pass


def data_home() -> Path:
    override = os.environ.get("GWM_HOME")
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


@dataclass
class Evaluation:
    """One number that decides between two detectors; higher is better (e.g. balanced accuracy)."""

    metric: str
    value: float
    details: str = ""


@dataclass
class InstallDecision:
    installed: bool
    reason: str


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
        folder = self.detector_path
        return folder if (folder / "manifest.json").exists() else None

    @property
    def detector_path(self) -> Path:
        """Where the profile's own detector goes (it may not exist yet)."""
        return self.folder / DETECTOR_DIR

    def install_detector_if_better(self, candidate: Path, candidate_eval: Evaluation | None,
                                   current_eval: Evaluation | None) -> InstallDecision:
        """Install the model folder ``candidate`` as this profile's detector only when its evaluation beats
        the current one's; the replaced detector is kept for ``roll_back_detector``. The swap goes through
        a staging folder and renames, so a crash never leaves the profile without a complete detector."""
        if candidate_eval is None:
            return InstallDecision(False, "the new detector could not be evaluated; the current one stays")
        if current_eval is not None and candidate_eval.value <= current_eval.value:
            return InstallDecision(False, f"kept the current detector: {candidate_eval.metric} "
                                          f"{candidate_eval.value:.3f} is not better than {current_eval.value:.3f}")
        staging = Path(tempfile.mkdtemp(prefix=f".{DETECTOR_DIR}.", dir=self.folder))
        try:
            # phase2_settings.json is a Phase 2 run's cache stamp, not part of the model.
            shutil.copytree(candidate, staging / "model", ignore=shutil.ignore_patterns("phase2_settings.json"))
            current, previous = self.detector_path, self.folder / PREVIOUS_DETECTOR_DIR
            if current.exists():
                if previous.exists():
                    shutil.rmtree(previous)
                current.rename(previous)
            (staging / "model").rename(current)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        before = f" (was {current_eval.value:.3f})" if current_eval else ""
        return InstallDecision(True, f"installed: {candidate_eval.metric} {candidate_eval.value:.3f}{before}")

    def can_roll_back_detector(self) -> bool:
        return (self.folder / PREVIOUS_DETECTOR_DIR / "manifest.json").exists()

    def roll_back_detector(self) -> None:
        """Swap the previous detector back in; the rolled-back one becomes the new 'previous'."""
        current, previous = self.detector_path, self.folder / PREVIOUS_DETECTOR_DIR
        if not self.can_roll_back_detector():
            raise FileNotFoundError("there is no previous detector to restore")
        swap = self.folder / f".{DETECTOR_DIR}.swap"
        if swap.exists():
            shutil.rmtree(swap)
        if current.exists():
            current.rename(swap)
        previous.rename(current)
        if swap.exists():
            swap.rename(previous)


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
