"""``gwm profile create|list|export|import|rename|delete``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from gwm_desktop.cli.common import fail
from gwm_desktop.core.profiles import ProfileError, ProfileStore

PASSPHRASE_ENV = "GWM_PASSPHRASE"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("profile", help="manage artist profiles (each has its own secret key)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a profile with a new secret key")
    create.add_argument("name")
    actions.add_parser("list", help="list profiles")
    passphrase_help = (f"read the backup's passphrase from the first line of this file (else ${PASSPHRASE_ENV}, "
                       "else it is asked for)")
    export = actions.add_parser("export", help="back up a profile's key to a file, encrypted with a passphrase")
    export.add_argument("name")
    export.add_argument("file", type=Path)
    export.add_argument("--passphrase-file", type=Path, default=None, help=passphrase_help)
    imp = actions.add_parser("import", help="restore a profile from a backup file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--name", default=None, help="import under another name")
    imp.add_argument("--passphrase-file", type=Path, default=None, help=passphrase_help)
    rename = actions.add_parser("rename", help="rename a profile")
    rename.add_argument("old")
    rename.add_argument("new")
    rollback = actions.add_parser("rollback-detector",
                                  help="put back the detector a Phase 2 install replaced (the replaced one is kept)")
    rollback.add_argument("name")
    delete = actions.add_parser("delete", help="delete a profile and its key (irreversible without a backup)")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(handler=run)


def passphrase(args: argparse.Namespace, confirm: bool) -> str:
    """The backup passphrase: --passphrase-file, else $GWM_PASSPHRASE, else asked on the terminal."""
    if args.passphrase_file is not None:
        try:
            with open(args.passphrase_file, encoding="utf-8") as handle:
                return handle.readline(4096).rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as error:
            raise ProfileError(f"cannot read the passphrase file {args.passphrase_file}: {error}") from None
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if not sys.stdin.isatty():
        raise ProfileError(f"a passphrase is needed: give --passphrase-file FILE or set {PASSPHRASE_ENV}")
    first = getpass.getpass("Backup passphrase: ")
    if confirm and getpass.getpass("Same passphrase again: ") != first:
        raise ProfileError("the two passphrases differ; nothing was written")
    return first


def run(args: argparse.Namespace) -> int:
    store = ProfileStore()
    try:
        if args.action == "create":
            profile = store.create(args.name)
            print(f"created profile {profile.name!r} in {profile.folder}")
            print("back up its key with `gwm profile export` and keep the passphrase safe", file=sys.stderr)
        elif args.action == "list":
            profiles = store.list()
            if not profiles:
                print("no profiles yet (`gwm profile create NAME`, or `gwm protect` creates 'default')")
            for profile in profiles:
                custom = " (custom detector)" if profile.detector_folder else ""
                print(f"{profile.name}{custom}")
        elif args.action == "export":
            store.get(args.name)  # fail before asking for a passphrase (export itself never overwrites)
            if os.path.lexists(args.file):
                return fail(f"{args.file} already exists; choose another file name")
            store.export(args.name, args.file, passphrase(args, confirm=True))
            print(f"exported {args.name!r} to {args.file} (encrypted; it cannot be restored without the passphrase)")
        elif args.action == "import":
            secret = passphrase(args, confirm=False) if store.backup_is_encrypted(args.file) else None
            profile, encrypted = store.import_(args.file, args.name, secret)
            if not encrypted:
                print(f"warning: {args.file} is an old, unencrypted backup: anyone with the file has the key. "
                      "Export the profile again (with a passphrase) and delete this file.", file=sys.stderr)
            print(f"imported profile {profile.name!r}")
        elif args.action == "rename":
            store.rename(args.old, args.new)
            print(f"renamed {args.old!r} to {args.new!r}")
        elif args.action == "rollback-detector":
            profile = store.get(args.name)
            if not profile.can_roll_back_detector():
                return fail(f"profile {args.name!r} has no previous detector to put back")
            profile.roll_back_detector()
            print(f"profile {args.name!r} scans with its previous detector again (run the command again to undo)")
        elif args.action == "delete":
            if not args.yes:
                if not sys.stdin.isatty():
                    return fail("refusing to delete without --yes when not interactive")
                answer = input(f"Delete profile {args.name!r} and its key? Export it first if unsure. [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    print("kept")
                    return 1
            store.delete(args.name)
            print(f"deleted {args.name!r}")
    except ProfileError as error:
        return fail(str(error))
    return 0
