"""The protection log: one JSON line per exported image, appended to ``protection-log.jsonl`` in the
profile folder, so an artist can show when they protected which file (dated by this machine's clock).

Each record holds the date, the level and budget p, the output's file name and its SHA-256 (the
output itself can later be hashed again to match). Append-only: the file is opened with O_APPEND and
each record is written with one ``os.write``, so two processes exporting at once never interleave
half lines. A torn record (a crash mid-write) is skipped; a record appended after it is still read.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from gwm_desktop.core.levels import LEVELS

LOG_NAME = "protection-log.jsonl"


@dataclass
class LogSummary:
    count: int
    first: str | None  # ISO dates (UTC) of the first and last export
    last: str | None

    def sentence(self) -> str:
        if not self.count:
            return "No exports are recorded in this profile's protection log."
        plural = "image" if self.count == 1 else "images"
        if self.first == self.last:
            return f"You protected {self.count} {plural} on {self.first}."
        return f"You protected {self.count} {plural} from {self.first} to {self.last}."


def log_path(profile_folder: Path) -> Path:
    return Path(profile_folder) / LOG_NAME


def level_name(p: float) -> str | None:
    return next((level.name for level in LEVELS if abs(level.p - p) < 1e-9), None)


def record_export(profile_folder: Path, p: float, output: Path, data: bytes, when: float | None = None) -> dict:
    """Append one export's record (``data``: the bytes written to ``output``); returns the record."""
    stamp = time.time() if when is None else when
    record = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)), "level": level_name(p), "p": p,
              "output": Path(output).name, "sha256": hashlib.sha256(data).hexdigest()}
    # ASCII JSON: a file name that is not valid UTF-8 (surrogate escapes) is kept exactly, as \udcXX escapes.
    line = (json.dumps(record) + "\n").encode("ascii")
    fd = os.open(log_path(profile_folder), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"protection log: only {written} of {len(line)} bytes written")
    finally:
        os.close(fd)
    return record


def read_log(profile_folder: Path) -> list[dict]:
    """Every readable record, oldest first; an absent log is an empty one."""
    path = log_path(profile_folder)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            # A record appended after a torn one shares its line: keep the whole one at the end.
            start = line.rfind('{"date"')
            try:
                record = json.loads(line[start:]) if start > 0 else None
            except json.JSONDecodeError:
                continue
        if isinstance(record, dict) and "date" in record and "sha256" in record:
            records.append(record)
    return records


def summarize(profile_folder: Path) -> LogSummary:
    dates = sorted(str(record["date"]) for record in read_log(profile_folder))
    if not dates:
        return LogSummary(0, None, None)
    return LogSummary(len(dates), dates[0][:10], dates[-1][:10])
