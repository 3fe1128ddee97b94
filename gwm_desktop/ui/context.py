"""What every tab shares: the profile store, the settings, the engine host and the current profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from gwm_desktop.ui.engine_host import EngineHost
from gwm_desktop.ui.settings import Settings

if TYPE_CHECKING:  # annotations only: the store itself is built on the engine host's worker thread
    from gwm_desktop.core.profiles import Profile, ProfileStore


class AppSignals(QObject):
    profile_changed = Signal(object)
    store_ready = Signal(object)
    status_message = Signal(str, int)


@dataclass
class AppContext:
    store: ProfileStore | None
    settings: Settings
    engine_host: EngineHost
    signals: AppSignals = field(default_factory=AppSignals)
    profile_name: str = "default"

    @property
    def engine(self) -> Any:
        return self.engine_host.engine

    def profile(self) -> Profile:
        if self.store is None:
            raise RuntimeError("profiles are still loading")
        if self.store.exists(self.profile_name):
            return self.store.get(self.profile_name)
        return self.store.get_or_create_default()

    def set_profile(self, name: str) -> None:
        self.profile_name = name
        self.settings.set("profile", name)
        self.signals.profile_changed.emit(self.profile())

    def set_store(self, store: ProfileStore) -> None:
        self.store = store
        self.signals.store_ready.emit(store)
        self.signals.profile_changed.emit(self.profile())

    def say(self, message: str, timeout_ms: int = 6000) -> None:
        self.signals.status_message.emit(message, timeout_ms)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Dropped files and folders -> image files (folders recurse; explicit files kept as given)."""
    from gwm_desktop.core.image_io import iter_image_files

    return list(iter_image_files(paths))


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"about {max(seconds, 1)} s left"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"about {minutes} min {secs:02d} s left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes:02d} min left"
