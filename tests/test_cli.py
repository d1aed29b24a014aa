"""The command line: listing, usage errors with exit status 2 and one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=120)


def test_list_shows_the_four_adapters_scenarios_and_invariants() -> None:
    out = run_cli("list")
    assert out.returncode == 0, out.stderr
    for name in ("tinydb-legacy", "tinydb-locked", "sqlite", "postgres"):
        assert f"  {name} " in out.stdout
    assert "set_master.after_unset_old" in out.stdout
    for inv in ("one-master", "no-orphan-improvements", "no-lost-preview-hashes",
                "acked-writes-durable", "honest-results", "store-readable", "valid-data",
                "referential-integrity"):
        assert inv in out.stdout
    for scenario in ("stateful", "crash", "races", "load"):
        assert scenario in out.stdout


@pytest.mark.parametrize("args, needle", [
    (["run", "--adapter", "no-such-adapter"], "unknown adapter 'no-such-adapter'"),
    (["run", "--adapter", "nowhere.module:Adapter"], "cannot import module 'nowhere.module'"),
    (["run", "--adapter", "postgres"], "needs a server"),
    (["run", "--scenario", "nonsense"], "unknown scenario 'nonsense'"),
    (["run", "--option", "novalue"], "expected KEY=VALUE"),
    (["run", "--family", "nope"], "unknown family 'nope'"),
    (["gate", "--family", "nope"], "unknown family 'nope'"),
    (["list", "--family", "nope"], "unknown family 'nope'"),
])
def test_usage_errors_exit_2_with_one_line(capsys, args, needle) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("dsn, needle", [
    ("postgresql://admin:hunter2@127.0.0.1:5432/production", "test"),
    ("postgresql://postgres:hunter2@127.0.0.1:1/test", "cannot reach"),
    ("not a dsn at all", ""),
])
def test_bad_dsn_exit_2_and_password_redacted(capsys, dsn, needle) -> None:
    assert main(["run", "--adapter", "postgres", "--dsn", dsn, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err
    assert "hunter2" not in err
    assert len(err.splitlines()) == 1
