"""A search shared by several workers through a real PostgreSQL server (issue 7.6): two
processes take trials from one study until it holds the budget, with no trial run twice and
none lost. The server is started here on loopback in a temporary folder; `.ci/run` installs
the Debian package. The test skips, saying why, where PostgreSQL or its driver is missing or
the server cannot start."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_search import search_inputs

from tuning_core import search

ROOT = Path(__file__).resolve().parent.parent


def postgres_binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (.ci/run installs the Debian package)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("the PostgreSQL driver psycopg is not installed (test extras)")
    root = Path(tempfile.mkdtemp(prefix="tunesmith-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    port = free_port()
    data, log = root / "data", root / "server.log"

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)

    try:
        run(initdb, "-D", str(data), "-A", "trust", "-U", "tunesmith", "--no-sync")
        options = f"-h 127.0.0.1 -p {port} -k {root} -F"
        run(pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start: {detail.strip()[-300:]}")
    yield f"postgresql://tunesmith@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], timeout=60)
    shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_study_without_duplicates_or_losses(
    postgres_url, tiny_model, sentiment_csv, tmp_path
):
    budget = 5
    plan, data = search_inputs(tiny_model, sentiment_csv, trials=budget)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "data.json").write_text(json.dumps(data))
    code = (
        "import json, sys; from tuning_core import search; "
        "plan = json.load(open(sys.argv[1])); data = json.load(open(sys.argv[2])); "
        "search.run_search(plan, data, sys.argv[3], storage=sys.argv[4])"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                str(tmp_path / "plan.json"),
                str(tmp_path / "data.json"),
                str(tmp_path / f"worker-{n}"),
                postgres_url,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]

    study = optuna.load_study(study_name=search.STUDY_NAME, storage=postgres_url)
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # each worker stops once the study holds the budget; both may be in a last trial then
    assert budget <= len(finished) <= budget + 1
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.FAIL)]
    assert len({t.number for t in trials}) == len(trials)  # no trial taken twice
    params = [json.dumps(t.params, sort_keys=True) for t in finished]
    assert len(set(params)) == len(params)  # no configuration trained twice
    reports = {
        int(p.parent.name.split("-")[1])
        for n in (1, 2)
        for p in (tmp_path / f"worker-{n}" / "trials").glob("trial-*/report.json")
    }
    complete = {t.number for t in finished if t.state == TrialState.COMPLETE}
    assert complete <= reports  # every finished trial's report is on a worker's disk
    took = [len(list((tmp_path / f"worker-{n}" / "trials").glob("trial-*"))) for n in (1, 2)]
    assert all(count >= 1 for count in took)  # both workers trained


def test_the_apps_search_takes_its_storage_from_the_environment(monkeypatch, tmp_path):
    """The worker reads TUNESMITH_STORAGE (a URL that may hold a password) and hands it to the
    search; it is not part of the plan, so nothing stores it."""
    from tuning_core import worker

    seen = {}

    def fake_run_search(plan, data, out_dir, **kwargs):
        seen.update(kwargs)
        return {"best": None, "trials": [], "retried": []}

    monkeypatch.setattr(search, "run_search", fake_run_search)
    monkeypatch.setenv(worker.STORAGE_ENV, "postgresql://tuner:pw@db.example/optuna")
    plan = {"batch_size": 8, "extras": {}}
    with pytest.raises(RuntimeError, match="no trial"):
        worker.search_then_report(plan, {"labels": ["a"]}, tmp_path, [], lambda: False)
    assert seen["storage"] == "postgresql://tuner:pw@db.example/optuna"
    monkeypatch.delenv(worker.STORAGE_ENV)
    with pytest.raises(RuntimeError):
        worker.search_then_report(plan, {"labels": ["a"]}, tmp_path, [], lambda: False)
    assert seen["storage"] is None
