"""The harness' own cost per operation: the same calls made directly on an adapter and through
the recording client (history, fault scoping, automatic boundary hooks), alternating rounds.

    .venv/bin/python benchmarks/overhead.py --adapter sqlite --ops 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from harness.client import RecordingClient
from harness.domain import DataFactory
from harness.faults import FaultController
from harness.history import History
from harness.registry import resolve


def workload(call, data: DataFactory, n: int, tag: str) -> None:
    resume = data.resume_data()
    call("create_job", content="job", job_id=f"{tag}-j")
    for i in range(n // 4):
        rid = f"{tag}-r{i}"
        call("upload_resume", content="cv", filename="cv.md", processed_data=resume, resume_id=rid)
        call("record_preview", job_id=f"{tag}-j", prompt_id=f"p{i % 5}", preview_hash=f"h{i}")
        call("save_cover_letter", resume_id=rid, text="letter")
        call("get_resume", resume_id=rid)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapter", default="sqlite")
    p.add_argument("--ops", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dsn", default=None)
    args = p.parse_args()
    cls = resolve(args.adapter)
    data = DataFactory(0)
    plain, harnessed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dsn if cls.location_kind == "server" else tmp
        for r in range(args.rounds):
            loc = cls.fresh_location(root, f"bench_{r}_plain")
            adapter = cls(loc)
            t0 = time.perf_counter()
            workload(lambda op, a=adapter, **kw: getattr(a, op)(**kw), data, args.ops, "p")
            plain.append(args.ops / (time.perf_counter() - t0))
            adapter.close()
            cls.drop_location(loc)

            loc = cls.fresh_location(root, f"bench_{r}_harness")
            adapter = cls(loc, FaultController(seed=r))
            client = RecordingClient(adapter, History())
            t0 = time.perf_counter()
            workload(client.call, data, args.ops, "h")
            harnessed.append(args.ops / (time.perf_counter() - t0))
            adapter.close()
            cls.drop_location(loc)
    pm, hm = statistics.median(plain), statistics.median(harnessed)
    print(f"{args.adapter}: plain {pm:.0f} ops/s, through the harness {hm:.0f} ops/s, "
          f"overhead {100 * (pm - hm) / pm:.1f}% (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
