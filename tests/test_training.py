"""Training through the worker process: it learns, it repeats itself bit for bit, it survives
SIGTERM, and its exported script reproduces its metrics."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_PLAN

from tuning_core import runs
from tuning_core.data import inspect_data
from tuning_core.export import export_bundle
from tuning_core.plan import Plan
from tuning_core.worker import OOM_ENV, STEP_DELAY_ENV, smaller_batch


def tiny_inputs(tiny_model, sentiment_csv):
    plan = Plan(base_model=str(tiny_model), max_length=32, **TINY_PLAN).validate().to_dict()
    return plan, inspect_data(sentiment_csv).to_dict()


def train_in_worker(run_dir, plan, data, env=None):
    runs.prepare_run(run_dir, plan, data)
    runs.start_worker(run_dir, env=env)
    status = runs.follow_run(run_dir, lambda e: None, poll_s=0.2)
    assert status["state"] == "finished", (run_dir / "worker.log").read_text()[-3000:]
    return runs.read_report(run_dir)


@pytest.fixture(scope="module")
def finished_run(tiny_model, sentiment_csv, tmp_path_factory):
    plan, data = tiny_inputs(tiny_model, sentiment_csv)
    run_dir = tmp_path_factory.mktemp("runs") / "run-1"
    return run_dir, train_in_worker(run_dir, plan, data)


def comparable(report):
    return {
        k: report[k]
        for k in ("validation", "test", "loss_curve", "global_step", "best_checkpoint")
        if k != "best_checkpoint"
    }


def test_the_model_learns(finished_run):
    run_dir, report = finished_run
    losses = [loss for _, loss in report["loss_curve"]]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.1, (first, last)
    assert report["test"]["accuracy"] >= 0.7
    assert set(report["test"]["per_class"]) == {"negative", "neutral", "positive"}
    assert sum(map(sum, report["test"]["confusion"])) == report["test"]["n"]
    assert (run_dir / "model" / "model.safetensors").exists()
    versions = json.loads((run_dir / "versions.json").read_text())
    assert versions["torch"].startswith("2.") and report["seed"] == 42
    events, _ = runs.read_events(run_dir)
    kinds = {e["type"] for e in events}
    assert {"start", "log", "eval", "checkpoint", "finished"} <= kinds
    log = next(e for e in events if e["type"] == "log")
    assert {"loss", "learning_rate", "grad_norm", "samples_per_s", "eta_s", "memory_mb"} <= set(log)


def test_two_identical_runs_give_identical_metrics(
    finished_run, tiny_model, sentiment_csv, tmp_path
):
    plan, data = tiny_inputs(tiny_model, sentiment_csv)
    again = train_in_worker(tmp_path / "run-2", plan, data)
    assert comparable(again) == comparable(finished_run[1])


def test_sigterm_then_restart_finishes_like_an_uninterrupted_run(
    finished_run, tiny_model, sentiment_csv, tmp_path
):
    plan, data = tiny_inputs(tiny_model, sentiment_csv)
    run_dir = tmp_path / "run-3"
    runs.prepare_run(run_dir, plan, data)
    runs.start_worker(run_dir, env={STEP_DELAY_ENV: "0.15"})
    # wait until it is in the middle of the second epoch (12 steps per epoch), then SIGTERM
    deadline, step, offset = time.time() + 120, 0, 0
    while step < 17 and time.time() < deadline:
        events, offset = runs.read_events(run_dir, offset)
        step = max([step] + [e.get("step", 0) for e in events if e["type"] == "log"])
        time.sleep(0.05)
    assert runs.stop_run(run_dir)
    status = runs.follow_run(run_dir, lambda e: None, poll_s=0.1)
    assert status["state"] == "stopped"
    stopped_at = status["step"]
    assert stopped_at % 12 != 0, "the stop should land mid-epoch"
    assert (run_dir / "checkpoints" / f"checkpoint-{stopped_at}").exists()
    assert runs.read_report(run_dir) is None
    # started again on the same folder, it resumes and ends exactly where an uninterrupted run does
    runs.start_worker(run_dir)
    status = runs.follow_run(run_dir, lambda e: None, poll_s=0.2)
    assert status["state"] == "finished" and status["resumed"] is True
    events, _ = runs.read_events(run_dir)
    assert any(e["type"] == "start" and e["step"] == stopped_at for e in events)
    assert comparable(runs.read_report(run_dir)) == comparable(finished_run[1])


def test_halving_the_batch_keeps_the_effective_batch():
    assert smaller_batch({"batch_size": 8, "grad_accum": 1}) == {"batch_size": 4, "grad_accum": 2}
    assert smaller_batch({"batch_size": 6, "grad_accum": 2}) == {"batch_size": 3, "grad_accum": 4}
    odd = smaller_batch({"batch_size": 5, "grad_accum": 1})  # rounds the effective batch up
    assert odd == {"batch_size": 2, "grad_accum": 3}
    assert smaller_batch({"batch_size": 1, "grad_accum": 4}) is None


def test_out_of_memory_halves_the_batch_and_resumes_from_the_checkpoint(
    finished_run, tiny_model, sentiment_csv, tmp_path
):
    plan, data = tiny_inputs(tiny_model, sentiment_csv)
    assert plan["batch_size"] == 8 and plan.get("grad_accum", 1) == 1
    run_dir = tmp_path / "run-oom"
    # an injected GPU out-of-memory error at update 15 (in epoch 2) while the micro-batch is > 4
    report = train_in_worker(run_dir, plan, data, env={OOM_ENV: "15:4"})
    events, _ = runs.read_events(run_dir)
    ooms = [e for e in events if e["type"] == "oom"]
    assert len(ooms) == 1
    assert ooms[0]["step"] == 12 and ooms[0]["batch_size"] == 4 and ooms[0]["grad_accum"] == 2
    assert "each update still averages 8 rows" in ooms[0]["message"]
    # resumed from the epoch-1 checkpoint with the smaller micro-batch, not from scratch
    assert any(e["type"] == "start" and e["step"] == 12 for e in events)
    kept = {
        k: v for k, v in report["trained_plan"].items() if k not in ("batch_size", "grad_accum")
    }
    assert kept == {k: v for k, v in plan.items() if k not in ("batch_size", "grad_accum")}
    assert (report["trained_plan"]["batch_size"], report["trained_plan"]["grad_accum"]) == (4, 2)
    assert json.loads((run_dir / "plan.json").read_text())["batch_size"] == 4
    # the same number of updates planned over the same rows (early stopping may end either run
    # sooner: the smaller micro-batches sum the gradients in another order, so the numbers drift)
    starts = [e for e in events if e["type"] == "start"]
    assert [e["step"] for e in starts] == [0, 12]
    assert starts[0]["max_steps"] == starts[1]["max_steps"] == 72
    assert report["test"]["accuracy"] >= 0.7  # it learns, as the uninterrupted run does


def test_exported_script_reproduces_the_metrics(finished_run, tmp_path):
    run_dir, report = finished_run
    bundle = export_bundle(run_dir, tmp_path / "bundle")
    assert sorted(p.name for p in bundle.iterdir()) == [
        "README.md",
        "model_card.md",
        "plan.json",
        "plan.yaml",
        "requirements.txt",
        "search.py",
        "train.py",
    ]
    import yaml

    assert yaml.safe_load((bundle / "plan.yaml").read_text()) == json.loads(
        (bundle / "plan.json").read_text()
    )
    card = (bundle / "model_card.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["pipeline_tag"] == "text-classification" and meta["base_model"]
    assert f"| this model | {report['judge']['official']:.4f} |" in card
    tfidf = report["judge"]["baselines"]["tfidf_lr"]
    assert f"| TF-IDF + logistic regression | {tfidf:.4f} |" in card and "## Limitations" in card
    script = (bundle / "train.py").read_text()
    assert "tuning_core" not in script and "import assistant" not in script
    readme = (bundle / "README.md").read_text()
    data = json.loads((run_dir / "data.json").read_text())
    assert data["sha256"]["train"] in readme
    assert report["hardware"].startswith("CPU, ") and report["wall_seconds"] > 0
    assert f"The recorded run trained on {report['hardware']} in " in readme
    assert f"{report['test']['macro_f1']:.4f}" in readme
    requirements = (bundle / "requirements.txt").read_text()
    assert "transformers==" in requirements and "torch==" in requirements
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    assert "EXPECTED_LOSS: list = [" in script and "EXPECTED_LOSS: list = []" not in script
    out = subprocess.run(
        [sys.executable, "train.py", "--verify"],
        cwd=bundle,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "verified: the rerun matches the record" in out.stdout
    for name in ("test_accuracy", "test_macro_f1", "validation_macro_f1"):
        line = next(x for x in out.stdout.splitlines() if x.strip().startswith(name))
        assert line.rstrip().endswith("ok"), line
    assert "loss curve" in out.stdout and "largest difference 0.00%" in out.stdout
    rerun = json.loads((bundle / "output" / "report.json").read_text())
    assert rerun["test"]["accuracy"] == report["test"]["accuracy"]

    # the same check fails, non-zero, on any difference (on a CPU nothing may differ)
    spec = importlib.util.spec_from_file_location("bundle_train", bundle / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recorded = dict(module.EXPECTED)
    curve = [list(p) for p in module.EXPECTED_LOSS]
    assert module.verify(recorded, curve) == 0
    assert module.verify({**recorded, "test_accuracy": recorded["test_accuracy"] - 1e-4}, curve)
    nudged = [[step, loss * 1.001] for step, loss in curve]
    assert module.verify(recorded, nudged) == 1
    assert module.verify(recorded, curve[:-1]) == 1
    # ruff on the generated scripts: tests/test_export_golden.py


def test_the_exported_script_runs_under_torchrun_on_two_processes(finished_run, tmp_path):
    """Issue 7.5: train.py unchanged under `torchrun --nproc_per_node 2` (gloo on the CPU):
    both processes train, the first one alone writes the report and prints the metrics."""
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this python")
    run_dir, report = finished_run
    bundle = export_bundle(run_dir, tmp_path / "bundle")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "train.py", "--out", "ddp"],
        cwd=bundle,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = [line for line in out.stdout.splitlines() if line.startswith('{"test_accuracy"')]
    assert len(metrics) == 1  # rank 0 only
    assert out.stderr.count("LOAD REPORT") == 2  # two processes built the model
    saved = json.loads((bundle / "ddp" / "report.json").read_text())
    assert json.loads(metrics[0])["test_accuracy"] == saved["test"]["accuracy"]
    assert (bundle / "ddp" / "model" / "model.safetensors").exists()
    accelerate = Path(sys.executable).parent / "accelerate"
    if accelerate.exists():  # and under accelerate launch (on the CPU)
        launched = subprocess.run(
            [str(accelerate), "launch", "--cpu", "--num_processes", "2", "train.py", "--out",
             "acc"],
            cwd=bundle, capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
        assert launched.returncode == 0, launched.stderr[-3000:]
        assert (bundle / "acc" / "report.json").exists()


def test_export_with_the_model_writes_a_loadable_copy(finished_run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from tuning_core.errors import ExportError

    run_dir, report = finished_run
    bundle = export_bundle(run_dir, tmp_path / "bundle", model="full")
    model = AutoModelForSequenceClassification.from_pretrained(bundle / "model")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert labels == report["test"]["labels"] and (bundle / "model" / "model.safetensors").exists()
    with pytest.raises(ExportError, match="no adapter"):
        export_bundle(run_dir, tmp_path / "other", model="merged")
    assert not (tmp_path / "other").exists()  # nothing half-written


def test_export_refuses_a_non_empty_folder(finished_run, tmp_path):
    from tuning_core.errors import ExportError

    target = tmp_path / "taken"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not empty"):
        export_bundle(finished_run[0], target)
    assert (target / "mine.txt").read_text() == "keep me"
