"""Profile selector with create, rename, delete (confirmed, with a backup offer), export and import."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QToolButton,
    QWidget,
)

from gwm_desktop.ui.context import AppContext


def _profile_error() -> type[Exception]:
    from gwm_desktop.core.profiles import ProfileError

    return ProfileError


class ProfileBar(QWidget):
    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.combo = QComboBox()
        self.combo.setAccessibleName("Artist profile")
        self.combo.setToolTip("Each profile has its own secret key, so its watermark is unique to you")
        self.combo.setMinimumWidth(180)
        self.combo.currentTextChanged.connect(self._selected)
        manage = QToolButton()
        manage.setText("Manage…")
        manage.setAccessibleName("Manage profiles")
        manage.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(manage)
        menu.addAction("New profile…", self.create)
        menu.addAction("Rename…", self.rename)
        menu.addAction("Delete…", self.delete)
        menu.addSeparator()
        menu.addAction("Back up key (export)…", self.export)
        menu.addAction("Import key…", self.import_)
        manage.setMenu(menu)
        self.manage_button = manage
        label = QLabel("Profile:")
        label.setBuddy(self.combo)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(label)
        layout.addWidget(self.combo)
        layout.addWidget(manage)
        context.signals.store_ready.connect(lambda _s: self.reload(context.profile_name))
        if context.store is not None:
            self.reload(context.profile().name)
        else:
            self.combo.addItem("Loading profiles…")
            self.setEnabled(False)

    def reload(self, select: str | None = None) -> None:
        self.setEnabled(True)
        names = [p.name for p in self.context.store.list()] or [self.context.store.get_or_create_default().name]
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems(names)
        self.combo.blockSignals(False)
        target = select if select in names else names[0]
        self.combo.setCurrentText(target)
        self._selected(target)

    def _selected(self, name: str) -> None:
        if self.context.store is None:
            return
        if name and name != self.context.profile_name or (name and not self.context.store.exists(self.context.profile_name)):
            self.context.set_profile(name)

    def _error(self, error: Exception) -> None:
        QMessageBox.warning(self, "Profile", str(error))

    def create(self, name: str | None = None) -> bool:
        if name is None:
            name, ok = QInputDialog.getText(self, "New profile", "Name of the new profile (e.g. your artist name):")
            if not ok:
                return False
        try:
            profile = self.context.store.create(name)
        except _profile_error() as error:
            self._error(error)
            return False
        self.reload(profile.name)
        self.context.say(f"Created profile {profile.name}. Back up its key (Manage → Back up key).")
        return True

    def rename(self, new: str | None = None) -> bool:
        old = self.combo.currentText()
        if new is None:
            new, ok = QInputDialog.getText(self, "Rename profile", f"New name for {old}:", text=old)
            if not ok or new == old:
                return False
        try:
            profile = self.context.store.rename(old, new)
        except _profile_error() as error:
            self._error(error)
            return False
        self.reload(profile.name)
        return True

    def delete(self, confirm: bool = True) -> bool:
        name = self.combo.currentText()
        if confirm:
            box = QMessageBox(QMessageBox.Icon.Warning, "Delete profile",
                              f"Delete the profile “{name}” and its secret key?\n\nImages you protected with it can "
                              "only be recognised again with this key. Back it up first unless you are sure.", parent=self)
            backup = box.addButton("Back up, then delete", QMessageBox.ButtonRole.AcceptRole)
            delete = box.addButton("Delete without backup", QMessageBox.ButtonRole.DestructiveRole)
            box.addButton(QMessageBox.StandardButton.Cancel)
            box.exec()
            if box.clickedButton() is backup:
                if not self.export():
                    return False
            elif box.clickedButton() is not delete:
                return False
        try:
            self.context.store.delete(name)
        except _profile_error() as error:
            self._error(error)
            return False
        self.reload()
        return True

    def _passphrase(self, title: str, confirm: bool) -> str | None:
        """Ask for the backup passphrase (hidden typing); None if the user cancels."""
        label = "Passphrase for this backup (at least 8 characters; without it the key cannot be restored):" \
            if confirm else "Passphrase of this backup:"
        first, ok = QInputDialog.getText(self, title, label, QLineEdit.EchoMode.Password)
        if not ok:
            return None
        if confirm:
            again, ok = QInputDialog.getText(self, title, "Type the passphrase again:", QLineEdit.EchoMode.Password)
            if not ok:
                return None
            if again != first:
                self._error(ValueError("The two passphrases differ; nothing was saved."))
                return None
        return first

    def export(self, path: Path | None = None, passphrase: str | None = None) -> bool:
        name = self.combo.currentText()
        overwrite = False
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Back up profile key", str(Path.home() / f"{name}.gwmkey"),
                                                    "GenWatermark key (*.gwmkey *.json)")
            if not chosen:
                return False
            path, overwrite = Path(chosen), True  # the save dialog has asked before replacing a file
        if passphrase is None:
            passphrase = self._passphrase("Back up profile key", confirm=True)
            if passphrase is None:
                return False
        try:
            self.context.store.export(name, path, passphrase, overwrite=overwrite)
        except (_profile_error(), OSError) as error:
            self._error(error)
            return False
        self.context.say(f"Key of {name} saved to {path}, encrypted. Keep the passphrase safe: it cannot be recovered.")
        return True

    def import_(self, path: Path | None = None, passphrase: str | None = None) -> bool:
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self, "Import profile key", str(Path.home()),
                                                    "GenWatermark key (*.gwmkey *.json);;All files (*)")
            if not chosen:
                return False
            path = Path(chosen)
        try:
            if passphrase is None and self.context.store.backup_is_encrypted(path):
                passphrase = self._passphrase("Import profile key", confirm=False)
                if passphrase is None:
                    return False
            profile, encrypted = self.context.store.import_(path, passphrase=passphrase)
        except _profile_error() as error:
            self._error(error)
            return False
        self.reload(profile.name)
        if not encrypted:
            self.context.say(f"Imported {profile.name} from an old, unencrypted backup: anyone with that file has "
                             "the key. Back it up again (Manage → Back up key) and delete the old file.", 20000)
        return True
