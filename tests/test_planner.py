"""The conversation without a front end: stages, defaults, adjustments, questions, commands."""

import pytest

from assistant.adjust import parse_adjustment
from assistant.planner import Planner, demo_data_path


@pytest.fixture
def planner(tmp_path):
    return Planner(tmp_path / "runs")


def say(planner, text):
    replies = planner.handle(text)
    assert replies, text
    return "\n\n".join(r.text for r in replies), replies


def test_first_message_with_task_and_file_skips_to_the_plan(planner, sentiment_csv):
    text, replies = say(planner, f"classify these tweets by emotion: {sentiment_csv}")
    assert planner.state.stage == "plan"
    assert "Text column: `text`" in text and "Label column: `label`" in text
    assert "- **Learning rate:** 5e-05 — " in text
    assert replies[-1].kind == "plan"
    assert planner.state.history == ["task", "data"]


def test_blank_answers_take_the_defaults(planner):
    say(planner, "")
    assert planner.state.stage == "data"
    text, _ = say(planner, "")
    assert planner.state.spec["files"]["train"] == str(demo_data_path())
    assert planner.state.profile["rows"]["train"] == 360 - 36 - 36 + 3  # stratified carve rounding
    assert "positive" in text


def test_plain_adjustments_change_the_plan(planner, sentiment_csv, tiny_model):
    say(planner, f"sentiment: {sentiment_csv}")
    say(planner, f"use model {tiny_model}")
    assert planner.state.plan["base_model"] == str(tiny_model)
    text, _ = say(planner, "3 epochs and learning rate 2e-5")
    assert planner.state.plan["epochs"] == 3 and planner.state.plan["learning_rate"] == 2e-5
    assert "you asked for it" in text
    say(planner, "freeze all but the last one layer")
    assert (planner.state.plan["freezing"], planner.state.plan["freeze_layers"]) == ("bottom_k", 1)
    say(planner, "use LoRA rank 4")
    plan = planner.state.plan
    assert (plan["freezing"], plan["lora_rank"], plan["lora_alpha"]) == ("lora", 4, 8)
    assert set(planner.state.changed) >= {"epochs", "learning_rate", "freezing", "lora_rank"}


def test_bad_values_are_refused_and_the_plan_kept(planner, sentiment_csv):
    say(planner, f"sentiment: {sentiment_csv}")
    before = dict(planner.state.plan)
    text, replies = say(planner, "learning rate -1")
    assert replies[0].kind == "error" and "learning_rate must be in (0, 1)" in text
    text, replies = say(planner, "epochs a lot")
    assert replies[0].kind == "error" and "give a number" in text
    assert planner.state.plan == before


def test_questions_are_answered_from_the_notes(planner, sentiment_csv):
    say(planner, f"sentiment: {sentiment_csv}")
    text, _ = say(planner, "why LoRA?")
    assert planner.state.plan["freezing"] == "none"  # a question changes nothing
    assert "LoRA" in text and "Hu et al. 2021" in text
    text, _ = say(planner, "why this learning rate?")
    assert "Learning rate: 5e-05" in text and "Source:" in text


def test_commands_and_unknown_input(planner, sentiment_csv):
    assert "/export DIR" in say(planner, "/help")[0]
    assert "Stage:** task" in say(planner, "/status")[0]
    assert say(planner, "/frobnicate")[1][0].kind == "error"
    say(planner, f"sentiment: {sentiment_csv}")
    assert "didn't catch" in say(planner, "purple monkey dishwasher")[0]
    assert "no finished run" in say(planner, "/export /tmp/x")[0]
    say(planner, "/back")
    assert planner.state.stage == "data"
    text, replies = say(planner, "/no/such/file.csv")
    assert replies[0].kind == "error" and "No such file" in text
    assert planner.state.stage == "data"


def test_other_tasks_are_declined_politely(planner):
    text, _ = say(planner, "I want named entity recognition on my CoNLL files")
    assert "not supported yet" in text and planner.state.stage == "task"


def test_column_remap_in_plain_words(planner, tmp_path):
    path = tmp_path / "d.csv"
    rows = "\n".join(f"note {i},{['x', 'y'][i % 2]},tweet number {i} says words" for i in range(30))
    path.write_text("a,category,body\n" + rows + "\n")
    text, _ = say(planner, f"classify: {path}")
    assert planner.state.spec["text_column"] == "body"
    say(planner, "the label is in column 'a'")
    assert planner.state.spec["label_column"] == "a"
    text, replies = say(planner, "the label is in column 'nope'")
    assert replies[0].kind == "error" and "no column 'nope'" in text


@pytest.mark.parametrize(
    "text,expected",
    [
        ("3 epochs", {"epochs": 3.0}),
        ("learning rate 2e-5", {"learning_rate": 2e-5}),
        ("lr=0.001 and batch size 32", {"learning_rate": 0.001, "batch_size": 32}),
        ("use LoRA rank 8", {"freezing": "lora", "lora_rank": 8}),
        ("head only", {"freezing": "head_only"}),
        ("freeze the bottom 4 layers", {"freezing": "bottom_k", "freeze_layers": 4}),
        ("warmup 10%", {"warmup": 0.1}),
        ("no early stopping", {"early_stopping_patience": 0}),
        ("label smoothing 0.1 and dropout 0.2", {"label_smoothing": 0.1, "dropout": 0.2}),
    ],
)
def test_adjustment_parser(text, expected):
    assert parse_adjustment(text).changes == expected
