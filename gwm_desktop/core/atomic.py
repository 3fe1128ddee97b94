"""The one way this project writes a file: readers see the old file or the whole new one, never a part.

Content goes to a hidden temp file in the target's folder, is fsynced, and then either replaces the
target (``write_atomic``) or takes the first free name of a series without ever clobbering one
(``write_new``: ``os.link`` fails if the name exists, so two processes racing for one name cannot
overwrite each other). On any exception the temp file is removed; ``install_sigterm_cleanup`` makes
SIGTERM do the same, as Ctrl-C already does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# Bytes to write, or a callback that writes the content to the temp path it is given (for libraries
# that only save to a path: safetensors, torch.save, Pillow).
Content = bytes | Callable[[Path], None]

_live_temps: set[Path] = set()
_live_lock = threading.Lock()


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so pending writes unwind and clean up like on Ctrl-C."""


def _temp_name(path: Path) -> Path:
    """A hidden name beside ``path`` that fits NAME_MAX (255 bytes) even when the name itself nearly does."""
    prefix = os.fsencode(path.name)[:200].decode("utf-8", "ignore")  # bytes, not characters: 'é' is two
    return path.with_name(f".{prefix}.{secrets.token_hex(4)}.tmp")


def _fsync_folder(folder: Path) -> None:
    """Make a rename or link durable; best effort (not every platform or filesystem allows it)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, content: Content, private: bool) -> Path:
    """The content in a new temp file beside ``path``, fsynced, and registered for signal cleanup."""
    temp = _temp_name(path)
    with _live_lock:
        _live_temps.add(temp)
    try:
        mode = stat.S_IRUSR | stat.S_IWUSR if private else 0o666  # 0o666: the umask decides, as for any file
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        with os.fdopen(fd, "wb") as handle:
            if isinstance(content, bytes):
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        if callable(content):
            content(temp)  # may write the file anew: permissions and durability are settled after it
            if private:
                os.chmod(temp, stat.S_IRUSR | stat.S_IWUSR)
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
    except BaseException:
        _discard(temp)
        raise
    return temp


def _discard(temp: Path) -> None:
    with _live_lock:
        _live_temps.discard(temp)
    with contextlib.suppress(OSError):
        temp.unlink()


def write_atomic(path: str | Path, content: Content, *, private: bool = False) -> Path:
    """Write ``content`` to ``path``, replacing any file there in one step. ``private``: owner-only (0600)."""
    path = Path(path)
    temp = _write_temp(path, content, private)
    try:
        os.replace(temp, path)
    except BaseException:
        _discard(temp)
        raise
    with _live_lock:
        _live_temps.discard(temp)
    _fsync_folder(path.parent)
    return path


def _link_no_clobber(temp: Path, target: Path) -> None:
    """Give ``temp`` the name ``target``; FileExistsError if the name is taken, whoever took it.

    ``os.link`` is atomic and fails on an existing name. Where hard links are not allowed (some
    FAT/exFAT or network disks), the name is first reserved with an O_EXCL create, then our own
    placeholder is replaced.
    """
    try:
        os.link(temp, target)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            os.replace(temp, target)
        except BaseException:
            os.unlink(target)
            raise
        return
    os.unlink(temp)


def write_new(candidates: Iterable[str | Path], content: Content, *, private: bool = False) -> Path:
    """Write ``content`` under the first name of ``candidates`` that nobody holds, and return it.

    Never overwrites: a name that exists, or that another process takes while this one writes, is
    skipped for the next. FileExistsError when every candidate is taken.
    """
    temp: Path | None = None
    tried: list[Path] = []
    try:
        for candidate in candidates:
            candidate = Path(candidate)
            tried.append(candidate)
            if os.path.lexists(candidate):  # cheap skip; the link below is what makes it safe
                continue
            if temp is None:
                temp = _write_temp(candidate, content, private)
            try:
                _link_no_clobber(temp, candidate)
            except FileExistsError:
                continue
            with _live_lock:
                _live_temps.discard(temp)
            temp = None
            _fsync_folder(candidate.parent)
            return candidate
    finally:
        if temp is not None:
            _discard(temp)
    names = ", ".join(str(p) for p in tried[:3]) + (" ..." if len(tried) > 3 else "")
    raise FileExistsError(errno.EEXIST, f"already exists: {names}")


def remove_live_temps() -> None:
    """Delete every temp file a write in progress holds (any thread); for signal handlers and exit."""
    with _live_lock:
        temps = list(_live_temps)
        _live_temps.clear()
    for temp in temps:
        with contextlib.suppress(OSError):
            temp.unlink()


def install_sigterm_cleanup(then: Callable[[], None] | None = None) -> Any:
    """SIGTERM unwinds like Ctrl-C: temp files of writes in progress are removed, then ``Terminated``
    is raised in the main thread, or ``then()`` is called instead (a GUI quits its event loop).

    Call from a program's entry point (the CLI, the GUI); library code never installs handlers.
    Returns the previous handler, for ``restore_sigterm`` (None where signals cannot be set).
    """
    if not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
        return None

    def on_sigterm(signum: int, frame: Any) -> None:
        remove_live_temps()
        if then is None:
            raise Terminated(signum)
        then()

    return signal.signal(signal.SIGTERM, on_sigterm)


def restore_sigterm(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
