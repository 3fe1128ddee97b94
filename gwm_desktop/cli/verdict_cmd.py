"""``gwm verdict INPUT...``: did the model behind these images learn your watermark? (SPEC section 5)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gwm_desktop.cli.common import (
    EngineError,
    add_earlier_option,
    add_engine_options,
    fail,
    make_engine,
    resolve_profile,
)
from gwm_desktop.core.jobs import with_progress
from gwm_desktop.core.profiles import ProfileError, ProfileStore

MAX_NULL_KEYS = 2_000_000  # peak memory about 1.4 GB above the model's own (measured with 64 images)


def register(sub: argparse._SubParsersAction) -> None:
    from gwm_desktop.core.verdict import DEFAULT_ALPHA, DEFAULT_NULL_KEYS

    parser = sub.add_parser("verdict", help="model-level verdict: treat all images given as one model's outputs")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (one model's images)")
    parser.add_argument("--profile", default=None, help="profile name (default: 'default')")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"false-alarm rate of the verdict (default {DEFAULT_ALPHA:g})")
    parser.add_argument("--json", action="store_true", help="print one JSON object (n, p_value, verdict, alpha, ...)")
    parser.add_argument("--report", type=Path, default=None,
                        help="write an evidence report (.html, with a .json beside it)")
    parser.add_argument("--null-keys", type=int, default=DEFAULT_NULL_KEYS,
                        help=f"random keys to compare with (default {DEFAULT_NULL_KEYS:,})")
    add_earlier_option(parser)
    add_engine_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gwm_desktop.core.verdict import check_alpha

    if not 99 <= args.null_keys <= MAX_NULL_KEYS:
        return fail(f"--null-keys must be between 99 and {MAX_NULL_KEYS:,}, got {args.null_keys:,}")
    if not 0 < args.alpha < 1:
        return fail(f"--alpha must be between 0 and 1, got {args.alpha}")
    try:
        check_alpha(args.alpha, args.null_keys)
    except ValueError as error:
        return fail(f"{error}: raise --null-keys")
    if args.report and args.report.suffix.lower() not in (".html", ".htm"):
        return fail("--report must end in .html (a .json is written beside it)")
    try:
        profile = resolve_profile(ProfileStore(), args.profile, create_default=False)
        engine = make_engine(args)
        shipped = engine.shipped(args.earlier)  # the detector that gives the evidence
    except (ProfileError, EngineError, RuntimeError, OSError) as error:
        return fail(str(error))
    from gwm_desktop.core.verdict import ImageEvidence
    from gwm_desktop.core.verdict_text import details, headline

    result = None
    job = engine.verdict_files(args.inputs, profile, args.alpha, args.null_keys, earlier=args.earlier)
    for progress in with_progress(job, "verdict", "img"):
        item = progress.payload
        if not isinstance(item, ImageEvidence):
            result = item  # the last step: the VerdictResult, or None when nothing could be read
        elif item.error:
            print(f"gwm: skipped {item.path}: {item.error}", file=sys.stderr)
    if result is None:
        return fail("no readable images in the inputs: nothing to test")
    if args.json:
        record = result.to_json()
        record["headline"] = headline(result)
        record["profile"] = profile.name
        print(json.dumps(record))
    else:
        print(headline(result))
        print(details(result))
    if args.report:  # after the verdict is out: a report that cannot be written loses nothing else
        from gwm_desktop.core.evidence_report import write_evidence_report

        try:
            json_path = write_evidence_report(result, profile, shipped.manifest, args.report)
        except (OSError, ValueError) as error:
            return fail(f"cannot write the report: {error}")
        print(f"evidence report written to {args.report} (and {json_path})", file=sys.stderr)
    return 0
