"""Multi-task training: other label sets of the same kind of text trained on one encoder with a
head each, as a plan option the chat, the runner, the report and the export carry."""

import json
from pathlib import Path

import pytest
from test_cli import tunesmith
from test_tasks import run_chat, verify_bundle
from tiny import write_rows_csv, write_two_label_csv

from assistant.store import SessionStore
from tuning_core import multitask, recipe
from tuning_core.data import inspect_data
from tuning_core.plan import Plan

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def posts(tmp_path_factory):
    return write_two_label_csv(tmp_path_factory.mktemp("multitask") / "posts.csv", 40)


def strength_task(data: dict) -> dict:
    """The file's `strength` column as the auxiliary task, as the chat adds it."""
    return {
        "name": "strength",
        "files": data["files"],
        "text_column": data["text_column"],
        "label_column": "strength",
        "labels": ["mild", "strong"],
        "readers": data["readers"],
        "sha256": data["sha256"],
        "split_seed": data["split_seed"],
        "same_texts": True,
    }


def plan_for(tiny_model, **changes) -> dict:
    settings = {"epochs": 3.0, "multitask": True, **changes}
    return Plan(
        base_model=str(tiny_model),
        max_length=32,
        learning_rate=3e-3,
        early_stopping_patience=0,
        **settings,
    ).to_dict()


def test_the_loss_is_the_weighted_sum_of_each_tasks_mean_cross_entropy():
    import torch

    torch.manual_seed(0)
    logits = torch.randn(5, 3)
    features = torch.randn(5, 4)
    heads = torch.nn.ModuleList([torch.nn.Linear(4, 2)])
    labels = torch.tensor([0, 2, 1, 1, 0])
    task_ids = torch.tensor([0, 0, 1, 1, 1])
    loss = multitask.task_loss(logits, features, heads, labels, task_ids, [1.0, 0.5])
    ce = torch.nn.functional.cross_entropy
    main = ce(logits[:2], labels[:2])
    other = ce(heads[0](features[2:]), labels[2:])
    assert torch.allclose(loss, main + 0.5 * other)
    # a batch without rows of a task adds nothing for it
    only_main = multitask.task_loss(logits, features, heads, labels, torch.zeros(5).long(), [1, 9])
    assert torch.allclose(only_main, ce(logits, labels))


def test_together_each_task_is_learned_and_reported_and_the_model_saves_plain(
    posts, tiny_model, tmp_path
):
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    data = inspect_data(posts).to_dict()
    data["auxiliary"] = [strength_task(data)]
    report = recipe.train_and_evaluate(plan_for(tiny_model), data, tmp_path / "run")
    strength = report["tasks"]["strength"]
    splits = recipe.load_splits(data)
    # the other column follows the main task's split, text by text
    assert strength["train_rows"] == len(splits["train"][0]) == report["train_rows"]
    assert strength["test"]["n"] == len(splits["test"][0])
    assert strength["dropped_held_out"] == 0
    assert set(strength["test"]["per_class"]) == {"mild", "strong"}
    curve = [loss for _step, loss in report["loss_curve"]]
    assert sum(curve[-3:]) / 3 < sum(curve[:3]) / 3  # the summed loss fell
    assert strength["validation"]["accuracy"] > 0.5 and report["test"]["accuracy"] > 0.4
    assert recipe.headline(report)["test_strength_macro_f1"] == strength["test"]["macro_f1"]
    # the main task's classifier is an ordinary model; the other head is a file of its own
    model_dir = tmp_path / "run" / "model"
    weights = load_file(str(model_dir / "model.safetensors"))
    assert not any(k.startswith(multitask.HEADS) for k in weights)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    heads = load_file(str(model_dir / "auxiliary_heads.safetensors"))
    assert heads["0.weight"].shape == (2, model.config.hidden_size)
    assert json.loads((model_dir / "auxiliary_heads.json").read_text()) == {
        "strength": ["mild", "strong"]
    }


