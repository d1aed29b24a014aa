"""``cv-recover``: list the CVs waiting in backup files and import them into the archive.

Usage (as wired into the harness CLI)::

    harness cv-recover --adapter cv-archive-sqlite --location DIR --list
    harness cv-recover --adapter cv-archive-sqlite --location DIR --all [--dry-run]
    harness cv-recover --adapter cv-archive-postgres --location DSN --only q-0001 [--dry-run]

Exit status: 0 done (nothing left behind), 1 the store failed or some backups could not be
imported (unreadable files, conflicting content), 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from harness.errors import ConfigError, ContractError
from harness.families.cv_archive.contract import FAMILY, CvArchive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", required=True, help="a cv-archive adapter name")
    parser.add_argument("--location", required=True,
                        help="the archive's location: a directory (file stores) or a DSN")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list the backups, change nothing")
    action.add_argument("--all", action="store_true", help="import every backup")
    action.add_argument("--only", action="append", metavar="REQUEST_ID", default=None,
                        help="import the backup of this request id (repeatable)")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --all / --only: report what would be imported, change nothing")


def _fail(message: str, err: TextIO) -> int:
    print(f"cv-recover: error: {message}", file=err)
    return 2


def _open(args: argparse.Namespace) -> CvArchive:
    from harness.registry import resolve

    cls = resolve(args.adapter)
    if getattr(cls, "family", "") != FAMILY:
        raise ConfigError(f"adapter {args.adapter!r} is not a {FAMILY} adapter")
    if cls.location_kind == "file" and not os.path.isdir(args.location):
        raise ConfigError(f"location {args.location!r} is not an existing directory")
    if cls.location_kind == "server":
        cls.validate_root(args.location)
    return cls(args.location)


def main(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if not (args.list or args.all or args.only):
        return _fail("choose one of --list, --all, --only REQUEST_ID", err)
    if args.dry_run and args.list:
        return _fail("--dry-run applies to --all / --only", err)
    try:
        adapter = _open(args)
    except ConfigError as exc:
        return _fail(str(exc).splitlines()[0], err)
    except ContractError as exc:
        print(f"cv-recover: the store cannot be opened: {exc}", file=err)
        return 1
    try:
        if args.list:
            backups = adapter.list_backups()
            unreadable = adapter.snapshot().unreadable
            for b in backups:
                print(f"{b.request_id}\t{b.user_id}\t{b.filename}\t{b.sha256[:12]}\t{b.file}",
                      file=out)
            for u in unreadable:
                print(f"UNREADABLE\t{u['file']}\t{u['error']}", file=out)
            print(f"{len(backups)} backup(s) waiting, {len(unreadable)} unreadable file(s)",
                  file=out)
            return 1 if unreadable else 0
        report = adapter.recover(dry_run=args.dry_run, only=args.only)
    except ContractError as exc:
        print(f"cv-recover: the store failed: {exc}", file=err)
        return 1
    finally:
        adapter.close()
    verb = "would import" if report.dry_run else "imported"
    for rid in report.imported:
        print(f"{verb}\t{rid}", file=out)
    for rid in report.already_stored:
        print(f"already stored\t{rid}", file=out)
    for rid in report.conflicts:
        print(f"CONFLICT\t{rid}\tstored with different content; backup kept", file=out)
    for name in report.unreadable:
        print(f"UNREADABLE\t{name}\tbackup kept", file=out)
    print(f"{len(report.imported)} {verb}, {len(report.already_stored)} already stored, "
          f"{len(report.conflicts)} conflict(s), {len(report.unreadable)} unreadable", file=out)
    return 1 if report.conflicts or report.unreadable else 0
