"""Helpers shared by the CLI commands: the profile store, the engine, progress bars, errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

from gwm_desktop.core.jobs import Progress
from gwm_desktop.core.profiles import Profile, ProfileError, ProfileStore


class EngineError(RuntimeError):
    """The model could not be loaded (missing, damaged, or the device is unavailable)."""


def fail(message: str, code: int = 2) -> int:
    print(f"gwm: error: {message}", file=sys.stderr)
    return code


def resolve_profile(store: ProfileStore, name: str | None, create_default: bool = True) -> Profile:
    """The named profile, else 'default' (created on first protect; never on scan, where a fresh key
    would silently report every protected image as clean)."""
    if name:
        profile = store.get(name)
    elif create_default:
        profile = store.get_or_create_default()
    elif not store.exists("default"):
        raise ProfileError("no profile yet: scanning needs the key your images were protected with; "
                           "restore it with `gwm profile import FILE` or name one with --profile")
    else:
        profile = store.get("default")
    _ = profile.key  # raises ProfileError here, before any work, if key.bin is damaged
    return profile


def add_engine_options(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU) | cuda | mps | cpu")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("GWM_THREADS", "0")),
                        help="CPU threads for torch (0: torch's default; env GWM_THREADS)")


def make_engine(args):  # type: ignore[no-untyped-def]
    from gwm_desktop.core.engine import Engine, set_torch_threads

    set_torch_threads(args.threads)
    try:
        engine = Engine(args.model, args.device)
    except (OSError, RuntimeError, ValueError) as error:
        raise EngineError(str(error)) from error
    print(f"device: {engine.device_description}", file=sys.stderr)
    return engine


def with_progress(job: Iterator[Progress], desc: str, unit: str) -> Iterator[Progress]:
    """Drive a job with a tqdm bar on stderr (hidden when stderr is not a terminal)."""
    from tqdm import tqdm

    bar = None
    try:
        for progress in job:
            if bar is None:
                bar = tqdm(total=progress.total, desc=desc, unit=unit, file=sys.stderr,
                           disable=not sys.stderr.isatty())
            bar.update(progress.done - bar.n)
            yield progress
    finally:
        if bar is not None:
            bar.close()


__all__ = ["EngineError", "ProfileError", "add_engine_options", "fail", "make_engine", "resolve_profile", "with_progress"]
