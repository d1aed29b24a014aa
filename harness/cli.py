"""The ``harness`` command line: list, run, gate, report, replay, load, cv-recover (DESIGN 7).

Exit status: 0 no violated claimed guarantee, 1 violations, 2 usage or configuration errors
(printed as one clear line).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from harness.errors import ConfigError
from harness.redact import redact

EXIT_OK, EXIT_VIOLATIONS, EXIT_USAGE = 0, 1, 2


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adapter", action="append", default=[], metavar="NAME|pkg.module:Class",
                   help="adapter to test (repeatable; default: every embedded adapter, plus "
                        "postgres when --dsn is given)")
    p.add_argument("--family", action="append", default=[],
                   metavar="resumes|jobs|cv-archive|accounts|all",
                   help="family of contracts to test (repeatable; default all)")
    p.add_argument("--scenario", action="append", default=[],
                   metavar="stateful|crash|races|load|all", help="scenario (repeatable; default all)")
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="time budget per scenario and adapter")
    p.add_argument("--dsn", default=None, metavar="URL", help="PostgreSQL DSN for server adapters")
    p.add_argument("--allow-any-database", action="store_true",
                   help="allow a DSN whose database name does not contain 'test'")
    p.add_argument("--out", default=None, metavar="DIR", help="output directory "
                   "(default reports/<run-id>/)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="scenario option, e.g. schedule=0101 or processes=2 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="do not show progress")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    lst = sub.add_parser("list", help="families, adapters (guarantees, fault points), scenarios, "
                                      "invariants")
    lst.add_argument("--family", action="append", default=[], metavar="NAME",
                     help="only this family (repeatable)")

    run = sub.add_parser("run", help="run scenarios against adapters, write results and report")
    _add_run_options(run)

    gate = sub.add_parser("gate", help="run with CI defaults and decide pass/fail")
    _add_run_options(gate)
    gate.add_argument("--baseline", default=None, metavar="results.json",
                      help="fail only on violations this baseline lacks")
    gate.add_argument("--expect-violations", action="append", default=[], metavar="ADAPTER",
                      help="fail if this known-bad adapter no longer shows its violations")
    gate.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML")

    report = sub.add_parser("report", help="re-render report.html from results.json")
    report.add_argument("dir")

    replay = sub.add_parser("replay", help="re-run one violation's reproduction")
    replay.add_argument("dir")
    replay.add_argument("violation_id")

    recover = sub.add_parser("cv-recover", help="list or import the CVs a cv-archive store left in "
                                                 "backup files")
    _delegate("harness.families.cv_archive.recover_cli", "add_arguments")(recover)

    load = sub.add_parser("load", help="Locust load against one adapter (headless by default)")
    load.add_argument("--adapter", default="sqlite")
    load.add_argument("--dsn", default=None)
    load.add_argument("--allow-any-database", action="store_true")
    load.add_argument("--users", type=int, default=None)
    load.add_argument("--processes", type=int, default=None)
    load.add_argument("--budget", type=float, default=None, metavar="SECONDS")
    load.add_argument("--seed", type=int, default=0)
    load.add_argument("--web", action="store_true", help="open Locust's UI on 127.0.0.1")
    load.add_argument("--out", default=None, metavar="DIR")
    return parser


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def dsn_with_flags(dsn: str | None, allow_any: bool) -> str | None:
    if dsn is None or not allow_any:
        return dsn
    return dsn + ("&" if "?" in dsn else "?") + "harness_allow_any_database=1"


def _print_adapter(name: str, cls: type) -> None:
    claims = ", ".join(sorted(cls.guarantees)) or "none"
    print(f"    {name:<20} guarantees: {claims}")
    for op, points in cls.fault_points.items():
        print(f"        {op}: {', '.join(points)}")
    auto = ", ".join(getattr(cls, "boundary_points", ())) or "none declared"
    print(f"        (+ automatic storage-boundary points per operation: {auto})")


def cmd_list(args: argparse.Namespace) -> int:
    from harness import families
    from harness.invariants import NO_DEADLOCK
    from harness.registry import available, resolve
    from harness.scenario import BUILTIN_SCENARIOS

    wanted = families.expand(args.family)
    listed: set[str] = set()
    for fam in wanted:
        print(f"family {fam.name}: {fam.description}")
        print(f"  scenarios: {', '.join(fam.scenarios)}")
        print("  adapters:")
        for name in fam.adapters:
            listed.add(name)
            try:
                _print_adapter(name, resolve(name))
            except ConfigError as exc:
                print(f"    {name:<20} (unavailable: {exc})")
        print("  invariants:")
        for inv in fam.invariant_list():
            print(f"    {inv.id:<26} {inv.holds_when} [{', '.join(inv.audit_refs)}]")
        print(f"    {NO_DEADLOCK:<26} racing operations never all block inside the store (races)")
    plugged = [n for n in available() if n not in listed]
    if plugged and not args.family:
        print("plugged-in adapters:")
        for name in plugged:
            try:
                cls = resolve(name)
            except ConfigError as exc:
                print(f"    {name:<20} (unavailable: {exc})")
                continue
            print(f"    (family {families.family_of(cls).name})")
            _print_adapter(name, cls)
    print("scenarios:")
    for name, spec in BUILTIN_SCENARIOS.items():
        print(f"  {name:<16} {spec}")
    return EXIT_OK


def _run_config(args: argparse.Namespace, argv: Sequence[str]):  # noqa: ANN202
    from harness.runner import RunConfig

    return RunConfig(adapters=args.adapter, scenarios=args.scenario, families=args.family,
                     seed=args.seed,
                     budget_s=args.budget, dsn=dsn_with_flags(args.dsn, args.allow_any_database),
                     out_dir=args.out, options=parse_options(args.option),
                     progress=not args.no_progress, argv=list(argv))


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.runner import execute, summary_lines

    run, out_dir = execute(_run_config(args, argv))
    for line in summary_lines(run):
        print(line)
    print(f"results: {out_dir / 'results.json'}")
    if (out_dir / "report.html").exists():
        print(f"report:  {out_dir / 'report.html'}")
    return EXIT_VIOLATIONS if run.failed() else EXIT_OK


def _delegate(module: str, func: str) -> Callable[..., int]:
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"this command is not available in this build ({exc})") from exc


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list(args)
        if args.command == "run":
            return cmd_run(args, argv)
        if args.command == "gate":
            return _delegate("harness.gate", "main")(args, _run_config(args, argv))
        if args.command == "report":
            return _delegate("harness.report", "main")(args)
        if args.command == "replay":
            return _delegate("harness.replay", "main")(args)
        if args.command == "cv-recover":
            return _delegate("harness.families.cv_archive.recover_cli", "main")(args)
        if args.command == "load":
            args.dsn = dsn_with_flags(args.dsn, args.allow_any_database)
            return _delegate("scenarios.load.cli", "main")(args)
    except ConfigError as exc:
        print(f"harness: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
