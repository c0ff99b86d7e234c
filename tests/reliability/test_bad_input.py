"""Bad input, everywhere (issue 8, point 5): invalid plan values typed in the chat, plan JSON
with unknown or wrong-typed fields, an unknown model name offline, a model folder without
weights, an export target that exists or cannot be written, and an export cut short. Each gets
one clear message (no traceback) and changes nothing else: not the plan or its saved versions,
not the session's state, not the files on disk."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_export_golden import DATA, PLAN, REPORT
from test_safe_defaults import copy_model, say, snapshot

from assistant.conversation import Conversation
from assistant.planner import Planner
from assistant.store import SessionStore
from tuning_core import export, recipe
from tuning_core.errors import ExportError, PlanError
from tuning_core.plan import Plan

LABELS = ["negative", "neutral", "positive"]


def files_under(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under `root` with its bytes (hidden ones too), but those named in `skip`."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(skip)
    }


# ---------------------------------------------------------------- values typed in the chat

BAD_VALUES = [
    ("learning rate -1", "learning_rate must be in (0, 1), got -1"),
    ("epochs a lot", "epochs: give a number in digits, e.g. '4 epochs' (not 'a lot')"),
    ("batch size 0", "batch_size must be 1..4096, got 0"),
    ("dropout 2", "dropout must be in [0, 1), got 2"),
    ("warmup -0.5", "warmup must be a share in [0, 1), got -0.5"),
    ("lr=abc", "learning rate: give a number in digits"),
    ("learning rate fast", "(not 'fast')"),
    ("learning rate nan", "(not 'nan')"),
    ("batch size a lot", "batch size: give a number in digits"),
    ("dropout high", "dropout: give a number in digits"),
    ("max length ten thousand", "(not 'ten thousand')"),
    ("batch size 1,000", "(not '1,000')"),
    ("max length 1k", "(not '1k')"),
    ("batch size 2.5", "2.5 is not a whole number"),
    ("epochs 0", "epochs must be in (0, 100], got 0"),
    ("seed -1", "seed must be 0..2**32-1"),
    ("lora rank 0", "lora_rank must be 1..512, got 0"),
    ("3 epochs and batch size 0", "batch_size must be 1..4096"),  # no half-applied change
    ("learning rate 2e-5 and warmup 150%", "warmup must be a share in [0, 1), got 1.5"),
]


@pytest.fixture(scope="module")
def talk(tmp_path_factory, sentiment_csv):
    """A saved conversation at the plan stage."""
    home = tmp_path_factory.mktemp("home")
    conversation = Conversation.start(SessionStore(home))
    conversation.say(f"sentiment: {sentiment_csv}")
    conversation.say("")
    assert conversation.state.stage == "plan"
    yield conversation, home
    conversation.close()


@pytest.mark.parametrize(("text", "message"), BAD_VALUES)
def test_an_invalid_value_typed_in_the_chat_is_refused_and_changes_nothing(talk, text, message):
    conversation, home = talk
    session = conversation.session
    state, plans = session.load_state(), len(session.plans())
    disk = files_under(home, skip=("session.db",))
    replies = conversation.say(text)
    said = "\n".join(r.text for r in replies)
    assert len(replies) == 1 and replies[0].kind == "error", said
    assert message in said, said
    assert "Traceback" not in said
    assert "The plan is unchanged" in said or "I kept the plan as it was" in said
    assert "lora_alpha" not in said  # only what the person said is blamed
    assert session.load_state() == state  # plan, stage, limits: all as they were
    assert len(session.plans()) == plans  # no new plan version
    assert files_under(home, skip=("session.db",)) == disk


def test_a_bad_value_while_reviewing_the_data_keeps_the_review_open(tmp_path, sentiment_csv):
    planner = Planner(tmp_path / "runs")
    say(planner, f"sentiment: {sentiment_csv}")
    assert planner.state.stage == "review"
    before = snapshot(planner)
    text, replies = say(planner, "batch size 0")
    assert replies[0].kind == "error" and "batch_size must be 1..4096" in text
    assert snapshot(planner) == before and planner.state.stage == "review"
    say(planner, "batch size 4")  # a good value is taken, and the plan is shown
    assert planner.state.plan["batch_size"] == 4 and planner.state.stage == "plan"


# ---------------------------------------------------------------- plan JSON


def test_plan_json_with_unknown_and_wrong_typed_fields_names_each_field(tmp_path):
    raw = {
        "learning_rate": "fast",
        "epochz": 3,
        "batch_size": 8.5,
        "trust_remote_code": "yes",
        "dropout": None,
        "seed": 7,
    }
    with pytest.raises(PlanError) as caught:
        Plan.from_dict(raw)
    message = caught.value.message
    assert "learning_rate must be float, got 'fast'" in message
    assert "unknown field 'epochz' (did you mean 'epochs'?)" in message
    assert "batch_size must be int, got 8.5" in message
    assert "trust_remote_code must be bool, got 'yes'" in message
    assert "seed" not in message and "dropout" not in message  # good fields are not blamed
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(raw))
    before = path.read_bytes()
    with pytest.raises(PlanError, match=f"The plan in {path} has problems"):
        Plan.load(path)
    assert path.read_bytes() == before
    path.write_text('{"epochs": 3,')
    with pytest.raises(PlanError, match=f"The plan in {path} is not valid JSON"):
        Plan.load(path)
    with pytest.raises(PlanError, match="There is no plan file"):
        Plan.load(tmp_path / "missing.json")
    with pytest.raises(PlanError, match="must be a JSON object, got list"):
        Plan.from_json("[1, 2]")


def test_a_session_plan_with_bad_fields_is_named_and_no_run_starts(tmp_path, sentiment_csv):
    planner = Planner(tmp_path / "runs")
    say(planner, f"sentiment: {sentiment_csv}")
    say(planner, "")
    planner.state.plan = {**planner.state.plan, "lr": 0.1, "epochs": "many"}
    before = snapshot(planner)
    for text in ("/run", "3 epochs"):
        said, replies = say(planner, text)
        assert replies[0].kind == "error" and "Traceback" not in said
        assert "unknown field 'lr'" in said and "epochs must be float, got 'many'" in said
        assert snapshot(planner) == before
    assert not (tmp_path / "runs").exists()  # no run folder was made


# ---------------------------------------------------------------- models


@pytest.fixture
def planner(tmp_path, sentiment_csv) -> Planner:
    planner = Planner(tmp_path / "session" / "runs")
    say(planner, f"sentiment: {sentiment_csv}")
    say(planner, "")
    return planner


def test_an_unknown_model_name_offline_says_what_to_do(planner, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = snapshot(planner)
    text, replies = say(planner, "use model nobody-here/no-such-model")
    assert replies[0].kind == "error" and "Traceback" not in text
    assert "`nobody-here/no-such-model`" in text and "the hub is offline" in text
    assert "hf download nobody-here/no-such-model" in text and "use model DIR" in text
    assert snapshot(planner) == before
    # a session whose plan names such a model (saved elsewhere, say) starts no run
    planner.state.plan = {**planner.state.plan, "base_model": "nobody-here/no-such-model"}
    before = snapshot(planner)
    text, replies = say(planner, "/run")
    assert replies[0].kind == "error" and "the hub is offline" in text
    assert snapshot(planner) == before and not planner.runs_dir.exists()
    with pytest.raises(ValueError, match="hub is offline"):
        recipe.model_load_options({"base_model": "nobody-here/no-such-model"})


def test_a_model_folder_without_weights_is_refused_when_picked_and_when_training(
    planner, tiny_model, tmp_path
):
    empty = copy_model(tiny_model, tmp_path / "no-weights")
    (empty / "model.safetensors").unlink()
    before = snapshot(planner)
    text, replies = say(planner, f"use model {empty}")
    assert replies[0].kind == "error" and "Traceback" not in text
    assert f"`{empty}` has a config.json but no weights: model.safetensors is missing" in text
    assert snapshot(planner) == before
    # picked while complete, its weights gone before the run starts
    later = copy_model(tiny_model, tmp_path / "later")
    say(planner, f"use model {later}")
    assert planner.state.plan["base_model"] == str(later)
    (later / "model.safetensors").unlink()
    before = snapshot(planner)
    text, replies = say(planner, "/run")
    assert replies[0].kind == "error" and "no weights" in text
    assert snapshot(planner) == before and planner.state.run_count == 0
    assert not (tmp_path / "session" / "runs").exists()
    # the worker and the exported train.py stop at the same place, with the same words
    with pytest.raises(ValueError, match=r"has a config\.json but no weights"):
        recipe.build_model(planner.state.plan, LABELS)


# ---------------------------------------------------------------- export


@pytest.fixture
def finished_run(tmp_path) -> Path:
    """A run folder as a finished worker leaves it (no model: the bundle's scripts only)."""
    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    (run_dir / "report.json").write_text(json.dumps(REPORT))
    (run_dir / "plan.json").write_text(json.dumps(PLAN))
    (run_dir / "data.json").write_text(json.dumps(DATA))
    return run_dir


def leftovers(folder: Path) -> list[str]:
    return sorted(
        p.name for p in folder.iterdir() if ".partial-" in p.name or ".previous-" in p.name
    )


def test_an_export_never_writes_into_a_folder_that_is_not_empty(finished_run, tmp_path):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists and is not empty; choose a new folder"):
        export.export_bundle(finished_run, target)
    with pytest.raises(ExportError, match="not part of a bundle"):  # not even to "refresh" it
        export.export_bundle(finished_run, target, overwrite=True)
    assert files_under(target) == {"notes.txt": b"mine"} and not leftovers(tmp_path)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ExportError, match="exists and is not a folder"):
        export.export_bundle(finished_run, tmp_path / "a-file")
    with pytest.raises(ExportError, match="is a file, so"):
        export.export_bundle(finished_run, tmp_path / "a-file" / "bundle")
    assert (tmp_path / "a-file").read_text() == "x"


