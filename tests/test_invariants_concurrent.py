"""The invariants on real concurrent histories: six OS threads drive the reference model (a
correct store) with overlapping operations, contention on a few ids, deletes and ids reused
after deletion. No check may fire, and checking stays fast."""

from __future__ import annotations

import random
import threading
import time

from builders import valid_resume_data

from harness.client import RecordingClient
from harness.history import History
from harness.invariants import check_all
from harness.model import ReferenceModel


def drive(model: ReferenceModel, history: History, thread: int, n: int) -> None:
    rng = random.Random(thread)
    client = RecordingClient(model, history, process=f"p{thread}")
    data = valid_resume_data()
    for i in range(n):
        rid, jid = f"r{rng.randrange(12)}", f"j{rng.randrange(3)}"
        k = rng.randrange(9)
        if k == 0:
            client.call("upload_resume", content="x", resume_id=f"r{thread}-{i}")
        elif k == 1:
            client.call("upload_resume", content="x", resume_id=rid)  # reused after delete
        elif k == 2:
            client.call("set_master", resume_id=rid)
        elif k == 3:
            client.call("create_job", content="j", job_id=jid)
        elif k == 4:
            client.call("record_preview", job_id=jid, prompt_id=f"p{rng.randrange(6)}",
                        preview_hash=f"h{thread}-{i}")
        elif k == 5:
            client.call("save_cover_letter", resume_id=rid, text=f"{thread}-{i}")
        elif k == 6:
            job = client.call("get_job", job_id=jid)
            hashes = (job.result or {}).get("preview_hashes", {})
            prompt = next(iter(hashes), "p0")
            client.call("confirm_improvement", resume_id=rid, job_id=jid, prompt_id=prompt,
                        preview_hash=hashes.get(prompt, "stale"), improved_data=data,
                        improvements=[], tailored_resume_id=f"t{thread}-{i}",
                        request_id=f"q{thread}-{i}")
        elif k == 7:
            client.call("delete_resume", resume_id=rid)
        else:
            client.call("update_resume", resume_id=rid, fields={"filename": f"f{i}"})


def test_correct_store_under_six_threads_has_no_findings() -> None:
    model, history = ReferenceModel("memory"), History()
    threads = [threading.Thread(target=drive, args=(model, history, t, 500)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(history) == 3000 + sum(1 for r in history if r.op == "get_job")
    assert {r.status for r in history} >= {"ok", "fail"}
    t0 = time.monotonic()
    findings = check_all(model.snapshot(), history.records)
    elapsed = time.monotonic() - t0
    assert findings == []
    assert elapsed < 20  # generous: about 0.3 s here; quadratic checks took minutes
