"""The conversation without a front end: stages, defaults, adjustments, questions, commands."""

import pytest

from assistant.adjust import parse_adjustment
from assistant.planner import Planner, demo_data_path, same_run_plan


@pytest.fixture
def planner(tmp_path):
    return Planner(tmp_path / "runs")


def say(planner, text):
    replies = planner.handle(text)
    assert replies, text
    return "\n\n".join(r.text for r in replies), replies


def test_first_message_with_task_and_file_skips_to_the_plan(planner, sentiment_csv):
    text, replies = say(planner, f"classify these tweets by emotion: {sentiment_csv}")
    assert planner.state.stage == "review"  # how I read it, then a question
    assert "Text column: `text`" in text and "Label column: `label`" in text
    assert "Did I read it right?" in text
    assert "Baseline to beat" in text
    text, replies = say(planner, "")  # Enter: yes
    assert planner.state.stage == "plan"
    assert "- **Learning rate:** 0.0001 — " in text  # few rows: the small-data rule
    assert replies[-1].kind == "plan"
    assert planner.state.history == ["task", "data", "review"]


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
    assert "Learning rate: 0.0001" in text and "Source:" in text


def test_commands_and_unknown_input(planner, sentiment_csv):
    assert "/export DIR" in say(planner, "/help")[0]
    assert "Stage:** task" in say(planner, "/status")[0]
    assert say(planner, "/frobnicate")[1][0].kind == "error"
    say(planner, f"sentiment: {sentiment_csv}")
    assert (
        "Press **Enter** if I read your data right" in say(planner, "purple monkey dishwasher")[0]
    )
    say(planner, "yes")
    assert "didn't catch" in say(planner, "purple monkey dishwasher")[0]
    assert "no finished run" in say(planner, "/export /tmp/x")[0]
    say(planner, "/back")
    assert planner.state.stage == "review"
    say(planner, "/back")
    assert planner.state.stage == "data"
    text, replies = say(planner, "/no/such/file.csv")
    assert replies[0].kind == "error" and "No such file" in text
    assert planner.state.stage == "data"


def test_other_tasks_are_declined_politely(planner):
    text, _ = say(planner, "fine-tune a chatbot on my instruction data")
    assert "Instruction tuning it is" in text and planner.state.stage == "data"
    planner = Planner(planner.runs_dir)
    text, _ = say(planner, "I want named entity recognition on my CoNLL files")
    assert "Token classification it is" in text and planner.state.stage == "data"
    assert planner.state.task_asked == "token_classification"


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
        ("random batches", {"sampling": "random"}),
        ("shuffled buckets please", {"sampling": "buckets"}),
        ("group by length again", {"sampling": "length"}),
        ("check all the validation rows", {"eval_rows": 0}),
        ("validation sample of 500", {"eval_rows": 500}),
        ("start the output layer from a linear probe", {"head_init": "probe"}),
        ("linear probe first", {"head_init": "probe"}),
        ("random head", {"head_init": "random"}),
        ("zero head", {"head_init": "zeros"}),
    ],
)
def test_adjustment_parser(text, expected):
    assert parse_adjustment(text).changes == expected


