"""Qt item models: the Protect file list and the Scan results table (10,000+ rows), with lazy thumbnails.

Thumbnails load on one background thread, newest request first, into a bounded LRU cache, so memory
stays flat however many files a scan holds and scrolling never waits on a decode.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QRunnable,
    QSortFilterProxyModel,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QPainter

from gwm_desktop.core import scan_verdict
from gwm_desktop.core.flat_colour import FLAT_COLOUR_NOTE
from gwm_desktop.ui import theme
from gwm_desktop.ui.qimage import pil_to_qimage

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole + 2
VERDICT_ROLE = Qt.ItemDataRole.UserRole + 3


class ThumbnailCache(QObject):
    """Bounded LRU of QImages keyed by path; ``request`` schedules a load, ``loaded`` says when it is in."""

    loaded = Signal(str)

    def __init__(self, side: int = 64, capacity: int = 400, max_pending: int = 200,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.side = side
        self.capacity = capacity
        self.max_pending = max_pending
        self._images: OrderedDict[str, QImage | None] = OrderedDict()
        self._pending: deque[str] = deque()
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self._running = False
        self._closed = False
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)

    def __len__(self) -> int:
        return len(self._images)

    def get(self, path: str) -> QImage | None:
        """The cached thumbnail, or None (and a load is scheduled). A failed load caches None too."""
        if path in self._images:
            self._images.move_to_end(path)
            return self._images[path]
        self.request(path)
        return None

    def request(self, path: str) -> None:
        with self._lock:
            if path in self._queued or self._closed:
                return
            self._pending.append(path)
            self._queued.add(path)
            while len(self._pending) > self.max_pending:  # scrolled past: forget the oldest asks
                self._queued.discard(self._pending.popleft())
            if self._running:
                return
            self._running = True
        self.pool.start(_Runnable(self._drain))

    def _drain(self) -> None:  # loader thread
        from gwm_desktop.core.image_io import load_thumbnail

        while True:
            with self._lock:
                if not self._pending or self._closed:
                    self._running = False
                    return
                path = self._pending.pop()  # newest first: what is on screen now
            try:
                image: QImage | None = _square(pil_to_qimage(load_thumbnail(path, self.side)), self.side)
            except Exception:  # noqa: BLE001 - an unreadable file just has no thumbnail
                image = None
            self._store(path, image)

    def _store(self, path: str, image: QImage | None) -> None:
        with self._lock:
            self._queued.discard(path)
            self._images[path] = image
            self._images.move_to_end(path)
            while len(self._images) > self.capacity:
                self._images.popitem(last=False)
        self.loaded.emit(path)

    def close(self, timeout_ms: int = 5000) -> None:
        with self._lock:
            self._closed = True
            self._pending.clear()
        self.pool.waitForDone(timeout_ms)


def _square(image: QImage, side: int) -> QImage:
    """Centre on a transparent side x side canvas, so list text lines up whatever the aspect ratio."""
    canvas = QImage(side, side, QImage.Format.Format_ARGB32_Premultiplied)
    canvas.fill(0)
    painter = QPainter(canvas)
    painter.drawImage((side - image.width()) // 2, (side - image.height()) // 2, image)
    painter.end()
    return canvas


class _Runnable(QRunnable):
    def __init__(self, fn: Callable[[], None]) -> None:
        super().__init__()
        self.fn = fn

    def run(self) -> None:
        self.fn()


# --- Protect: files to export ------------------------------------------------------------------

@dataclass
class ProtectEntry:
    path: Path
    status: str = "ready"           # ready | working | done | failed | cancelled
    detail: str = ""
    output: Path | None = None
    lpips: float | None = None
    psnr: float | None = None
    flat_colour: bool = False       # core.flat_colour: the watermark can show on it at any level


STATUS_TEXT = {"ready": "Ready", "working": "Protecting…", "done": "Protected", "failed": "Failed",
               "cancelled": "Not exported (cancelled)"}


class ProtectListModel(QAbstractListModel):
    def __init__(self, thumbnails: ThumbnailCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.entries: list[ProtectEntry] = []
        self._rows: dict[str, int] = {}
        self.thumbnails = thumbnails
        thumbnails.loaded.connect(self._thumbnail_loaded)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.entries)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        entry = self.entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            status = STATUS_TEXT[entry.status]
            if entry.status == "done" and entry.lpips is not None:
                status += f" · LPIPS {entry.lpips:.3f}" + (" · flat colour: may show" if entry.flat_colour else "")
            elif entry.status == "failed" and entry.detail:
                status += f": {entry.detail}"
            return f"{entry.path.name}\n{status}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnails.get(str(entry.path))
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [str(entry.path)]
            if entry.output:
                lines.append(f"→ {entry.output}")
            if entry.detail:
                lines.append(entry.detail)
            if entry.status == "done" and entry.flat_colour:
                lines.append(FLAT_COLOUR_NOTE.capitalize())
            return "\n".join(lines)
        if role == Qt.ItemDataRole.ForegroundRole and entry.status == "failed":
            return QColor(theme.FOUND[theme.current()])
        if role == PATH_ROLE:
            return str(entry.path)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{entry.path.name}, {STATUS_TEXT[entry.status]}"
        return None

    def add_paths(self, paths: list[Path]) -> int:
        new = [p for p in paths if str(p) not in self._rows]
        if not new:
            return 0
        first = len(self.entries)
        self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
        for offset, path in enumerate(new):
            self._rows[str(path)] = first + offset
            self.entries.append(ProtectEntry(path))
        self.endInsertRows()
        return len(new)

    def remove_rows(self, rows: list[int]) -> None:
        for row in sorted(set(rows), reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self.entries[row]
            self.endRemoveRows()
        self._rows = {str(e.path): i for i, e in enumerate(self.entries)}

    def clear(self) -> None:
        self.beginResetModel()
        self.entries.clear()
        self._rows.clear()
        self.endResetModel()

    def paths(self) -> list[Path]:
        return [e.path for e in self.entries]

    def entry_for(self, path: Path | str) -> ProtectEntry | None:
        row = self._rows.get(str(path))
        return self.entries[row] if row is not None else None

    def update(self, path: Path | str, **changes: Any) -> None:
        row = self._rows.get(str(path))
        if row is None:
            return
        for key, value in changes.items():
            setattr(self.entries[row], key, value)
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def set_all(self, status: str, only: tuple[str, ...] = ("ready", "working", "failed", "cancelled")) -> None:
        for entry in self.entries:
            if entry.status in only:
                entry.status, entry.detail = status, ""
        if self.entries:
            self.dataChanged.emit(self.index(0), self.index(len(self.entries) - 1))

    def _thumbnail_loaded(self, path: str) -> None:
        row = self._rows.get(path)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


# --- Scan: results table -------------------------------------------------------------------------

COLUMNS = ("", "File", "Score", "Verdict", "Folder")
THUMB, NAME, SCORE, VERDICT, FOLDER = range(5)


def verdict_text(result: Any) -> str:
    """The Verdict column: the core's words, capitalised; an error says what went wrong."""
    if result.error:
        return f"Error: {result.error}"
    return scan_verdict.verdict_text(result).capitalize()


