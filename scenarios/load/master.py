"""The Locust master of the processes mode: a ``MasterRunner`` bound to 127.0.0.1 on a free
port, expecting N ``WorkerRunner`` processes (:mod:`scenarios.load.worker`).

Started by :mod:`scenarios.load.scenario` as ``python -c boot("master") config.json`` (gevent
patched first, as in the workers). It publishes its port in ``port_file``, waits until every
worker has connected (each opens its adapters first), spawns the users over them, lets them run
until the mode's deadline less the tail, sends ``drain`` and waits for every worker's
``drained`` (their last statistics arrive first), then quits them. Locust's aggregated request
statistics go to ``result-master.json``. With ``web`` it also serves Locust's UI on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from scenarios.load.worker import GRACE_S, USER_CLASS, _stats, finish, run_until, start_watchdog


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    import gevent
    from locust import User, constant, task
    from locust.env import Environment

    class StoreUser(User):
        """Stands for the workers' user class (users are dispatched by class name)."""

        wait_time = constant(1)

        @task
        def nothing(self) -> None:  # pragma: no cover - the master runs no user
            pass

    StoreUser.__name__ = StoreUser.__qualname__ = USER_CLASS
    out = Path(cfg["out"])
    nproc, users = cfg["processes"], cfg["users"]
    env = Environment(user_classes=[StoreUser])
    runner = env.create_master_runner("127.0.0.1", 0)
    drained: dict[str, Any] = {}
    runner.register_message("drained",
                            lambda environment, msg, **_kw: drained.__setitem__(msg.node_id, msg.data))
    port_file = Path(cfg["port_file"])
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(runner.server.port))
    tmp.replace(port_file)
    web_ui = None
    if cfg.get("web"):
        web_ui = env.create_web_ui("127.0.0.1", cfg.get("web_port", 8089))
        print(f"locust web UI: http://127.0.0.1:{cfg.get('web_port', 8089)}", flush=True)

    while len(runner.clients.ready) < nproc:
        if time.time() > cfg["deadline"] + GRACE_S / 4:  # start-up may eat a small budget
            raise RuntimeError(f"only {len(runner.clients.ready)} of {nproc} load workers connected")
        gevent.sleep(0.01)
    t_ready = time.time()
    gevent.spawn(runner.start, users, spawn_rate=cfg.get("spawn_rate") or 100 * nproc)
    gevent.sleep(max(cfg.get("min_run_s", 0.5), run_until(cfg) - time.time()))
    runner.send_message("drain")
    t_drain = time.time()
    limit = time.time() + GRACE_S / 2
    while len(drained) < nproc and time.time() < limit:
        gevent.sleep(0.01)
    if len(drained) < nproc:
        raise RuntimeError(f"only {len(drained)} of {nproc} load workers drained")
    stats = _stats(env)
    runner.quit()
    if web_ui is not None:
        web_ui.stop()
    starts = [d["load_start"] for d in drained.values() if d.get("load_start")]
    ends = [d["load_end"] for d in drained.values() if d.get("load_end")]
    epoch = cfg["epoch"]
    result = {"stats": stats, "workers": len(drained), "port": runner.server.port,
              "ready_at": round(t_ready - epoch, 6), "drain_at": round(t_drain - epoch, 6),
              "load_start": round(min(starts, default=t_ready) - epoch, 6),
              "load_end": round(max(ends, default=t_drain) - epoch, 6)}
    (out / "result-master.json").write_text(json.dumps(result))
    return result


def main(argv: list[str]) -> int:
    cfg = json.loads(Path(argv[0]).read_text())
    start_watchdog(cfg["deadline"] + GRACE_S)
    try:
        run(cfg)
    except Exception:  # noqa: BLE001 - reported to the parent through the log and exit status
        traceback.print_exc()
        return finish(3)
    return finish(0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
