"""``gwm``: the headless command line (SPEC section 5). Same core calls as the GUI."""

from __future__ import annotations

import argparse
import signal
import sys
import warnings

from gwm_desktop.cli import profile_cmd, protect_cmd, scan_cmd, train_cmd, verdict_cmd
from gwm_desktop.cli.common import fail
from gwm_desktop.core.atomic import Terminated, install_sigterm_cleanup, restore_sigterm


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gwm", description="GenWatermark: protect artwork with an invisible learned watermark, "
        "and find it again in suspect images. Data dir: $GWM_HOME or the platform's user data dir.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    profile_cmd.register(sub)
    protect_cmd.register(sub)
    scan_cmd.register(sub)
    verdict_cmd.register(sub)
    train_cmd.register(sub)
    train_cmd.register_eval(sub)
    return parser


def _tolerant_streams() -> None:
    """A file name that is not valid in the terminal's encoding prints escaped instead of stopping the batch."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _tolerant_streams()
    # Pillow warns (two lines each) about damaged files it can still read; the file's own one line
    # says what matters, ok or FAILED.
    warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
    previous = install_sigterm_cleanup()
    try:
        # Training and evaluation have their own full parsers (and --help): hand the rest over untouched.
        if argv[:1] == ["train"] and len(argv) >= 2 and argv[1] in train_cmd.TRAINERS:
            return train_cmd.run_trainer(argv[1], argv[2:])
        if argv[:1] == ["eval"]:
            return train_cmd.run_eval(argv[1:])
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except (KeyboardInterrupt, Terminated) as stop:
        print("\ninterrupted: finished files are complete, nothing partial was left", file=sys.stderr)
        return 130 if isinstance(stop, KeyboardInterrupt) else 128 + signal.SIGTERM
    except OSError as error:  # the disk or the system refused (full, read-only, gone): say so in one line
        return fail(str(error) if error.filename else f"{error.strerror or error}")
    finally:
        restore_sigterm(previous)


if __name__ == "__main__":
    raise SystemExit(main())
