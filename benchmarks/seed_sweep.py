"""Run every scenario on the correct SQL adapters for many seeds and count violations.

    .venv/bin/python benchmarks/seed_sweep.py --seeds 20 --budget 5 \
        --dsn postgresql://postgres@127.0.0.1:5432/test

Prints one line per (adapter, seed) and a total; exits 1 if any violation was found.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from harness.runner import RunConfig, execute


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--budget", type=float, default=5.0)
    p.add_argument("--dsn", default=None)
    p.add_argument("--adapter", action="append", default=[])
    p.add_argument("--scenario", action="append", default=[])
    args = p.parse_args()
    adapters = args.adapter or (["sqlite", "postgres"] if args.dsn else ["sqlite"])
    total, t0 = 0, time.monotonic()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        with tempfile.TemporaryDirectory() as out:
            run, _ = execute(RunConfig(adapters=adapters, scenarios=args.scenario, seed=seed,
                                       budget_s=args.budget, dsn=args.dsn, out_dir=out,
                                       progress=False))
        for a in run.adapters:
            found = sum(len(s.violations) for s in a.scenarios)
            errors = [s.name for s in a.scenarios if s.error]
            total += found + len(errors)
            steps = sum(s.steps for s in a.scenarios)
            print(f"seed {seed:>3} {a.name:<10} steps={steps:<7} violations={found} "
                  f"errors={errors or '-'}", flush=True)
    print(f"total violations+errors: {total} in {time.monotonic() - t0:.0f}s")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
