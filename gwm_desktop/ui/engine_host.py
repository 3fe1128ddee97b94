"""The one Engine of the app, built once on a worker thread (it imports torch: seconds, not for the UI).

Tabs ask ``EngineHost.engine`` (None until ready) and listen to ``ready``/``failed``. Tests pass a
model folder; the app uses the shipped default model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from gwm_desktop.ui.workers import GeneratorWorker


def _load_engine(model_dir: Path | None, device: str) -> Any:  # Any: the core is imported lazily
    from gwm_desktop.core.engine import Engine  # heavy: torch + LPIPS, on the worker thread only

    return Engine(model_dir, device)


class EngineHost(QObject):
    loading = Signal(str)
    store_ready = Signal(object)
    ready = Signal(object)
    failed = Signal(str)

    def __init__(self, model_dir: Path | None = None, device: str = "auto", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model_dir = model_dir
        self.device = device
        self.engine: Any = None
        self.error: str | None = None
        self._worker: GeneratorWorker | None = None

    @property
    def is_loading(self) -> bool:
        return self._worker is not None and self._worker.is_running

    def load(self, device: str | None = None, with_store: bool = False) -> None:
        """Start (or restart, e.g. after a device change) loading the model in the background."""
        if self.is_loading:
            return
        if device is not None:
            self.device = device
        self.engine, self.error = None, None
        model_dir, chosen = self.model_dir, self.device

        def job(_cancel: Any) -> Iterator[Any]:
            if with_store:  # reading (or creating) the data folder is disk work: also off the UI thread
                from gwm_desktop.core.profiles import ProfileStore

                store = ProfileStore()
                store.get_or_create_default()
                yield store
            return _load_engine(model_dir, chosen)

        self._worker = GeneratorWorker(job, "load model")
        self._worker.yielded.connect(self.store_ready.emit)
        self._worker.returned.connect(self._on_ready)
        self._worker.errored.connect(self._on_failed)
        self.loading.emit("Loading model…")
        self._worker.start()

    def _on_ready(self, engine: Any) -> None:
        self.engine = engine
        self.ready.emit(engine)

    def _on_failed(self, message: str, _trace: str) -> None:
        self.error = message
        self.failed.emit(message)

    def wait(self, timeout_s: float = 60.0) -> bool:
        return self._worker.wait(timeout_s) if self._worker else True
