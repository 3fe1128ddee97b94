"""``gwm train phase1|phase2`` and ``gwm eval``: thin hand-offs to the training package's own parsers."""

from __future__ import annotations

import argparse
import importlib

TRAINERS = {"phase1": "training.phase1", "phase1b": "training.detector_tune", "phase2": "training.phase2.cli"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train the watermark models (phase1, phase2); see `gwm train phase1 --help`")
    parser.add_argument("phase", choices=sorted(TRAINERS))


def register_eval(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("eval", help="evaluate a model (SPEC section 3 figures); see `gwm eval --help`")


def run_trainer(phase: str, argv: list[str]) -> int:
    try:
        module = importlib.import_module(TRAINERS[phase])
    except ModuleNotFoundError as error:
        print(f"gwm: error: {phase} needs optional packages ({error.name}): pip install 'gwm-desktop[phase2]'")
        return 2
    return int(module.main(argv) or 0)


def run_eval(argv: list[str]) -> int:
    from training.evaluate import main

    return int(main(argv) or 0)
