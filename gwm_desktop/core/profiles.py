"""Artist profiles: a name, a secret key, and optionally a detector specialised for that profile.

Stored under the user data dir (platformdirs; ``GWM_HOME`` overrides): ``profiles/<name>/key.bin``
(owner-only, 0600) and ``profile.json``. Keys never appear in images, logs or reports; export and
import move them between machines as a passphrase-encrypted backup file (``key_backup``), itself
written owner-only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gwm_desktop.core import key_backup
from gwm_desktop.core.atomic import write_atomic, write_new
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
        """The 32-byte secret; ProfileError if key.bin is damaged (a short key would make a watermark
        anyone can compute, so it is never used)."""
        path = self.folder / "key.bin"
        try:
            key = path.read_bytes()
        except OSError as error:
            raise ProfileError(f"cannot read the key of profile {self.name!r}: {error.strerror or error}") from None
        if len(key) != KEY_BYTES:
            raise ProfileError(f"the key of profile {self.name!r} is damaged ({path} holds {len(key)} bytes, not "
                               f"{KEY_BYTES}): restore it from a backup with `gwm profile import`")
        return key

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
        the current one's; the replaced detector is kept for ``roll_back_detector``. The copy is staged first
        and swapped in by two renames, so no detector is ever half written; a crash between the renames
        leaves the old one complete in ``detector.previous`` (scans then use the shipped model until
        ``roll_back_detector`` restores it)."""
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
        try:
            meta = json.loads((folder / "profile.json").read_text(encoding="utf-8"))
            return Profile(str(meta["name"]), float(meta["created"]), folder)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ProfileError(f"profile {name!r} is damaged ({folder / 'profile.json'}: {error})") from None

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
            write_atomic(staging / "profile.json", json.dumps(meta).encode(), private=True)
            write_atomic(staging / "key.bin", key, private=True)
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
        write_atomic(target / "profile.json", json.dumps(meta).encode(), private=True)
        return self.get(new)

    def delete(self, name: str) -> None:
        profile = self.get(name)
        shutil.rmtree(profile.folder)

    def export(self, name: str, path: Path, passphrase: str, overwrite: bool = False) -> None:
        """Write the profile (name + key) to ``path``, encrypted with ``passphrase``, owner-only.

        An existing file is kept (ProfileError) unless ``overwrite``, also when another program
        creates it while the backup is being written.
        """
        profile = self.get(name)
        path = Path(path)
        try:
            data = key_backup.seal(profile.name, profile.created, profile.key, passphrase)
        except key_backup.BackupError as error:
            raise ProfileError(str(error)) from None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ProfileError(f"cannot write {path}: its folder cannot be created ({error.strerror})") from None
        try:
            if overwrite:
                write_atomic(path, data, private=True)
            else:
                write_new([path], data, private=True)
        except FileExistsError:
            raise ProfileError(f"{path} already exists; choose another file name") from None
        except OSError as error:
            raise ProfileError(f"cannot write {path}: {error.strerror or error}") from None

    @staticmethod
    def backup_is_encrypted(path: Path) -> bool:
        """Whether importing ``path`` needs a passphrase; ProfileError if it is no backup at all."""
        try:
            return key_backup.is_encrypted(key_backup.read_backup(path))
        except key_backup.BackupError as error:
            raise ProfileError(str(error)) from None

    def import_(self, path: Path, name: str | None = None, passphrase: str | None = None) -> tuple[Profile, bool]:
        """Restore a backup as a new profile; returns it and whether the file was encrypted (a plain,
        older backup exposes the key to anyone who has the file: tell the user to re-export it)."""
        try:
            backup = key_backup.open_backup(key_backup.read_backup(path), passphrase, str(path))
        except key_backup.BackupError as error:
            raise ProfileError(str(error)) from None
        if len(backup.key) != KEY_BYTES:
            raise ProfileError(f"{path} is damaged: its key has {len(backup.key)} bytes, not {KEY_BYTES}")
        return self.create(name or backup.name, backup.key), backup.encrypted
