"""The `tunesmith` command end to end, in subprocesses, as a script would use it."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_PLAN

from assistant.store import SessionStore
from tuning_core import recipe


def tunesmith(*args, stdin="", home=None, timeout=300, env=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    if home is not None:
        env["TUNESMITH_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


# set for the whole session's run: none of them may end up in a file
SECRETS = {
    "HF_TOKEN": "hf_SECRETtokenVALUE123",
    "OPENAI_API_KEY": "sk-SECRETkeyVALUE456",
    "TUNESMITH_STORAGE": "postgresql://tuner:SECRETpassVALUE789@db.example/optuna",
}


def files_holding(folder: Path, needles) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n}" for n in needles if n.encode() in data]
    return found


@pytest.fixture(scope="module")
def finished_session(tiny_model, sentiment_csv, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    turns = [
        f"classify these posts by sentiment: {sentiment_csv}",
        f"use model {tiny_model}",
        f"learning rate {TINY_PLAN['learning_rate']}, {TINY_PLAN['epochs']:g} epochs",
        "",  # blank: accept the plan and train
        "/status",
    ]
    out = tunesmith("chat", "--headless", stdin="\n".join(turns) + "\n", home=home, env=SECRETS)
    assert out.returncode == 0, out.stderr[-3000:]
    session_id = out.stdout.splitlines()[0].strip("[]").split()[1]
    return home, session_id, out.stdout, out.stderr


def test_headless_chat_walks_the_whole_path(finished_session):
    home, session_id, stdout, stderr = finished_session
    # slow steps say what they do on stderr, in order, and stay out of the conversation
    steps = ["… reading posts.csv", "… profiling", "… measuring the baseline", "… timing a few"]
    assert all(step in stderr for step in steps), stderr[-2000:]
    assert [stderr.index(step) for step in steps] == sorted(stderr.index(s) for s in steps)
    assert "… profiling" not in stdout
    assert "How I read `posts.csv`" in stdout
    assert "Training started" in stdout
    assert "  step " in stdout and "ETA" in stdout  # progress lines while it trains
    assert "eval after epoch 1" in stdout
    assert "Forecast:" in stdout and "timed on this machine" in stdout
    assert "Forecast vs measured: peak memory" in stdout
    assert "**Results**" in stdout and "Confusion matrix" in stdout
    assert stdout.index("**Results**") > stdout.index("Training started")
    assert "finished" in stdout.split("> /status", 1)[1]


def test_sessions_lists_the_session_with_its_final_metrics(finished_session, tiny_model):
    home, session_id, stdout, _ = finished_session
    out = tunesmith("sessions", "--json", home=home)
    assert out.returncode == 0, out.stderr
    (entry,) = json.loads(out.stdout)
    assert entry["id"] == session_id
    assert entry["stage"] == "results"
    assert entry["data_file"].endswith("posts.csv")
    assert entry["base_model"] == str(tiny_model)
    assert entry["last_run"]["status"] == "finished"
    assert entry["last_run"]["headline"]["test_macro_f1"] > 0.5
    assert {"created", "updated", "task"} <= set(entry)
    human = tunesmith("sessions", home=home)
    assert session_id in human.stdout and "finished" in human.stdout


def test_reopened_session_continues_where_it_stopped(finished_session):
    home, session_id, _, _ = finished_session
    out = tunesmith("chat", "--headless", "--session", session_id, stdin="/status\n", home=home)
    assert out.returncode == 0, out.stderr
    assert "Welcome back" in out.stdout and "Stage:** results" in out.stdout


def test_export_verb_writes_the_bundle(finished_session, tmp_path):
    home, session_id, stdout, _ = finished_session
    out = tunesmith("export", session_id, "--out", str(tmp_path / "b"), home=home)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "b" / "train.py").exists()
    again = tunesmith("export", session_id, "--out", str(tmp_path / "b"), home=home)
    assert again.returncode == 1 and "not empty" in again.stderr and "Traceback" not in again.stderr


def test_no_secret_from_the_environment_lands_in_a_file(finished_session, tmp_path):
    """The session ran with tokens, keys and a database password in its environment: none is
    in the session folder (database, runs, logs) or in its exported bundle."""
    home, session_id, stdout, stderr = finished_session
    out = tunesmith("export", session_id, "--out", str(tmp_path / "bundle"), home=home)
    assert out.returncode == 0, out.stderr
    needles = ["SECRETtokenVALUE123", "SECRETkeyVALUE456", "SECRETpassVALUE789"]
    assert files_holding(home, needles) == []
    assert files_holding(tmp_path / "bundle", needles) == []
    assert not any(n in stdout + stderr for n in needles)


def test_report_verb_reads_the_verdict_stored_with_the_run(finished_session, tmp_path):
    home, session_id, stdout, _ = finished_session
    out = tunesmith("report", session_id, "--json", home=home)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    verdict = data["judge"]
    run_dir = data["run_dir"]
    stored = json.loads((Path(run_dir) / "report.json").read_text())
    assert verdict == stored["judge"]  # read back from the saved run, not recomputed
    # the chat left the search its memory limit: 90% of this machine's RAM, with the profile
    limits = json.loads((Path(run_dir) / "limits.json").read_text())
    assert limits["memory_mb"] > 1000 and limits["profile"]["rows"]["train"] > 0
    assert verdict["official"] == data["headline"]["test_macro_f1"]
    assert verdict["deltas"]["majority"] == round(
        verdict["official"] - verdict["baselines"]["majority"], 4
    )
    assert verdict["baselines"]["tfidf_lr"] is not None
    assert 0 <= verdict["ece"] <= 1 and "fit_gap" in verdict
    assert sum(map(sum, verdict["confusion"])) == verdict["test_rows"]
    human = tunesmith("report", session_id, home=home)
    assert human.returncode == 0, human.stderr
    assert "Confusion matrix" in human.stdout and "Baselines on the same test rows" in human.stdout
    assert f"macro-F1 {verdict['official']:.4f}" in human.stdout
    missing = tunesmith("report", "no-such-session", home=tmp_path)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_errors_are_one_line_without_traceback(tmp_path):
    out = tunesmith("export", "no-such-session", "--out", str(tmp_path / "x"), home=tmp_path)
    assert out.returncode == 1
    assert out.stderr.startswith("tunesmith: No session 'no-such-session'")
    assert "Traceback" not in out.stderr


def test_headless_survives_bad_input_and_exits_zero_at_end_of_input(tmp_path):
    out = tunesmith(
        "chat", "--headless", stdin="/nonsense\n/no/such.csv\n\n/nope.csv\n", home=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "I don't know `/nonsense`" in out.stdout
    assert "No such file" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_run_outlives_the_chat_and_a_reopened_session_reattaches(
    tiny_model, sentiment_csv, tmp_path
):
    from tuning_core.worker import STEP_DELAY_ENV

    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TUNESMITH_HOME": str(tmp_path),
        STEP_DELAY_ENV: "0.1",
    }
    chat = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "chat", "--headless"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    turns = [
        f"sentiment: {sentiment_csv}",
        f"use model {tiny_model}",
        "learning rate 3e-3, 6 epochs",
        "/run",
    ]
    chat.stdin.write("\n".join(turns) + "\n")
    chat.stdin.flush()
    session_id = chat.stdout.readline().strip("[]\n").split()[1]
    for line in chat.stdout:
        if line.startswith("  step "):
            break
    chat.kill()  # the terminal goes away mid-run
    chat.wait()
    out = tunesmith("sessions", "--json", home=tmp_path)
    (entry,) = json.loads(out.stdout)
    assert entry["last_run"]["status"] in ("running", "starting")
    out = tunesmith("chat", "--headless", "--session", session_id, home=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "still running" in out.stdout and "**Results**" in out.stdout
    (entry,) = json.loads(tunesmith("sessions", "--json", home=tmp_path).stdout)
    assert entry["last_run"]["status"] == "finished"


def test_profile_verb_prints_reading_findings_and_baseline(sentiment_csv, tmp_path):
    out = tunesmith("profile", str(sentiment_csv), home=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "How I read `posts.csv`" in out.stdout
    assert (
        "Baseline to beat" in out.stdout and "Findings" in out.stdout
    ) or "No findings" in out.stdout
    data = json.loads(tunesmith("profile", str(sentiment_csv), "--json", home=tmp_path).stdout)
    assert data["data"]["text_column"] == "text"
    assert data["profile"]["rows"]["train"] > 0
    assert 0 <= data["baseline"]["tfidf_lr"]["cv_mean"] <= 1
    assert data["baseline"]["majority"]["cv_mean"] < data["baseline"]["tfidf_lr"]["cv_mean"]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("missing.csv", None, "No such file"),
        ("empty.csv", "", "is empty"),
        ("header.csv", "text,label\n", "no rows"),
        ("ragged.csv", "text,label\n" + "a b c,x\n" * 30 + "one,two,three\n", "line 32"),
        ("broken.jsonl", '{"text": "a", "label": "x"}\n{"text": oops}\n', "line 2"),
    ],
)
def test_profile_verb_bad_input_is_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    out = tunesmith("profile", str(path), home=tmp_path)
    assert out.returncode == 1
    assert message in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("tunesmith: ")


def test_live_diagnosis_speaks_up_once_when_the_loss_explodes(tiny_model, sentiment_csv, tmp_path):
    turns = [f"sentiment: {sentiment_csv}", f"use model {tiny_model}", "learning rate 0.5", ""]
    out = tunesmith("chat", "--headless", stdin="\n".join(turns) + "\n", home=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    said = [line for line in out.stdout.splitlines() if line.startswith("**Watching the run:**")]
    diverged = [line for line in said if "half the learning rate" in line]
    assert len(diverged) == 1 and len(said) == len(set(said))  # each finding said once
    assert out.stdout.index("**Watching the run:**") < out.stdout.index("**Results**")


def test_the_chat_says_when_the_worker_recovered_from_running_out_of_memory(
    tiny_model, sentiment_csv, tmp_path
):
    from tuning_core.worker import OOM_ENV

    turns = [
        f"sentiment: {sentiment_csv}",
        f"use model {tiny_model}",
        f"learning rate {TINY_PLAN['learning_rate']}, 2 epochs, batch size 8",
        "",
    ]
    out = tunesmith(
        "chat", "--headless", stdin="\n".join(turns) + "\n", home=tmp_path, env={OOM_ENV: "3:4"}
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "out of memory at micro-batch 8: continuing with 4 x 2 accumulation" in out.stdout
    said = [line for line in out.stdout.splitlines() if "ran out of memory" in line]
    assert len(said) == 1 and said[0].startswith("**Watching the run:**")
    assert "micro-batch of 8" in said[0] and "each update still averages 8 rows" in said[0]
    assert "**Results**" in out.stdout


def test_predict_labels_texts_with_the_sessions_model(finished_session, tmp_path):
    """`tunesmith predict` reads the run's model back: on the session's own test rows its
    labels score exactly the run's recorded test accuracy."""
    home, session_id, _, _ = finished_session
    state = SessionStore(home).open(session_id).load_state()
    texts, truth = recipe.load_splits(state["spec"])["test"]
    labels = list(state["spec"]["labels"])
    (tmp_path / "new.txt").write_text("\n".join(texts) + "\n")
    out = tunesmith(
        "predict", session_id, "--input", str(tmp_path / "new.txt"),
        "--out", str(tmp_path / "p.csv"), home=home,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "predicting [" in out.stderr and f"{len(texts)}/{len(texts)}" in out.stderr
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["text"] for r in rows] == texts
    assert list(rows[0]) == ["text", "label", *(f"p_{label}" for label in labels)]
    for r in rows:
        probs = [float(r[f"p_{label}"]) for label in labels]
        assert abs(sum(probs) - 1) < 1e-4 and r["label"] == labels[probs.index(max(probs))]
    accuracy = sum(r["label"] == y for r, y in zip(rows, truth, strict=True)) / len(truth)
    report = json.loads((Path(state["run_dir"]) / "report.json").read_text())
    assert round(accuracy, 4) == round(report["test"]["accuracy"], 4)

    one = tunesmith("predict", session_id, "--input", "what a lovely day", home=home)
    assert one.returncode == 0 and one.stdout.splitlines()[1].startswith("what a lovely day,")
    folder = tunesmith("predict", session_id, "--input", "hi", "--out", str(tmp_path), home=home)
    assert folder.returncode == 1 and "is a folder" in folder.stderr
    assert "Traceback" not in folder.stderr
    missing = tunesmith("predict", "no-such-session", "--input", "hi", home=home)
    assert missing.returncode == 1 and "No session 'no-such-session'" in missing.stderr


def test_predict_reads_texts_from_any_table_the_data_stage_reads(tmp_path):
    from tuning_core.errors import TuningError
    from tuning_core.predict import read_texts

    (tmp_path / "a.csv").write_text('id,sentence\n1,"hello, world"\n2,NA\n')
    assert read_texts(str(tmp_path / "a.csv")) == ["hello, world", "NA"]
    (tmp_path / "b.jsonl").write_text('{"msg": "one"}\n{"msg": "two"}\n')
    assert read_texts(str(tmp_path / "b.jsonl"), "msg") == ["one", "two"]
    (tmp_path / "c.txt").write_text("first\n\nsecond\n")
    assert read_texts(str(tmp_path / "c.txt")) == ["first", "second"]
    assert read_texts("not a file, just a text") == ["not a file, just a text"]
    with pytest.raises(TuningError, match="no column 'text'"):
        read_texts(str(tmp_path / "b.jsonl"))
    (tmp_path / "d.xyz").write_text("?")
    with pytest.raises(TuningError, match="Cannot read"):
        read_texts(str(tmp_path / "d.xyz"))