verdict_key = scan_verdict.verdict_of


class ScanResultsModel(QAbstractTableModel):
    """Rows of ``ScanResult``; appended in batches (one insert per UI tick, not per file)."""

    def __init__(self, thumbnails: ThumbnailCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.results: list[Any] = []
        self._rows: dict[str, int] = {}
        self.thumbnails = thumbnails
        thumbnails.loaded.connect(self._thumbnail_loaded)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.results)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole and section == SCORE:
            return "Detector's probability that this profile's watermark is present (0–1)"
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole and section == VERDICT:
            return ("Found: random keys match the image as well as yours no more often than the chosen "
                    "false-positive rate (hover a row for its p)")
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        result = self.results[index.row()]
        column = index.column()
        path = Path(result.path)
        if role == Qt.ItemDataRole.DisplayRole:
            if column == NAME:
                return path.name
            if column == SCORE:
                return "—" if result.score is None else f"{result.score:.3f}"
            if column == VERDICT:
                return verdict_text(result)
            if column == FOLDER:
                return str(path.parent)
            return None
        if role == Qt.ItemDataRole.DecorationRole and column == THUMB and not result.error:
            return self.thumbnails.get(str(path))
        if role == SORT_ROLE:
            if column == SCORE:
                return -1.0 if result.score is None else float(result.score)
            if column == VERDICT:
                return {"found": 0, "clean": 1, "error": 2}[verdict_key(result)]
            if column == FOLDER:
                return str(path.parent).lower()
            return path.name.lower()
        if role == Qt.ItemDataRole.ForegroundRole and column == VERDICT:
            key = verdict_key(result)
            if key == "found":
                return QColor(theme.FOUND[theme.current()])
            if key == "clean":
                return QColor(theme.NOT_FOUND[theme.current()])
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = (str(path), verdict_text(result), scan_verdict.p_value_text(result))
            return "\n".join(line for line in lines if line)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == SCORE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == PATH_ROLE:
            return str(path)
        if role == VERDICT_ROLE:
            return verdict_key(result)
        return None

    def add_results(self, results: list[Any]) -> None:
        if not results:
            return
        first = len(self.results)
        self.beginInsertRows(QModelIndex(), first, first + len(results) - 1)
        for offset, result in enumerate(results):
            self._rows[str(result.path)] = first + offset
        self.results.extend(results)
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.results.clear()
        self._rows.clear()
        self.endResetModel()

    def counts(self) -> dict[str, int]:
        counts = {"found": 0, "clean": 0, "error": 0}
        for result in self.results:
            counts[verdict_key(result)] += 1
        return counts

    def _thumbnail_loaded(self, path: str) -> None:
        row = self._rows.get(path)
        if row is not None:
            index = self.index(row, THUMB)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class ScanFilterProxy(QSortFilterProxyModel):
    """Sort by each column's natural value; filter by text (file or folder) and by verdict."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.verdict_filter = "all"   # all | found | clean | error
        self.text_filter = ""

    def set_text_filter(self, text: str) -> None:
        self.beginFilterChange()
        self.text_filter = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_verdict_filter(self, verdict: str) -> None:
        self.beginFilterChange()
        self.verdict_filter = verdict
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:  # noqa: N802
        model = self.sourceModel()
        index = model.index(source_row, 0, source_parent)
        if self.verdict_filter != "all" and model.data(index, VERDICT_ROLE) != self.verdict_filter:
            return False
        return not self.text_filter or self.text_filter in model.data(index, PATH_ROLE).lower()
