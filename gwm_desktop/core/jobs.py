"""Long work is a generator of ``Progress`` records; whoever drives it may stop between yields.

The CLI drives a job with a progress bar, the GUI with a worker thread, tests directly. Cancel is
cooperative: the driver stops iterating (or calls ``CancelToken.cancel``) and the job cleans up in
its ``finally`` blocks, so nothing is left half-written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Progress:
    """One step of a job: ``done`` of ``total`` units, a human message, and an optional payload."""

    done: int
    total: int
    message: str = ""
    payload: Any = None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class JobCancelled(Exception):
    """Raised inside a job when its token was cancelled."""


class CancelToken:
    """Thread-safe flag a driver sets and a job checks between units of work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise JobCancelled()


def eta_seconds(done: int, total: int, started_at: float, now: float | None = None) -> float | None:
    """Remaining seconds by the average pace so far; None until one unit is done."""
    if done <= 0 or total <= done:
        return None if done <= 0 else 0.0
    elapsed = (now if now is not None else time.monotonic()) - started_at
    return elapsed / done * (total - done)


def with_progress(job: Iterator[Progress], desc: str, unit: str = "it", *,
                  describe: Callable[[Progress], str] | None = None,
                  postfix: Callable[[Progress], dict[str, str] | None] | None = None,
                  hide_when_piped: bool = True) -> Iterator[Progress]:
    """Yield ``job``'s records while a tqdm bar on stderr follows them: every command line's one loop.

    A new bar starts whenever the job's total changes (a job in stages), at the first record's
    ``done - 1`` (a resumed job's rate counts only new work). ``describe`` and ``postfix`` read a
    record into the bar's label and its trailing figures. ``hide_when_piped``: no bar unless stderr
    is a terminal (the commands' output stays clean in a pipe); training runs keep theirs in logs.
    """
    import sys

    from tqdm import tqdm

    bar = None
    try:
        for progress in job:
            if bar is None or bar.total != progress.total:
                if bar is not None:
                    bar.close()
                bar = tqdm(total=progress.total, initial=max(progress.done - 1, 0), unit=unit, file=sys.stderr,
                           desc=describe(progress) if describe else desc,
                           disable=hide_when_piped and not sys.stderr.isatty())
            elif describe:
                bar.set_description(describe(progress), refresh=False)
            figures = postfix(progress) if postfix else None
            if figures:
                bar.set_postfix(figures, refresh=False)
            bar.update(progress.done - bar.n)
            yield progress
    finally:
        if bar is not None:
            bar.close()