def test_held_out_texts_of_the_main_task_never_train_another_head(posts, tiny_model, tmp_path):
    """A labelled file of its own that holds some of the main task's validation and test texts:
    those rows are dropped from the other task's training rows (counted in the report)."""
    data = inspect_data(posts).to_dict()
    splits = recipe.load_splits(data)
    held = splits["validation"][0][:3] + splits["test"][0][:4]
    rows = [(t, "short" if len(t) < 40 else "long") for t in splits["train"][0][:40] + held]
    other = inspect_data(write_rows_csv(tmp_path / "other.csv", rows, label="size")).to_dict()
    aux = {**{k: other[k] for k in ("files", "text_column", "label_column", "labels")},
           "name": "size", "readers": other["readers"], "sha256": other["sha256"]}  # fmt: skip
    own = recipe.load_splits({**aux, "task": recipe.TASKS[0]})
    in_train = sum(t in set(held) for t in own["train"][0])
    assert in_train > 0  # the carve left some of them in its training rows
    plan = plan_for(tiny_model, epochs=1.0, multitask_batches="mixed")
    report = recipe.train_and_evaluate(plan, {**data, "auxiliary": [aux]}, tmp_path / "run")
    assert report["tasks"]["size"]["dropped_held_out"] == in_train
    assert report["tasks"]["size"]["train_rows"] == len(own["train"][0]) - in_train


def test_stopped_mid_epoch_and_resumed_it_ends_as_an_uninterrupted_run(posts, tiny_model, tmp_path):
    data = inspect_data(posts).to_dict()
    data["auxiliary"] = [strength_task(data)]
    plan = plan_for(tiny_model, auxiliary_weight=0.5)
    whole = recipe.train_and_evaluate(plan, data, tmp_path / "whole")
    steps = whole["global_step"]
    calls = [0]

    def requested() -> bool:
        calls[0] += 1
        return calls[0] >= steps // 2 + 1

    stop = recipe.stop_callback(requested)
    run_dir = tmp_path / "stopped"
    report = recipe.train_and_evaluate(
        plan, data, run_dir, callbacks=[stop], interrupted=lambda: stop.stopped
    )
    assert report["interrupted"] and report["global_step"] < steps
    # between two logged steps: the checkpoint keeps the loss average in progress
    assert report["global_step"] not in {step for step, _ in whole["loss_curve"]}
    resumed = recipe.train_and_evaluate(plan, data, run_dir, resume=True)
    for key in ("validation", "test", "tasks", "loss_curve", "global_step"):
        assert resumed[key] == whole[key], key
    # and the other task's weight changes the run
    heavier = recipe.train_and_evaluate({**plan, "auxiliary_weight": 2.0}, data, tmp_path / "w2")
    assert heavier["loss_curve"] != whole["loss_curve"]


def test_plans_and_data_that_cannot_train_together_are_refused_in_one_line(
    posts, tiny_model, tmp_path
):
    problems = Plan(multitask=True, freezing="lora").problems()
    assert any("not with LoRA" in p for p in problems)
    assert any("auxiliary_weight" in p for p in Plan(auxiliary_weight=0).problems())
    data = inspect_data(posts).to_dict()
    with pytest.raises(ValueError, match="no other label set"):
        recipe.train_and_evaluate(plan_for(tiny_model), data, tmp_path / "run")
    # with multitask off, the other label sets are read but not trained
    assert recipe.auxiliary_tasks({"multitask": False}, {"auxiliary": [strength_task(data)]}) == []


def test_the_chat_adds_a_task_trains_together_exports_and_reproduces(posts, tiny_model, tmp_path):
    home = tmp_path / "home"
    stdout = run_chat(
        home,
        str(posts),
        "also learn strength",
        "also learn nothing_here",
        f"use model {tiny_model}",
        "train them together, learning rate 0.003, 3 epochs, auxiliary weight 0.5",
        "",
    )
    assert "Other task `strength`: 2 labels (`mild`, `strong`) from column `strength`" in stdout
    assert "There is no column `nothing_here`" in stdout
    assert "Other tasks" in stdout and "loss weight 0.5" in stdout
    assert "Trained together on the same encoder" in stdout
    (session_id,) = [s["id"] for s in SessionStore(home).list()]
    state = SessionStore(home).open(session_id).load_state()
    assert state["plan"]["multitask"] is True and state["plan"]["auxiliary_weight"] == 0.5
    report = json.loads((Path(state["run_dir"]) / "report.json").read_text())
    assert report["judge"]["tasks"]["strength"]["weight"] == 0.5
    out = tunesmith("report", session_id, home=home)
    assert out.returncode == 0 and "| strength | macro-F1" in out.stdout
    bundle = tmp_path / "bundle"
    out = tunesmith("export", session_id, "--out", str(bundle), home=home)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (bundle / "multitask.py").exists()
    assert "strength: train (column `strength`)" in (bundle / "README.md").read_text()
    verify_bundle(bundle, tmp_path / "rerun")  # the other task's test score matches too


