"""Run a core job (a generator of ``Progress``) on a worker thread and report back with Qt signals.

The superqt/napari pattern: a ``QRunnable`` iterates the generator; every yielded value is emitted as
``yielded``; the generator's return value as ``returned``; an exception as ``errored``; a cancel as
``aborted``; and ``finished`` always comes last. Cancel is cooperative: ``quit()`` sets a flag (and the
job's ``CancelToken``) that is checked between yields, so the job stops at a clean point. Signals are
delivered on the UI thread (queued connections); the worker never touches a widget.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Callable, Generator, Iterator
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, SignalInstance

from gwm_desktop.core.jobs import CancelToken, JobCancelled


class WorkerSignals(QObject):
    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(str, str)  # readable message, traceback
    aborted = Signal()
    finished = Signal()


class GeneratorWorker(QRunnable):
    """Drive ``factory(cancel_token)`` (which returns a generator) to its end on a pool thread."""

    def __init__(self, factory: Callable[[CancelToken], Iterator[Any]], name: str = "job") -> None:
        super().__init__()
        self.setAutoDelete(False)  # the owner keeps a reference and may still call quit()/wait()
        self.name = name
        self.cancel_token = CancelToken()
        self.signals = WorkerSignals()
        self._factory = factory
        self._done = threading.Event()
        self.result: Any = None

    # Convenience aliases so callers read like superqt's API.
    @property
    def yielded(self) -> SignalInstance:
        return self.signals.yielded

    @property
    def returned(self) -> SignalInstance:
        return self.signals.returned

    @property
    def errored(self) -> SignalInstance:
        return self.signals.errored

    @property
    def aborted(self) -> SignalInstance:
        return self.signals.aborted

    @property
    def finished(self) -> SignalInstance:
        return self.signals.finished

    @property
    def is_running(self) -> bool:
        return not self._done.is_set()

    @property
    def abort_requested(self) -> bool:
        return self.cancel_token.cancelled

    def quit(self) -> None:
        """Ask the job to stop at its next yield; safe from any thread, any number of times."""
        self.cancel_token.cancel()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the job has ended (True) or the timeout passed (False)."""
        return self._done.wait(timeout_s)

    def start(self, pool: QThreadPool | None = None) -> GeneratorWorker:
        (pool or QThreadPool.globalInstance()).start(self)
        return self

    def run(self) -> None:  # runs on the pool thread
        signals = self.signals
        try:
            signals.started.emit()
            generator = self._factory(self.cancel_token)
            try:
                while True:
                    if self.cancel_token.cancelled:
                        _close(generator)
                        signals.aborted.emit()
                        return
                    try:
                        value = next(generator)
                    except StopIteration as stop:
                        self.result = stop.value
                        if self.cancel_token.cancelled:
                            signals.aborted.emit()
                        else:
                            signals.returned.emit(stop.value)
                        return
                    signals.yielded.emit(value)
            finally:
                _close(generator)
        except JobCancelled:
            signals.aborted.emit()
        except Exception as error:  # a job's failure is reported, never a crash of the app
            message = str(error) or type(error).__name__
            signals.errored.emit(message, traceback.format_exc())
        finally:
            self._done.set()
            signals.finished.emit()


def _close(generator: Any) -> None:
    if isinstance(generator, Generator):
        with contextlib.suppress(Exception):  # closing must not mask the real outcome
            generator.close()


class JobRunner(QObject):
    """Owns the one running job of a tab: start, cancel, and wait at shutdown."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self.worker: GeneratorWorker | None = None
        self._ended = True

    @property
    def busy(self) -> bool:
        """True from start() until the job's outcome signal reached the UI thread (so handlers of
        returned/aborted/errored already see the runner idle)."""
        return self.worker is not None and not self._ended

    def start(self, factory: Callable[[CancelToken], Iterator[Any]], name: str = "job") -> GeneratorWorker:
        if self.busy:
            raise RuntimeError("a job is already running")
        worker = GeneratorWorker(factory, name)
        # Connected first, so they run before the caller's handlers. A late signal of the job before
        # (its ``finished`` can still be queued when the next one starts) must not end this one.
        for signal in (worker.returned, worker.aborted, worker.errored):
            signal.connect(lambda *_, w=worker: self._on_outcome(w))
        worker.finished.connect(lambda w=worker: self._on_finished(w))
        self.worker = worker
        self._ended = False
        self.busy_changed.emit(True)
        return worker

    def launch(self) -> None:
        if self.worker is not None:
            self.worker.start(self.pool)

    def _on_outcome(self, worker: GeneratorWorker) -> None:
        if worker is self.worker:
            self._ended = True

    def _on_finished(self, worker: GeneratorWorker) -> None:
        if worker is self.worker:
            self._ended = True
            self.busy_changed.emit(False)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Cancel and wait for the job (app close); True when nothing is left running."""
        if self.worker is None:
            return True
        self.worker.quit()
        return self.worker.wait(timeout_s)
