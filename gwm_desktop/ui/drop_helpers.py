"""Accept files and folders dropped from the file manager onto any widget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QDragEnterEvent, QDropEvent


def local_paths(mime) -> list[Path]:  # noqa: ANN001
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []


class DropFilter(QObject):
    """Event filter: install on a widget (or its viewport) to receive dropped paths via ``on_drop``."""

    def __init__(self, on_drop: Callable[[list[Path]], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.on_drop = on_drop

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            drag: QDragEnterEvent = event  # type: ignore[assignment]
            if local_paths(drag.mimeData()):
                drag.acceptProposedAction()
                return True
        elif kind == QEvent.Type.Drop:
            drop: QDropEvent = event  # type: ignore[assignment]
            paths = local_paths(drop.mimeData())
            if paths:
                drop.acceptProposedAction()
                self.on_drop(paths)
                return True
        return False


def install_drop(widget, on_drop: Callable[[list[Path]], None]) -> DropFilter:  # noqa: ANN001
    target = widget.viewport() if hasattr(widget, "viewport") else widget
    target.setAcceptDrops(True)
    widget.setAcceptDrops(True)
    drop_filter = DropFilter(on_drop, widget)
    target.installEventFilter(drop_filter)
    widget._gwm_drop_filters = [*getattr(widget, "_gwm_drop_filters", []), drop_filter]  # keep the Python object alive
    return drop_filter
