"""What carries the recommender's new decisions: mean pooling, the F1 of a named class, the
precision setting, hardware facts, text traits, and limits given in the chat."""

from __future__ import annotations

import csv
import subprocess

import pytest
import torch
from conftest import TINY_PLAN
from tiny import sentiment_rows

from assistant.planner import Planner, plan_rows
from tuning_core import hardware, recipe
from tuning_core.baseline import run_baseline
from tuning_core.data import inspect_data
from tuning_core.errors import PlanError
from tuning_core.plan import Plan
from tuning_core.profile import text_traits

pytestmark = pytest.mark.usefixtures("one_thread")  # every comparison on one thread


@pytest.fixture(scope="module")
def binary_data(tmp_path_factory) -> dict:
    """'positive' against its negation 'not_positive' (negative and neutral rows)."""
    path = tmp_path_factory.mktemp("binary") / "posts.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for text, label in sentiment_rows(40, seed=5):
            writer.writerow([text, "positive" if label == "positive" else "not_positive"])
    return inspect_data(path).to_dict()


def test_mean_pooling_averages_the_unpadded_tokens(tiny_model):
    from transformers import AutoTokenizer

    labels = ["a", "b"]
    model = recipe.build_model({"base_model": str(tiny_model), "pooling": "mean"}, labels)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    texts = ["good great", "bad awful terrible movie plot acting"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        padded = model(**batch).logits
        alone = model(**tokenizer(texts[:1], return_tensors="pt")).logits
        hidden = model.base_model(**tokenizer(texts[:1], return_tensors="pt")).last_hidden_state
        expected = model.classifier(hidden.mean(dim=1))
    assert torch.allclose(padded[0], alone[0], atol=1e-5)  # padding does not leak in
    assert torch.allclose(alone, expected, atol=1e-5)
    with pytest.raises(PlanError, match="pooling must be one of"):
        Plan(pooling="max").validate()


def test_head_only_with_mean_pooling_trains_only_the_classifier(
    tiny_model, sentiment_csv, tmp_path
):
    data = inspect_data(sentiment_csv).to_dict()
    plan = Plan(
        base_model=str(tiny_model),
        max_length=32,
        freezing="head_only",
        pooling="mean",
        early_stopping_patience=0,
        **TINY_PLAN,
    ).to_dict()
    model = recipe.build_model(plan, data["labels"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}
    report = recipe.train_and_evaluate(plan, data, tmp_path / "run")
    losses = [loss for _, loss in report["loss_curve"]]
    assert losses[-1] < losses[0]


def test_f1_of_the_named_class_is_the_metric_end_to_end(tiny_model, binary_data, tmp_path):
    plan = Plan(
        base_model=str(tiny_model),
        max_length=32,
        metric="f1",
        positive_label="positive",
        **TINY_PLAN,
    ).to_dict()
    report = recipe.train_and_evaluate(plan, binary_data, tmp_path / "run")
    test = report["test"]
    assert test["f1"] == test["per_class"]["positive"]["f1"]
    assert report["metric"] == "f1"
    assert recipe.headline(report)["test_f1_positive"] == test["f1"]
    with pytest.raises(PlanError, match="needs positive_label"):
        Plan(metric="f1").validate()
    bad = {**plan, "positive_label": "nope"}
    with pytest.raises(ValueError, match="positive_label 'nope'"):
        recipe.train_and_evaluate(bad, binary_data, tmp_path / "bad")


def test_the_baseline_scores_the_named_class():
    rows = sentiment_rows(40, seed=7)
    texts = [t for t, _ in rows]
    labels = ["positive" if y == "positive" else "not_positive" for _, y in rows]
    out = run_baseline({"train": (texts, labels)}, "f1", positive="positive", time_budget_s=20)
    assert out["metric"] == "f1" and out["positive_label"] == "positive"
    assert out["majority"]["cv_mean"] == 0.0  # the majority class is 'not_positive'
    assert out["tfidf_lr"]["cv_mean"] > 0.5
    with pytest.raises(ValueError):
        run_baseline({"train": (texts, labels)}, "f1")


def test_bf16_precision_trains_on_the_cpu(tiny_model, sentiment_csv, tmp_path):
    data = inspect_data(sentiment_csv).to_dict()
    plan = Plan(base_model=str(tiny_model), max_length=32, precision="bf16", **TINY_PLAN)
    report = recipe.train_and_evaluate(plan.to_dict(), data, tmp_path / "run")
    losses = [loss for _, loss in report["loss_curve"]]
    assert losses[-1] < losses[0]
    with pytest.raises(PlanError, match="precision must be one of"):
        Plan(precision="int8").validate()


def test_gpus_are_read_with_their_compute_capability(monkeypatch):
    monkeypatch.setattr(hardware.shutil, "which", lambda name: "/usr/bin/nvidia-smi")

    def fake_run(cmd, **kwargs):
        if "compute_cap" in cmd[1]:
            return subprocess.CompletedProcess(cmd, 0, "NVIDIA A100-SXM4-80GB, 81920, 8.0\n", "")
        raise AssertionError("the longer query comes first")

    monkeypatch.setattr(hardware.subprocess, "run", fake_run)
    (gpu,) = hardware._gpus()
    assert (gpu.name, gpu.memory_gb, gpu.compute_capability, gpu.bf16) == (
        "NVIDIA A100-SXM4-80GB",
        80.0,
        8.0,
        True,
    )

    def old_driver(cmd, **kwargs):
        if "compute_cap" in cmd[1]:
            raise subprocess.CalledProcessError(2, cmd)
        return subprocess.CompletedProcess(cmd, 0, "Tesla V100, 16384\n", "")

    monkeypatch.setattr(hardware.subprocess, "run", old_driver)
    (gpu,) = hardware._gpus()
    assert (gpu.memory_gb, gpu.compute_capability, gpu.bf16) == (16.0, 0.0, False)


def test_models_in_the_hub_cache_count_as_here(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    snapshot = tmp_path / "models--roberta-base" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert hardware.models_on_disk(["roberta-base", "bert-base-uncased"]) == ("roberta-base",)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hardware.hub_reachable.cache_clear()
    assert hardware.hub_reachable() is False
    hardware.hub_reachable.cache_clear()


def test_text_traits_spot_tweets_and_foreign_scripts():
    tweets = text_traits(["@user so happy #blessed", "@user no", "plain words here", "ok"])
    assert (tweets["mentions"], tweets["hashtags"], tweets["links"]) == (0.5, 0.25, 0.0)
    assert text_traits(["Привет мир", "hello"])["non_ascii_letters"] > 0.5
    assert text_traits([]) == {}


def test_limits_said_in_the_chat_plan_again(tmp_path, sentiment_csv):
    planner = Planner(tmp_path / "runs")
    planner.handle(f"sentiment: {sentiment_csv}")
    planner.handle("")
    assert planner.state.stage == "plan" and planner.state.plan["trials"] == 0
    replies = planner.handle("search for 20 minutes")
    text = "\n".join(r.text for r in replies)
    assert "Noted: time budget 20 min" in text
    assert planner.state.constraints == {"time_budget_min": 20.0}
    assert planner.state.plan["trials"] >= 5
    assert "- **Search:** " in text and "trials" in text
    answer = "\n".join(r.text for r in planner.handle("why this search?"))
    assert "Optuna" in answer and "Source:" in answer
    replies = planner.handle("no class weights, 2 trials")
    assert planner.state.plan["class_weights"] is False and planner.state.plan["trials"] == 2
    rows = dict((name, value) for name, _, value in plan_rows(planner.state.plan))
    assert rows["trials"] == "2 trials" and rows["class_weights"] == "off"

    replies = planner.handle("random batches, validation sample 40")
    assert planner.state.plan["sampling"] == "random" and planner.state.plan["eval_rows"] == 40
    rows = dict((name, value) for name, _, value in plan_rows(planner.state.plan))
    assert rows["sampling"] == "shuffled rows"
    assert rows["eval_rows"] == "a 40-row validation sample"
    answer = "\n".join(r.text for r in planner.handle("why this batch order?"))
    assert "similar length" in answer and "Source:" in answer
