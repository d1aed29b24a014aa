"""The ``jobs`` contract as a Hypothesis state machine (DESIGN section 6, stateful/).

Rules are the contract's operations on Faker-made task inputs, results and errors, on tasks made
earlier (a bundle) and on a task that never existed; every write rule draws ``fault=FAULT`` so
that the error and crash modes can break it at one of its points. Workers are a small fixed set
so that claims by different workers interleave with the retries.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, precondition, rule

from scenarios.families.jobs.plans import TASK_TYPES, job_error, job_result, task_input
from scenarios.stateful.machine import FAULT, MISS, PLAIN, FamilyMachine, data_for

MISSING_TASK = "task-missing"
WORKERS = ("worker-1", "worker-2")
SEEDS = st.integers(0, 2**16)


class JobsMachine(FamilyMachine):
    """Processing jobs: create, claim, retry, complete, fail, read."""

    tasks = Bundle("tasks")

    @rule(fault=FAULT, target=tasks, seed=SEEDS)
    def create(self, fault: int | None, seed: int) -> str:
        df = data_for(seed)
        task_id = self.ids.new("task")
        self._do("get_or_create", fault=fault, task_id=task_id,
                 task_type=df.rng.choice(TASK_TYPES), input=task_input(df))
        return task_id

    @rule(fault=FAULT, task_id=tasks, seed=SEEDS)
    def create_again(self, fault: int | None, task_id: str, seed: int) -> None:
        """get_or_create of a task that exists: must return it unchanged."""
        df = data_for(seed)
        self._do("get_or_create", fault=fault, task_id=task_id,
                 task_type=df.rng.choice(TASK_TYPES), input=task_input(df))

    @rule(fault=FAULT, worker=st.sampled_from(WORKERS))
    def claim_next(self, fault: int | None, worker: str) -> None:
        self._do("claim_next", fault=fault, worker_id=worker)

    @rule(fault=FAULT, task_id=tasks, miss=MISS, worker=st.sampled_from((*WORKERS, None)))
    def mark_processing(self, fault: int | None, task_id: str, miss: bool, worker: str | None) -> None:
        self._do("mark_processing", fault=fault, task_id=MISSING_TASK if miss else task_id,
                 worker_id=worker)

    @rule(fault=FAULT, task_id=tasks, miss=MISS, seed=SEEDS)
    def mark_completed(self, fault: int | None, task_id: str, miss: bool, seed: int) -> None:
        self._do("mark_completed", fault=fault, task_id=MISSING_TASK if miss else task_id,
                 result=job_result(data_for(seed)))

    @rule(fault=FAULT, task_id=tasks, miss=MISS, seed=SEEDS)
    def mark_failed(self, fault: int | None, task_id: str, miss: bool, seed: int) -> None:
        self._do("mark_failed", fault=fault, task_id=MISSING_TASK if miss else task_id,
                 error=job_error(data_for(seed)))

    @precondition(lambda self: self.search.mode == PLAIN)
    @rule(task_id=tasks, miss=MISS)
    def get(self, task_id: str, miss: bool) -> None:
        """A read (reads have no fault points, so only in the plain mode)."""
        self._do("get", task_id=MISSING_TASK if miss else task_id)