def test_an_export_where_nothing_can_be_written_says_so(finished_run, tmp_path):
    with pytest.raises(ExportError, match="Cannot write"):
        export.export_bundle(finished_run, Path("/proc/tunesmith-export"))
    if os.geteuid() == 0:
        return  # root writes anywhere: the read-only folder below needs a plain user
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="permission denied"):
            export.export_bundle(finished_run, locked / "bundle")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_an_interrupted_export_leaves_no_partial_bundle(finished_run, tmp_path, monkeypatch):
    target = tmp_path / "bundle"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C (or SIGTERM) while the model is being written

    monkeypatch.setattr(export, "write_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.export_bundle(finished_run, target, model="full")
    assert not target.exists() and not leftovers(tmp_path)


def test_a_failed_overwrite_keeps_the_previous_bundle_whole(finished_run, tmp_path, monkeypatch):
    target = tmp_path / "export" / "run-1"
    out = export.export_bundle(finished_run, target, overwrite=True)
    assert out == target.resolve() and (target / "train.py").exists()
    before = files_under(target)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "write_model", disk_full)
    with pytest.raises(ExportError, match="No space left on device"):
        export.export_bundle(finished_run, target, overwrite=True, model="full")
    assert files_under(target) == before and not leftovers(target.parent)
    monkeypatch.undo()
    export.export_bundle(finished_run, target, overwrite=True)  # and it still works after
    assert files_under(target) == before and not leftovers(target.parent)


