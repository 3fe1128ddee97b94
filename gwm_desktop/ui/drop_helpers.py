"""Accept files and folders dropped from the file manager onto any widget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QObject
from PySide6.QtWidgets import QWidget


def local_paths(mime: QMimeData) -> list[Path]:
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []


class DropFilter(QObject):
    """Event filter: install on a widget (or its viewport) to receive dropped paths via ``on_drop``."""

    def __init__(self, on_drop: Callable[[list[Path]], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.on_drop = on_drop

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            if local_paths(event.mimeData()):  # a QDragEnterEvent or QDragMoveEvent
                event.acceptProposedAction()
                return True
        elif kind == QEvent.Type.Drop:
            paths = local_paths(event.mimeData())  # a QDropEvent
            if paths:
                event.acceptProposedAction()
                self.on_drop(paths)
                return True
        return False


def install_drop(widget: QWidget, on_drop: Callable[[list[Path]], None]) -> DropFilter:
    target = widget.viewport() if hasattr(widget, "viewport") else widget
    target.setAcceptDrops(True)
    widget.setAcceptDrops(True)
    drop_filter = DropFilter(on_drop, widget)
    target.installEventFilter(drop_filter)
    widget._gwm_drop_filters = [*getattr(widget, "_gwm_drop_filters", []), drop_filter]  # keep the Python object alive
    return drop_filter
