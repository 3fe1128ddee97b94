"""Light and dark palettes (Fusion style), chosen explicitly or following the system."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = QColor(64, 120, 200)
FOUND = {"light": QColor(176, 32, 32), "dark": QColor(255, 120, 110)}
NOT_FOUND = {"light": QColor(30, 120, 60), "dark": QColor(120, 210, 140)}


def _palette(dark: bool) -> QPalette:
    p = QPalette()
    if dark:
        window, base, alt, text = QColor(37, 38, 41), QColor(27, 28, 30), QColor(45, 46, 50), QColor(228, 228, 228)
        button, disabled = QColor(52, 54, 58), QColor(125, 125, 125)
    else:
        window, base, alt, text = QColor(244, 244, 246), QColor(255, 255, 255), QColor(246, 247, 249), QColor(25, 25, 28)
        button, disabled = QColor(236, 236, 240), QColor(150, 150, 150)
    for role, colour in ((QPalette.Window, window), (QPalette.Base, base), (QPalette.AlternateBase, alt),
                         (QPalette.WindowText, text), (QPalette.Text, text), (QPalette.ButtonText, text),
                         (QPalette.Button, button), (QPalette.ToolTipBase, base), (QPalette.ToolTipText, text),
                         (QPalette.PlaceholderText, disabled), (QPalette.Highlight, ACCENT),
                         (QPalette.HighlightedText, QColor(255, 255, 255)), (QPalette.Link, ACCENT.lighter(130) if dark else ACCENT)):
        p.setColor(role, colour)
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, disabled)
    p.setColor(QPalette.Mid, QColor(80, 80, 86) if dark else QColor(190, 190, 196))
    p.setColor(QPalette.Dark, QColor(20, 20, 22) if dark else QColor(160, 160, 166))
    p.setColor(QPalette.Light, QColor(70, 72, 76) if dark else QColor(255, 255, 255))
    return p


def system_prefers_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints is not None and hints.colorScheme() == Qt.ColorScheme.Dark


def resolve(theme: str) -> str:
    if theme in ("light", "dark"):
        return theme
    return "dark" if system_prefers_dark() else "light"


def apply_theme(app: QApplication, theme: str) -> str:
    """Apply 'light' | 'dark' | 'system'; returns the one applied."""
    name = resolve(theme)
    app.setStyle("Fusion")
    app.setPalette(_palette(name == "dark"))
    app.setProperty("gwm_theme", name)
    return name


def current(app: QApplication | None = None) -> str:
    app = app or QApplication.instance()
    value = app.property("gwm_theme") if app else None
    return value if value in ("light", "dark") else "light"
