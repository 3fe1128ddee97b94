"""Helpers shared by the CLI commands: the profile store, the engine, errors."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from gwm_desktop.core.profiles import Profile, ProfileError, ProfileStore

if TYPE_CHECKING:  # the engine imports torch: only when a command needs it
    from gwm_desktop.core.engine import Engine


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


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU) | cuda | mps | cpu")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--threads", type=thread_count, default=os.environ.get("GWM_THREADS", "0"),
                        help="CPU threads for torch (0: torch's default; env GWM_THREADS)")


def add_earlier_option(parser: argparse.ArgumentParser) -> None:
    from gwm_desktop.resources import EARLIER_MODELS

    choices = ", ".join(f"{name}: {model.description}" for name, model in EARLIER_MODELS.items())
    parser.add_argument("--earlier", choices=sorted(EARLIER_MODELS), default=None,
                        help=f"look for the watermark an earlier version made, with its shipped model ({choices})")


def thread_count(text: str) -> int:
    """--threads / GWM_THREADS: a whole number >= 0 (argparse turns the error into one usage line)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads (--threads or GWM_THREADS), got {text!r}")
    return value


def make_engine(args: argparse.Namespace) -> Engine:
    from gwm_desktop.core.engine import Engine, set_torch_threads

    set_torch_threads(args.threads)
    try:
        engine = Engine(args.model, args.device)
    except (OSError, RuntimeError, ValueError) as error:
        raise EngineError(str(error)) from error
    print(f"device: {engine.device_description}", file=sys.stderr)
    return engine


__all__ = ["EngineError", "ProfileError", "add_earlier_option", "add_engine_options", "fail", "make_engine",
           "resolve_profile"]