def test_the_chat_refuses_what_cannot_be_trained_together(posts, tmp_path):
    from assistant.planner import Planner

    planner = Planner(tmp_path / "runs")
    planner.handle(str(posts))
    replies = planner.handle("train them together")
    assert replies[0].kind == "error" and "no other label set" in replies[0].text
    replies = planner.handle("also learn text")
    assert replies[0].kind == "error" and "already the text or the label column" in replies[0].text
    assert not planner.state.spec["auxiliary"]
    replies = planner.handle("also learn strength")
    assert [a["name"] for a in planner.state.spec["auxiliary"]] == ["strength"]
    # the rule follows bench/multitask.py: apart, with the measured numbers
    assert planner.state.plan["multitask"] is False
    assert "3 of 4 pairings" in planner.state.recommendation["reasons"]["multitask"]["text"]
    assert "I train the main task alone" in replies[0].text
    answer = " ".join(r.text for r in planner.handle("why train apart?"))
    assert "3 of 4 pairings" in answer
    # together, each epoch reads the other task's rows too: the forecast counts them
    alone = planner._forecast()["steps_per_epoch"]
    planner.handle("train them together")
    assert planner.state.plan["multitask"] is True
    assert "auxiliary_weight" in planner.state.plan["search_space"]
    assert planner._forecast()["steps_per_epoch"] > 1.8 * alone
    planner.handle("train apart")
    assert "auxiliary_weight" not in planner.state.plan["search_space"]
    # reading the same file with other columns keeps the other task
    planner.handle("the label is in column 'label'")
    assert [a["name"] for a in planner.state.spec["auxiliary"]] == ["strength"]


def test_a_search_varies_the_other_tasks_weight_and_keeps_their_reports(
    posts, tiny_model, tmp_path
):
    from tuning_core import search

    data = inspect_data(posts).to_dict()
    data["auxiliary"] = [strength_task(data)]
    plan = {**plan_for(tiny_model, epochs=2.0), "trials": 2}
    plan["search_space"] = {"auxiliary_weight": {"low": 0.25, "high": 1.0}}
    result = search.run_search(plan, data, tmp_path, pruner="none")
    done = [row for row in result["trials"] if row["state"] == "complete"]
    weights = {row["params"]["auxiliary_weight"] for row in done}
    assert len(done) == 2 and len(weights) == 2 and all(0.25 <= w <= 1.0 for w in weights)
    report = json.loads((Path(result["best"]["run_dir"]) / "report.json").read_text())
    assert report["tasks"]["strength"]["weight"] == pytest.approx(
        result["best"]["params"]["auxiliary_weight"]
    )


def test_each_batch_holds_one_tasks_rows_and_the_order_is_seeded():
    lengths = [(7 * i) % 13 + 1 for i in range(50)]
    tasks = [0] * 20 + [1] * 23 + [2] * 7
    order = recipe.task_batch_order(lengths, tasks, 4, seed=3, sampling="length")
    assert sorted(order) == list(range(50))
    full = 20 // 4 + 23 // 4 + 7 // 4  # each task's full batches come first, shuffled together
    batches = [order[b * 4 : (b + 1) * 4] for b in range(full)]
    assert all(len({tasks[i] for i in batch}) == 1 for batch in batches)
    assert len({tasks[batch[0]] for batch in batches[:4]}) > 1  # the tasks are interleaved
    assert order == recipe.task_batch_order(lengths, tasks, 4, seed=3, sampling="length")
    assert order != recipe.task_batch_order(lengths, tasks, 4, seed=4, sampling="length")
