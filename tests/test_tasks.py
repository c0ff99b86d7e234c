"""Multi-label classification and regression through every stage: reading the labels, the
profile, the baseline, the plan, training, the report, the export that reproduces it, and
predicting with the saved model."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import tunesmith
from tiny import scored_rows, tagged_rows, tagged_sentences, write_conll, write_rows_csv
from tiny_llm import make_tiny_llama, write_instruction_jsonl

from assistant.planner import task_from_words
from assistant.store import SessionStore
from tuning_core import recipe
from tuning_core.baseline import run_baseline
from tuning_core.data import inspect_data, label_list_format
from tuning_core.errors import DatasetError
from tuning_core.judge import judge, judgement_text
from tuning_core.plan import Plan
from tuning_core.profile import profile_rows

# ---------------------------------------------------------------- metrics, by hand


def test_regression_metrics_match_hand_computed_values():
    truth, predicted = [1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.0, 5.0]
    m = recipe.regression_metrics(truth, predicted)
    assert m["mse"] == pytest.approx((0.25 + 0 + 1 + 1) / 4)
    assert m["mae"] == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    # Pearson by hand: means 2.5 and 2.625
    dx = [-1.5, -0.5, 0.5, 1.5]
    dy = [-1.125, -0.625, -0.625, 2.375]
    r = sum(a * b for a, b in zip(dx, dy, strict=True)) / (
        sum(a * a for a in dx) ** 0.5 * sum(b * b for b in dy) ** 0.5
    )
    assert m["pearson"] == round(r, 4)
    # ranks of the predictions: 1, 2.5, 2.5, 4 (a tie shares its ranks)
    assert recipe._ranks(predicted) == [1.0, 2.5, 2.5, 4.0]
    assert m["r2"] == round(1 - (2.25 / 4) / 1.25, 4)
    assert recipe.regression_metrics([1.0, 1.0], [0.0, 2.0])["pearson"] == 0.0  # constant truth


def test_multilabel_metrics_and_threshold_tuning():
    labels = ["a", "b", "c"]
    truth = [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]]
    predicted = [[1, 0, 0], [1, 0, 1], [0, 1, 0], [0, 0, 0]]
    m = recipe.multilabel_metrics(truth, predicted, labels)
    # tp 3, fp 1 (c in row 2), fn 1 (b in row 2)
    assert m["micro_f1"] == 0.75
    # per label F1: a 1.0, b 2/3; c never true, so macro-F1 averages a and b
    assert m["per_class"]["b"]["f1"] == round(2 / 3, 4)
    assert m["macro_f1"] == round((1 + 2 / 3) / 2, 4)
    assert m["exact_match"] == 0.75
    # a label that only scores 0.3 when present gets a threshold below 0.5
    probs = [[0.3, 0.9], [0.1, 0.8], [0.32, 0.2], [0.05, 0.1]]
    cuts = recipe.tune_thresholds([[1, 1], [0, 1], [1, 0], [0, 0]], probs)
    assert cuts[0] <= 0.3 and cuts[0] > 0.1
    assert 0.2 < cuts[1] <= 0.8
    assert recipe.tune_thresholds([[0], [0]], [[0.7], [0.2]]) == [0.5]  # nothing to tune on


# ---------------------------------------------------------------- reading the labels


@pytest.fixture(scope="module")
def tag_csv(tmp_path_factory):
    return write_rows_csv(
        tmp_path_factory.mktemp("tags") / "tags.csv", tagged_rows(120, seed=3), label="tags"
    )


@pytest.fixture(scope="module")
def score_csv(tmp_path_factory):
    return write_rows_csv(
        tmp_path_factory.mktemp("scores") / "scores.csv", scored_rows(120, seed=3), label="score"
    )


def test_label_lists_and_scores_are_recognised_from_the_cells(tag_csv, score_csv, tmp_path):
    spec = inspect_data(tag_csv)
    assert spec.task == "multi_label_classification" and spec.label_format == "json"
    assert spec.labels == ["gloomy", "travel", "upbeat"]
    assert "several labels" in spec.reasons["task"]
    piped = write_rows_csv(tmp_path / "piped.csv", tagged_rows(60, style="|"), label="tags")
    assert inspect_data(piped).label_format == "|"
    spec = inspect_data(score_csv)
    assert spec.task == "regression" and spec.labels == []
    assert "scores" in spec.reasons["task"]
    # asked for: the data is read that way, or refused with the reason
    assert inspect_data(score_csv, task="regression").task == "regression"
    with pytest.raises(DatasetError, match="not numbers"):
        inspect_data(tag_csv, task="regression")
    # ordinary class names stay single-label
    assert label_list_format(["positive", "negative", "neutral"] * 10) is None
    assert label_list_format(["a, b", "b", "a"] * 10) == ","


def test_bad_label_lists_name_the_row(tmp_path):
    rows = [(f"text number {i}", '["a", "b"]') for i in range(30)] + [("broken", '["a", ')]
    path = write_rows_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DatasetError, match=r"row 31: label cell .* is not a JSON list"):
        inspect_data(path, task="multi_label_classification")


def test_carved_splits_keep_every_label_and_the_spread_of_scores(tag_csv, score_csv):
    splits = recipe.load_splits(inspect_data(tag_csv).to_dict())
    for name in ("validation", "test"):
        seen = {x for y in splits[name][1] for x in recipe.parse_label_list(y)}
        assert seen == {"gloomy", "travel", "upbeat"}
    splits = recipe.load_splits(inspect_data(score_csv).to_dict())
    train = sorted(float(y) for y in splits["train"][1])
    test = [float(y) for y in splits["test"][1]]
    # stratified by fifths of the targets: the test rows reach both tails
    assert min(test) < train[len(train) // 5] and max(test) > train[4 * len(train) // 5]


def test_profile_and_baseline_speak_the_task(tag_csv, score_csv, tiny_model):
    spec = inspect_data(tag_csv)
    splits = recipe.load_splits(spec.to_dict())
    profile = profile_rows(splits, str(tiny_model), task=spec.task, label_format="json")
    train_sets = [recipe.parse_label_list(y) for y in splits["train"][1]]
    assert profile.label_counts["travel"] == sum("travel" in row for row in train_sets)
    assert profile.label_stats["labels_per_row"] == round(
        sum(map(len, train_sets)) / len(train_sets), 4
    )
    assert "labels per row" in profile.labels_line()
    assert not any(f["id"] in ("rare_labels", "class_imbalance") for f in profile.findings)
    base = run_baseline(splits, "micro_f1", task=spec.task, label_format="json")
    assert base["tfidf_lr"]["cv_mean"] > base["majority"]["cv_mean"]

    spec = inspect_data(score_csv)
    splits = recipe.load_splits(spec.to_dict())
    profile = profile_rows(splits, str(tiny_model), task="regression")
    values = sorted(float(y) for y in splits["train"][1])
    assert profile.label_stats["min"] == round(values[0], 4)
    assert profile.label_counts == {} and "Targets (train)" in profile.labels_line()
    base = run_baseline(splits, "pearson", task="regression")
    assert base["majority"]["cv_mean"] == 0.0  # a constant has no correlation
    assert base["tfidf_lr"]["cv_mean"] > 0.3


def test_plan_refuses_options_the_task_has_no_use_for():
    assert Plan(task="regression", metric="pearson").problems() == []
    problems = Plan(task="regression", metric="macro_f1").problems()
    assert any("does not score regression" in p for p in problems)
    problems = Plan(task="multi_label_classification", metric="micro_f1", label_smoothing=0.1)
    assert any("single-label" in p for p in problems.problems())


def test_the_task_is_recognised_from_words():
    assert task_from_words("tag these posts, several labels per post") == (
        "multi_label_classification"
    )
    assert task_from_words("it's a multi-label problem") == "multi_label_classification"
    assert task_from_words("predict the rating of each review") == "regression"
    assert task_from_words("regression on helpfulness") == "regression"
    assert task_from_words("one label per text") == "single_label_classification"
    assert task_from_words("classify tweets by emotion") is None  # the data decides
    assert task_from_words("find the named entities in these reports") == "token_classification"
    assert task_from_words("teach a small language model to answer") == "instruction_tuning"
    assert task_from_words("instruction tuning on my support chats") == "instruction_tuning"
    # a language model named as the tool is not instruction tuning
    assert task_from_words("fine-tune a language model to classify tweets") is None


def test_the_verdict_reads_each_task():
    report = {
        "task": "regression",
        "metric": "mae",
        "test": {"mae": 0.5, "mse": 0.4, "pearson": 0.8, "spearman": 0.7, "r2": 0.6, "n": 10},
        "validation": {"mae": 0.45},
        "train_fit": {"mae": 0.1, "n": 40},
    }
    verdict = judge(report, {"majority": 1.0, "tfidf_lr": 0.4})
    # lower is better: 0.5 beats the mean (1.0) by 0.5 and loses to ridge (0.4) by 0.1
    assert verdict["deltas"] == {"majority": 0.5, "tfidf_lr": -0.1}
    assert verdict["fit_gap"] == 0.35 and verdict["overfitting"]
    text = judgement_text(verdict)
    assert "mean absolute error 0.5000" in text and "ridge regression" in text
    assert "Confusion matrix" not in text


# ---------------------------------------------------------------- the whole path


def verify_bundle(bundle: Path, out: Path) -> None:
    """The bundle's `train.py --verify` reruns and matches its recorded metrics (the CPU)."""
    rerun = subprocess.run(
        [sys.executable, "train.py", "--verify", "--out", str(out)],
        cwd=bundle,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "verified: the rerun matches the record" in rerun.stdout


def run_chat(home, *turns):
    out = tunesmith("chat", "--headless", stdin="\n".join(turns) + "\n", home=home, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.parametrize(
    "kind, words, settings, metric",
    [
        (
            "tags",
            "tag these posts with any of their topics",
            "learning rate 0.003, 12 epochs",
            "micro_f1",
        ),
        ("scores", "predict the score of each post", "learning rate 0.001, 6 epochs", "pearson"),
        ("ner", "find the named entities", "learning rate 0.003, 6 epochs", "entity_f1"),
    ],
)
def test_headless_chat_trains_exports_and_reproduces_each_task(
    kind, words, settings, metric, tag_csv, score_csv, tiny_model, tmp_path
):
    data = {"tags": tag_csv, "scores": score_csv}.get(kind) or write_conll(
        tmp_path / "ner.conll", tagged_sentences(120, seed=3)
    )
    home = tmp_path / "home"
    bundle = tmp_path / "bundle"
    stdout = run_chat(home, f"{words}: {data}", f"use model {tiny_model}", settings, "")
    task = {"tags": "multi-label classification", "scores": "regression"}.get(
        kind, "token classification"
    )
    assert f"- Task: {task}" in stdout
    assert "**Results**" in stdout
    (session_id,) = [s["id"] for s in SessionStore(home).list()]
    state = SessionStore(home).open(session_id).load_state()
    report = json.loads((Path(state["run_dir"]) / "report.json").read_text())
    assert report["task"] == state["plan"]["task"] and report["metric"] == metric
    curve = [loss for _step, loss in report["loss_curve"]]
    assert sum(curve[-3:]) / 3 < sum(curve[:3]) / 3  # it learned
    assert report["judge"]["deltas"]["majority"] > 0  # better than the constant answer
    if kind == "tags":
        assert set(report["test"]["thresholds"]) == {"gloomy", "travel", "upbeat"}
        assert "Thresholds per label" in stdout
    elif kind == "scores":
        assert "furthest from their targets" in stdout
    else:
        assert set(report["test"]["per_class"]) == {"PER", "LOC"}
        assert "entity F1" in stdout
    # the export reproduces the metrics exactly on the CPU
    out = tunesmith("export", session_id, "--out", str(bundle), home=home)
    assert out.returncode == 0, out.stderr[-2000:]
    card = (bundle / "model_card.md").read_text().lower()
    assert {"scores": "regressor", "tags": "multi-label", "ner": "token classifier"}[kind] in card
    assert (bundle / "tokens.py").exists() == (kind == "ner")
    verify_bundle(bundle, tmp_path / "rerun")
    # predicting with the saved model speaks the task too
    texts = tmp_path / "texts.txt"
    texts.write_text("love great good\nhate awful terrible\n")
    out = tunesmith("predict", session_id, "--input", str(texts), home=home)
    assert out.returncode == 0, out.stderr[-2000:]
    header = out.stdout.splitlines()[0]
    assert {"scores": "score", "tags": "p_upbeat", "ner": "tags"}[kind] in header


def test_a_search_minimises_an_error_metric(score_csv, tiny_model, tmp_path):
    """With mean absolute error as the metric, the best trial is the one with the lowest."""
    from tuning_core import search

    space = {"learning_rate": {"low": 1e-4, "high": 3e-3, "log": True}}
    plan = Plan(
        task="regression",
        metric="mae",
        base_model=str(tiny_model),
        max_length=32,
        learning_rate=1e-3,
        epochs=2.0,
        search_space=space,
        trials=3,
    ).validate()
    data = inspect_data(score_csv).to_dict()
    result = search.run_search(plan.to_dict(), data, tmp_path, pruner="none")
    values = [row["value"] for row in result["trials"] if row["state"] == "complete"]
    assert len(values) == 3 and all(v > 0 for v in values)  # errors, shown un-negated
    assert result["best"]["value"] == pytest.approx(min(values), abs=1e-4)
    report = json.loads((Path(result["best"]["run_dir"]) / "report.json").read_text())
    assert report["validation"]["mae"] == pytest.approx(min(values), abs=1e-4)


def test_instruction_files_are_recognised_in_each_layout(tmp_path):
    for style in ("prompt_response", "messages"):
        path = write_instruction_jsonl(tmp_path / f"{style}.jsonl", 40, style=style)
        spec = inspect_data(path)
        assert spec.task == "instruction_tuning" and spec.labels == []
        texts, replies = recipe.load_splits(spec.to_dict())["train"]
        messages = recipe.conversation(texts[0], replies[0])
        assert messages[-1]["role"] == "assistant" and messages[-2]["role"] == "user"
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text(
        "".join(
            json.dumps({"instruction": f"Say {i}.", "input": "", "output": f"{i}"}) + "\n"
            for i in range(30)
        )
    )
    assert "instruction/output" in inspect_data(alpaca).reasons["task"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(alpaca.read_text() + '{"prompt": "no reply"}\n')
    with pytest.raises(DatasetError, match=r"broken\.jsonl.*31"):
        inspect_data(broken)


def test_token_files_are_read_with_their_scheme_and_broken_tags_listed(tmp_path):
    sentences = tagged_sentences(60, seed=5)
    sentences[3] = (sentences[3][0], ["I-LOC"] + sentences[3][1][1:])
    spec = inspect_data(write_conll(tmp_path / "ner_train.conll", sentences))
    assert spec.task == "token_classification" and spec.label_format == "BIO"
    assert "I-LOC" in spec.labels and "O" in spec.labels
    (warning,) = spec.warnings
    assert "1 broken BIO tag sequence(s)" in warning and "sentence 4, token 1" in warning
    # JSON lines with token and tag lists, and a test file beside the training file
    rows = [json.dumps({"tokens": t, "ner_tags": y}) for t, y in tagged_sentences(40, seed=6)]
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.jsonl").write_text("\n".join(rows[:10]) + "\n")
    spec = inspect_data(tmp_path / "train.jsonl")
    assert spec.task == "token_classification" and spec.readers["train"]["format"] == "token_jsonl"
    assert spec.files["test"].endswith("test.jsonl")
    splits = recipe.load_splits(spec.to_dict())
    assert splits["test"][0][0] == " ".join(json.loads(rows[0])["tokens"])
    # a file that is not token data, when token classification was asked for
    csv_file = write_rows_csv(tmp_path / "t.csv", scored_rows(30))
    with pytest.raises(DatasetError, match="is not token-classification data"):
        inspect_data(csv_file, task="token_classification")


def test_the_token_baseline_tags_each_word_as_it_was_most_often_tagged():
    from tuning_core.baseline import _word_tag_model

    model = _word_tag_model(["Paris is big", "paris again", "Anna in Paris"],
                            ["B-LOC O O", "B-PER O", "B-PER O B-LOC"])  # fmt: skip
    assert model["paris"] == "B-LOC" and model["anna"] == "B-PER"
    scores = recipe.token_metrics([["B-LOC", "O"], ["B-PER", "O"]], [["B-LOC", "O"], ["O", "O"]])
    assert scores["entity_f1"] == round(2 * 1.0 * 0.5 / 1.5, 4)
    assert scores["per_class"]["PER"]["recall"] == 0.0


def test_instruction_tuning_through_the_chat_export_and_predict(tmp_path):
    """A tiny Llama learns replies with LoRA: the reading shows what is masked, the report has
    perplexity against the base model and both models' replies, the bundle reproduces it, the
    merged model exports, and predict writes replies."""
    llama = make_tiny_llama(tmp_path / "llama")
    data = write_instruction_jsonl(tmp_path / "sft.jsonl", 100, seed=2, style="messages")
    home = tmp_path / "home"
    stdout = run_chat(
        home,
        f"teach a small language model to answer: {data}",
        f"use model {llama}",
        "learning rate 0.01, 4 epochs",
        "",
    )
    assert "- Task: instruction tuning" in stdout and "**Results**" in stdout
    (session_id,) = [s["id"] for s in SessionStore(home).list()]
    state = SessionStore(home).open(session_id).load_state()
    assert "[masked: " in state["profile"]["label_stats"]["masked_example"]
    assert state["plan"]["freezing"] == "lora" and state["plan"]["metric"] == "perplexity"
    report = json.loads((Path(state["run_dir"]) / "report.json").read_text())
    test = report["test"]
    assert test["perplexity"] < test["base_perplexity"] / 10  # it learned the replies
    assert report["judge"]["deltas"]["tfidf_lr"] > 0  # better than the base model (lower)
    assert len(test["generations"]) == 5 and {"base", "tuned", "reference"} <= set(
        test["generations"][0]
    )
    assert "Replies to 5 held-out prompts" in stdout
    bundle = tmp_path / "bundle"
    out = tunesmith("export", session_id, "--out", str(bundle), "--model", "merged", home=home)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (bundle / "instruct.py").exists() and (bundle / "model" / "model.safetensors").exists()
    assert "text-generation" in (bundle / "model_card.md").read_text()
    verify_bundle(bundle, tmp_path / "rerun")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Capital of Japan?\n")
    out = tunesmith("predict", session_id, "--input", str(prompts), home=home)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[0] == "text,reply"


def test_qlora_is_refused_clearly_without_a_cuda_gpu(tmp_path):
    """4-bit loading is planned only where CUDA and bitsandbytes are; asked for here, it is
    refused in one line before anything trains."""
    llama = make_tiny_llama(tmp_path / "llama")
    plan = Plan(task="instruction_tuning", metric="perplexity", base_model=str(llama))
    assert plan.replace(freezing="lora", quantization="4bit").problems() == []
    unfit = dataclasses.replace(plan, freezing="none", quantization="4bit")
    assert any("QLoRA" in p for p in unfit.problems())
    with pytest.raises(ValueError, match="needs a CUDA GPU and the bitsandbytes package"):
        recipe.build_model(plan.replace(freezing="lora", quantization="4bit").to_dict(), [])
    # in the chat: refused at once, the plan unchanged
    from assistant.planner import Planner

    planner = Planner(tmp_path / "runs")
    data = write_instruction_jsonl(tmp_path / "sft.jsonl", 40)
    planner.handle(f"instruction tuning: {data}")
    planner.handle(f"use model {llama}")
    replies = planner.handle("use qlora")
    assert replies[0].kind == "error" and "needs a CUDA GPU" in replies[0].text
    assert planner.state.plan["quantization"] == "none"


@pytest.mark.parametrize("kind", ["tags", "scores", "ner", "sft"])
def test_each_task_stopped_mid_epoch_and_resumed_gives_the_same_metrics(
    kind, tag_csv, score_csv, tiny_model, tmp_path, one_thread
):
    """Same data, plan and seed: the same metrics bit for bit, also after a stop in the middle
    of an epoch and a resume from its checkpoint (the CPU)."""
    base = str(tiny_model)
    if kind == "sft":
        base = str(make_tiny_llama(tmp_path / "llama"))
        data = inspect_data(write_instruction_jsonl(tmp_path / "sft.jsonl", 60, seed=4))
    elif kind == "ner":
        data = inspect_data(write_conll(tmp_path / "ner.conll", tagged_sentences(80, seed=4)))
    else:
        data = inspect_data(tag_csv if kind == "tags" else score_csv)
    metric = recipe.METRICS[data.task][0]
    plan = Plan(
        task=data.task,
        metric=metric,
        base_model=base,
        max_length=48,
        learning_rate=3e-3,
        epochs=3.0,
        early_stopping_patience=0,
        freezing="lora" if kind == "sft" else "none",
    ).to_dict()
    whole = recipe.train_and_evaluate(plan, data.to_dict(), tmp_path / "whole")
    steps = whole["global_step"]
    calls = [0]

    def requested() -> bool:
        calls[0] += 1
        return calls[0] >= steps // 2 + 1  # past the middle, inside an epoch

    stop = recipe.stop_callback(requested)
    run_dir = tmp_path / "stopped"
    report = recipe.train_and_evaluate(
        plan, data.to_dict(), run_dir, callbacks=[stop], interrupted=lambda: stop.stopped
    )
    assert report["interrupted"] and report["global_step"] < steps
    resumed = recipe.train_and_evaluate(plan, data.to_dict(), run_dir, resume=True)
    for key in ("validation", "test", "loss_curve", "global_step"):
        assert resumed[key] == whole[key], key


def test_a_fix_keeps_token_and_instruction_data_in_their_own_format(tmp_path):
    """`drop duplicates` writes the fixed version as CoNLL or chat JSON lines, which read back
    as the same task with the duplicates gone."""
    from assistant.planner import Planner

    sentences = tagged_sentences(60, seed=7)
    sentences += sentences[:5]  # five repeats
    conll = write_conll(tmp_path / "ner.conll", sentences)
    sft = write_instruction_jsonl(tmp_path / "sft.jsonl", 60, seed=7)
    for path, task, suffix in ((conll, "token_classification", ".conll"),
                               (sft, "instruction_tuning", ".jsonl")):  # fmt: skip
        planner = Planner(tmp_path / task / "runs")
        planner.handle(str(path))
        before = planner.state.profile["rows"]["train"]
        planner.handle("drop duplicates")
        planner.handle("yes")
        spec = planner.state.spec
        assert spec["task"] == task and spec["files"]["train"].endswith(suffix)
        assert planner.state.data_versions and planner.state.profile["rows"]["train"] < before
        assert planner.state.profile["exact_duplicates"] == 0
        rows = recipe.load_splits(spec)["train"]
        assert len(rows[0]) == planner.state.profile["rows"]["train"]


def test_the_task_can_be_changed_in_words_while_reviewing(tag_csv, score_csv, tmp_path):
    from assistant.planner import Planner

    planner = Planner(tmp_path / "runs")
    planner.handle(str(tag_csv))
    assert planner.state.spec["task"] == "multi_label_classification"
    replies = planner.handle("no, just one label per text")
    assert planner.state.spec["task"] == "single_label_classification"
    assert "- Task: classification (one label per text): you asked" in replies[0].text
    planner.handle("it has several labels per text")
    assert planner.state.spec["task"] == "multi_label_classification"
    assert planner.state.plan["metric"] == "micro_f1"
    # a reading that cannot be: refused in one line, the file still read as it was
    planner = Planner(tmp_path / "runs2")
    planner.handle(str(score_csv))
    replies = planner.handle("one label per text")
    assert replies[0].kind == "error" and "look like scores" in replies[0].text
    assert planner.state.spec["task"] == "regression" and planner.state.task_asked is None


@pytest.mark.parametrize("freezing", ["none", "lora"])
def test_a_regressor_predicts_in_the_targets_units(freezing, tiny_model, tmp_path):
    """The model learns standardised targets; its saved config (and, for a LoRA adapter, whose
    folder has no model config, a file beside it) keeps their mean and std, so predictions on
    the test rows, far from zero here, give back the run's test error."""
    from tuning_core.predict import load_classifier, predict

    rows = [(text, f"{float(score) + 50:.3f}") for text, score in scored_rows(120, seed=5)]
    data = inspect_data(write_rows_csv(tmp_path / "scores.csv", rows, label="score"))
    assert data.task == "regression"
    plan = Plan(
        task="regression",
        metric="mae",
        base_model=str(tiny_model),
        max_length=32,
        learning_rate=3e-3,
        epochs=2.0,
        freezing=freezing,
    ).to_dict()
    report = recipe.train_and_evaluate(plan, data.to_dict(), tmp_path / "run")
    model, tokenizer, labels = load_classifier(tmp_path / "run" / "model", None, plan)
    texts, truth = recipe.load_splits(data.to_dict())["test"]
    out = predict(model, tokenizer, labels, texts, max_length=32)
    errors = [abs(float(r["score"]) - float(y)) for r, y in zip(out, truth, strict=True)]
    assert report["test"]["mae"] < 10  # not the ~50 of predicting standardised scores
    assert sum(errors) / len(errors) == pytest.approx(report["test"]["mae"], abs=1e-3)
