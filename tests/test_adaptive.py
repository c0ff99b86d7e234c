"""Adaptive pretraining: masked-LM training of the base encoder on the task's texts before
fine-tuning, as a plan option that the chat, the runner, the report and the export carry."""

import json
from pathlib import Path

import pytest
from test_cli import tunesmith
from test_tasks import verify_bundle
from tiny import scored_rows, write_sentiment_csv

from assistant.store import SessionStore
from tuning_core import recipe
from tuning_core.data import inspect_data
from tuning_core.plan import Plan

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def posts(tmp_path_factory):
    return write_sentiment_csv(tmp_path_factory.mktemp("adapt") / "posts.csv", 30)


def plan_for(tiny_model, **changes) -> dict:
    return Plan(
        base_model=str(tiny_model),
        max_length=32,
        learning_rate=3e-3,
        epochs=3.0,
        early_stopping_patience=0,
        adapt_epochs=2.0,
        adapt_learning_rate=1e-3,
        **changes,
    ).to_dict()


def test_the_stage_trains_the_encoder_keeps_the_pooler_and_reports(posts, tiny_model, tmp_path):
    from safetensors.torch import load_file

    extra = tmp_path / "more.txt"
    extra.write_text("\n".join(text for text, _ in scored_rows(40, seed=9)) + "\n")
    data = {**inspect_data(posts).to_dict(), "unlabelled": str(extra)}
    report = recipe.train_and_evaluate(plan_for(tiny_model), data, tmp_path / "run")
    stage = report["adaptive_pretraining"]
    train_rows = len(recipe.load_splits(data)["train"][0])
    assert stage["texts"] == train_rows + 40 and stage["unlabelled"] == 40
    assert stage["loss_last"] < stage["loss_first"]  # the masked-LM loss fell
    before = load_file(str(tiny_model / "model.safetensors"))
    after = load_file(str(tmp_path / "run" / recipe.ADAPTED / "model.safetensors"))
    pooler = [k for k in before if "pooler" in k]
    assert pooler and all((before[k] == after[k]).all() for k in pooler)  # kept as it was
    layer = next(k for k in before if "encoder.layer.0" in k and k.endswith("weight"))
    assert not (before[layer] == after[layer]).all()  # the encoder moved
    assert not (tmp_path / "run" / "adapt-checkpoints").exists()  # cleaned up once done


def test_stopped_during_the_stage_and_resumed_it_ends_as_an_uninterrupted_run(
    posts, tiny_model, tmp_path
):
    data = inspect_data(posts).to_dict()
    plan = plan_for(tiny_model)
    whole = recipe.train_and_evaluate(plan, data, tmp_path / "whole")
    calls = [0]

    def requested() -> bool:
        calls[0] += 1
        return calls[0] >= 5  # inside the first masked-LM epoch

    stop = recipe.stop_callback(requested)
    run_dir = tmp_path / "stopped"
    report = recipe.train_and_evaluate(
        plan, data, run_dir, callbacks=[stop], interrupted=lambda: stop.stopped
    )
    assert report["interrupted"] and report["stage"] == "adaptive pretraining"
    assert not (run_dir / recipe.ADAPTED).exists()
    resumed = recipe.train_and_evaluate(plan, data, run_dir, resume=True)
    for key in ("validation", "test", "loss_curve"):
        assert resumed[key] == whole[key], key
    assert (
        resumed["adaptive_pretraining"]["loss_last"] == whole["adaptive_pretraining"]["loss_last"]
    )


def test_the_plan_refuses_it_for_instruction_tuning():
    problems = Plan(task="instruction_tuning", metric="perplexity", adapt_epochs=1.0).problems()
    assert any("adaptive pretraining" in p for p in problems)


def test_asked_for_in_the_chat_with_unlabelled_texts_and_reproduced_by_the_bundle(
    posts, tiny_model, tmp_path
):
    extra = tmp_path / "more.txt"
    extra.write_text("\n".join(text for text, _ in scored_rows(30, seed=11)) + "\n")
    home = tmp_path / "home"
    turns = [
        f"classify these posts: {posts}",
        f"use model {tiny_model}",
        f"add unlabelled texts from {extra}",
        "2 epochs of adaptive pretraining, learning rate 0.003, 3 epochs",
        "",
    ]
    out = tunesmith("chat", "--headless", stdin="\n".join(turns) + "\n", home=home)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Added 30 unlabelled texts" in out.stdout
    assert "**Adaptive pretraining: 2 epochs of masked-LM training" in out.stdout
    (session_id,) = [s["id"] for s in SessionStore(home).list()]
    state = SessionStore(home).open(session_id).load_state()
    assert state["plan"]["adapt_epochs"] == 2.0 and state["plan"]["epochs"] == 3.0
    report = json.loads((Path(state["run_dir"]) / "report.json").read_text())
    assert report["adaptive_pretraining"]["unlabelled"] == 30
    bundle = tmp_path / "bundle"
    out = tunesmith("export", session_id, "--out", str(bundle), home=home)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "unlabelled" in (bundle / "train.py").read_text()
    verify_bundle(bundle, tmp_path / "rerun")


def test_the_recommender_leaves_it_off_and_says_what_was_measured(posts, tiny_model):
    from tuning_core.hardware import probe_resources
    from tuning_core.profile import profile_rows
    from tuning_core.recommend import recommend_plan

    spec = inspect_data(posts)
    profile = profile_rows(recipe.load_splits(spec.to_dict()), str(tiny_model))
    assert "split_words" in profile.text_traits and "unknown_tokens" in profile.text_traits
    rec = recommend_plan(spec.task, profile, probe_resources(), {"base_model": str(tiny_model)})
    assert rec.plan.adapt_epochs == 0.0
    reason = rec.reasons["adapt_epochs"]
    assert reason.note == "adaptive-pretraining" and "TweetEval" in reason.text
    assert f"{profile.text_traits['split_words']:.1%}" in reason.text