def test_an_export_killed_half_way_is_cleaned_up_by_the_next_one(finished_run, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that no longer runs: the killed export's
    target = tmp_path / "export" / "run-1"
    export.export_bundle(finished_run, target, overwrite=True)
    good = files_under(target)
    # killed after moving the previous bundle aside, before putting the new one in place
    previous = target.with_name(f".run-1.previous-{dead.pid}-abcd")
    target.rename(previous)
    partial = target.with_name(f".run-1.partial-{dead.pid}-ef01")
    partial.mkdir()
    (partial / "train.py").write_text("# half")
    export.export_bundle(finished_run, target, overwrite=True)
    assert files_under(target) == good and not leftovers(target.parent)


def test_a_failed_export_in_the_chat_changes_nothing(finished_run, tmp_path, monkeypatch):
    planner = Planner(tmp_path / "session" / "runs")
    planner.state.stage, planner.state.run_id = "results", "run-1"
    planner.state.run_dir = str(finished_run)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("keep")
    before = snapshot(planner)
    text, replies = say(planner, f"/export {taken}")
    assert replies[0].kind == "error" and "not empty" in text and "Traceback" not in text
    assert snapshot(planner) == before and files_under(taken) == {"keep.txt": b"keep"}
    monkeypatch.chdir(tmp_path)
    text, _ = say(planner, "/export out/../fresh")  # typed relative: shown absolute
    fresh = (tmp_path / "fresh").resolve()
    assert f"Exported to `{fresh}`" in text and (fresh / "train.py").exists()
    assert planner.state.export_dir == str(fresh)