def write_messy_csv(path):
    """Duplicates, a conflict, empty rows and a test row leaked into train."""
    rows = [
        (f"clean example number {i} about topic {i % 7}", ["pos", "neg"][i % 2]) for i in range(60)
    ]
    rows += [("the very same text", "pos")] * 3  # exact duplicates
    rows += [("a text with two labels", "pos"), ("a text with two labels", "neg")]  # conflict
    rows += [("", "neg"), ("   ", "pos")]  # empty
    with open(path, "w", newline="", encoding="utf-8") as fh:
        import csv

        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def test_fixes_are_offered_and_applied_only_after_a_yes(tmp_path):
    from tuning_core.recipe import file_sha256

    planner = Planner(tmp_path / "session" / "runs")
    source = write_messy_csv(tmp_path / "messy.csv")
    before = file_sha256(source)
    text, _ = say(planner, f"classify: {source}")
    assert "drop duplicates" in text  # offered
    duplicates = planner.state.profile["exact_duplicates"]
    rows_before = planner.state.profile["rows"]["train"]
    assert duplicates >= 1
    text, _ = say(planner, "drop duplicates")
    assert "Apply it?" in text and planner.state.pending_fix == "drop_exact_duplicates"
    say(planner, "no")
    assert (
        planner.state.data_versions == []
        and planner.state.profile["exact_duplicates"] == duplicates
    )
    say(planner, "drop duplicates")
    text, _ = say(planner, "yes")
    assert "Saved as version v1" in text
    (version,) = planner.state.data_versions
    folder = tmp_path / "session" / "data" / "v1"
    assert version["dir"] == str(folder) and (folder / "train.csv").exists()
    assert (folder / "changes.json").exists()
    assert planner.state.spec["files"]["train"] == str(folder / "train.csv")
    # profiled again: the two extra copies are gone (same text under another label is a
    # conflict, left to the conflict fixes)
    removed = version["summary"]["removed"]["train"]
    assert removed >= 1 and planner.state.profile["rows"]["train"] == rows_before - removed
    assert planner.state.profile["exact_duplicates"] < duplicates
    assert file_sha256(source) == before  # the person's file is never modified
    say(planner, "drop empty rows")
    say(planner, "yes")
    assert [v["version"] for v in planner.state.data_versions] == [1, 2]
    assert planner.state.profile["empty_texts"] == 0
    assert "v2" in say(planner, "/data")[0]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("empty.csv", "", "is empty"),
        ("header.csv", "text,label\n", "no rows"),
        ("ragged.csv", "text,label\n" + "a b c,x\n" * 30 + "one,two,three\n", "line 32"),
        ("broken.jsonl", '{"text": "a", "label": "x"}\n{"text": oops}\n', "line 2"),
        (
            "one.csv",
            "text,label\n" + "".join(f"text number {i} here,spam\n" for i in range(30)),
            "only one label",
        ),
        ("few.csv", "text,label\nhello there,a\nbye now,b\n", "at least 20"),
        ("binary.csv", "\x00\x01\x02PK\x03\x04" * 50, "binary"),
    ],
)
def test_bad_files_in_the_chat_keep_the_session_usable(
    tmp_path, sentiment_csv, name, content, message
):
    planner = Planner(tmp_path / "runs")
    path = tmp_path / name
    path.write_text(content)
    text, replies = say(planner, f"classify: {path}")
    assert replies[0].kind == "error" and message in text, text
    assert planner.state.stage == "data"
    say(planner, str(sentiment_csv))  # the next good file works
    assert planner.state.stage == "review"


def test_scores_are_regression_unless_the_person_asked_for_classes(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text(
        "text,score\n" + "".join(f"text number {i} here,{i * 0.37:.2f}\n" for i in range(60))
    )
    planner = Planner(tmp_path / "runs")
    text, replies = say(planner, f"one label per text: {path}")
    assert replies[0].kind == "error" and "Say `regression`" in text, text
    planner = Planner(tmp_path / "runs")
    text, _ = say(planner, f"classify: {path}")
    assert "- Task: regression (a number per text): the labels are numbers" in text
    assert planner.state.plan["metric"] == "pearson" and planner.state.task == "regression"


def test_a_run_that_halved_its_batch_after_an_oom_still_resumes_as_the_same_plan():
    planned = {"learning_rate": 5e-5, "batch_size": 16, "grad_accum": 1, "seed": 42}
    assert same_run_plan(planned, planned)
    assert same_run_plan({**planned, "batch_size": 8, "grad_accum": 2}, planned)
    assert not same_run_plan({**planned, "batch_size": 8}, planned)  # fewer rows per update
    assert not same_run_plan({**planned, "batch_size": 8, "grad_accum": 2, "seed": 1}, planned)


def test_a_stopped_search_is_told_by_its_trials_not_a_step(planner):
    search_stop = planner.run_finished({"state": "stopped", "step": 0, "trials_finished": 3})
    assert "stopped after 3 finished trials" in search_stop[0].text
    assert "step" not in search_stop[0].text and "/run" in search_stop[0].text
    one = planner.run_finished({"state": "stopped", "step": 0, "trials_finished": 1})
    assert "after 1 finished trial;" in one[0].text
    run_stop = planner.run_finished({"state": "stopped", "step": 40})
    assert "stopped at step 40" in run_stop[0].text
