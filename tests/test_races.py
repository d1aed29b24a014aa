"""The race explorer (scenarios/races): schedules, replay, clean adapters, deadlock detection."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from harness.contract import StorageAdapter, StorageError
from harness.errors import ConfigError
from harness.faults import FaultController
from harness.model import ReferenceModel
from harness.registry import resolve
from harness.results import ScenarioResult
from harness.scenario import ScenarioContext
from scenarios.races import NO_DEADLOCK, PAIRS, RaceScenario
from scenarios.races.pairs import PAIRS_BY_NAME

REQUIRED_PAIRS = ("preview-preview", "upload-upload", "setmaster-upload", "confirm-delete",
                  "cover-cover")
FAST = {"step_timeout": "0.1", "deadlock_timeout": "2"}
#: tinydb-legacy takes no lock, so a granted thread always reaches its next point: a generous
#: timeout costs nothing and keeps a loaded machine from mistaking a slow write for a block.
LEGACY = {"step_timeout": "1.0"}


def _adapter_cls(name: str) -> type[StorageAdapter]:
    try:
        return resolve(name)
    except ConfigError as exc:  # an adapter another change has not landed yet
        pytest.skip(str(exc))


def _run(cls: type[StorageAdapter], root: str, seed: int = 0, scenario: RaceScenario | None = None,
         **options: Any) -> ScenarioResult:
    ctx = ScenarioContext(adapter_cls=cls, adapter_name=cls.name or cls.__name__, seed=seed,
                          workdir=Path("."), location_root=root, budget_s=120,
                          options={**FAST, **options})
    try:
        result = (scenario or RaceScenario()).run(ctx)
    finally:
        ctx.cleanup()
    result.finalize(ctx.guarantees)
    return result


def _first(result: ScenarioResult, pair: str, invariant: str):
    found = [v for v in result.violations
             if v.invariant == invariant and v.context["pair"] == pair]
    assert found, [(v.invariant, v.context) for v in result.violations]
    return found[0]


# --------------------------------------------------------------------------- tinydb-legacy


@pytest.fixture(scope="module")
def legacy_result(tmp_path_factory) -> ScenarioResult:
    root = str(tmp_path_factory.mktemp("legacy"))
    return _run(resolve("tinydb-legacy"), root, pair="preview-preview,upload-upload", **LEGACY)


def test_pairs_cover_the_brief():
    assert set(REQUIRED_PAIRS) <= {p.name for p in PAIRS}
    for pair in PAIRS:
        assert len(pair.calls(7)[1]) >= 2
    pair = PAIRS_BY_NAME["confirm-delete"]
    assert pair.calls(7) == pair.calls(7)  # a pure function of the seed


def test_legacy_loses_a_preview_hash(legacy_result):
    v = _first(legacy_result, "preview-preview", "no-lost-preview-hashes")
    assert v.guarantee == "thread-safe"
    assert not v.claimed  # tinydb-legacy claims nothing: an expected finding
    schedule = v.context["schedule"]
    assert schedule and set(schedule) <= {"0", "1"}
    assert f"schedule={schedule}" in v.reproduction and "pair=preview-preview" in v.reproduction
    listed = [s for s in legacy_result.details["schedules"] if s["pair"] == "preview-preview"]
    assert listed and listed[0]["result"] == "violation"
    assert "no-lost-preview-hashes" in listed[0]["invariants"]


def test_legacy_two_first_uploads_make_two_masters(legacy_result):
    v = _first(legacy_result, "upload-upload", "one-master")
    assert "2 masters" in v.message
    assert v.guarantee == "thread-safe"
    counts = legacy_result.details["counts"]["upload-upload"]
    assert counts["violation"] >= 1 and counts["exhausted"]


@pytest.mark.parametrize(("pair", "invariant"), [("preview-preview", "no-lost-preview-hashes"),
                                                 ("upload-upload", "one-master")])
def test_printed_schedule_replays_the_finding(legacy_result, tmp_path, pair, invariant):
    v = _first(legacy_result, pair, invariant)
    schedule = v.context["schedule"]
    for _ in range(2):
        replay = _run(resolve("tinydb-legacy"), str(tmp_path), pair=pair, schedule=schedule,
                      **LEGACY)
        assert replay.steps == 1
        again = _first(replay, pair, invariant)
        assert again.context["schedule"] == schedule
        assert again.message == v.message
        assert not replay.details["schedules"][0].get("diverged")


def test_same_seed_same_schedules_and_findings(legacy_result, tmp_path):
    again = _run(resolve("tinydb-legacy"), str(tmp_path), pair="preview-preview,upload-upload",
                 **LEGACY)
    assert again.details["counts"] == legacy_result.details["counts"]
    assert [(v.invariant, v.context, v.message) for v in again.violations] == \
        [(v.invariant, v.context, v.message) for v in legacy_result.violations]


def test_sequential_schedule_of_legacy_keeps_both_hashes(tmp_path):
    # Prefix "0": by default the thread that ran last keeps running, so thread 0 runs to the end
    # before thread 1 starts: no race, no loss.
    result = _run(resolve("tinydb-legacy"), str(tmp_path), pair="preview-preview", schedule="0",
                  **LEGACY)
    assert result.details["counts"]["preview-preview"]["ok"] == 1
    assert not result.violations


# --------------------------------------------------------------------------- correct adapters


def _assert_clean(result: ScenarioResult, pairs=REQUIRED_PAIRS) -> None:
    assert result.violations == [], [(v.invariant, v.context, v.message)
                                     for v in result.violations]
    counts = result.details["counts"]
    for pair in pairs:
        c = counts[pair]
        assert c["schedules"] >= 2 and c["deadlock"] == 0 and c["error"] == 0, (pair, c)
        assert c["ok"] == c["schedules"], (pair, c)
    assert result.status == "passed"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tinydb-locked", "sqlite"])
def test_correct_embedded_adapters_are_clean(name, tmp_path):
    # tinydb-locked is explored exhaustively; sqlite's many SQL points get the schedules with at
    # most one preemption (every point at which one thread can cut into the other) and more.
    cap = "200" if name == "tinydb-locked" else "6"
    result = _run(_adapter_cls(name), str(tmp_path), pair=",".join(REQUIRED_PAIRS),
                  max_schedules=cap)
    _assert_clean(result)
    if name == "tinydb-locked":
        assert all(c["exhausted"] for c in result.details["counts"].values())


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_is_clean(pg_dsn):
    result = _run(_adapter_cls("postgres"), pg_dsn, pair=",".join(REQUIRED_PAIRS),
                  max_schedules="6")
    _assert_clean(result)


# --------------------------------------------------------------------------- deadlock


class LockOrderModel(ReferenceModel):
    """The reference model with a lock-ordering bug: ``save_cover_letter`` takes lock A then B,
    ``save_outreach_message`` B then A, with a fault point between (a textbook deadlock)."""

    name = "lock-order-model"

    def __init__(self, location: str = "", faults: FaultController | None = None) -> None:
        super().__init__(location, faults)
        self.lock_a, self.lock_b = threading.Lock(), threading.Lock()

    def _both(self, first: threading.Lock, second: threading.Lock, op: str, call):
        with first:
            self.faults.point(f"{op}.after_first_lock")
            # A bounded wait so that the test's threads end once the deadlock is reported.
            if not second.acquire(timeout=2.5):
                raise StorageError(f"{op}: gave up waiting for the second lock")
            try:
                return call()
            finally:
                second.release()

    def save_cover_letter(self, resume_id: str, text: str):
        return self._both(self.lock_a, self.lock_b, "save_cover_letter",
                          lambda: super(LockOrderModel, self).save_cover_letter(resume_id, text))

    def save_outreach_message(self, resume_id: str, text: str):
        return self._both(self.lock_b, self.lock_a, "save_outreach_message",
                          lambda: super(LockOrderModel, self).save_outreach_message(resume_id, text))


def test_deadlock_is_detected_and_reported(tmp_path):
    scenario = RaceScenario(pairs=[PAIRS_BY_NAME["cover-outreach"]])
    # Fewest preemptions first: the two sequential schedules, then "01...", which deadlocks.
    result = _run(LockOrderModel, str(tmp_path), scenario=scenario, deadlock_timeout="1",
                  max_schedules="3")
    counts = result.details["counts"]["cover-outreach"]
    assert counts == {**counts, "schedules": 3, "ok": 2, "deadlock": 1}  # sequential ones pass
    deadlocks = [v for v in result.violations if v.invariant == NO_DEADLOCK]
    assert len(deadlocks) == 1
    v = deadlocks[0]
    assert v.guarantee == "thread-safe" and v.claimed  # the model claims thread-safe
    assert "deadlock" in v.message and "after_first_lock" in v.message
    schedule = v.context["schedule"]
    assert schedule.startswith(("01", "10"))
    listed = [s for s in result.details["schedules"] if s["result"] == "deadlock"]
    assert listed and listed[0]["schedule"] == schedule
    assert result.status == "violated"

    replay = _run(LockOrderModel, str(tmp_path), scenario=scenario, deadlock_timeout="1",
                  schedule=schedule)
    assert replay.details["counts"]["cover-outreach"]["deadlock"] == 1


def test_unknown_pair_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown pair"):
        _run(ReferenceModel, str(tmp_path), pair="nope")
