"""Snapshots (pytest-textual-snapshot) of every view at 100x32 over one fixed session: a
finished fake run on a small irony-like data set, nothing trained. The cursor does not blink
and the session id is fixed, so each screen renders the same on every run.

After a deliberate change of the layout, look at the failing SVG diff (pytest writes a report),
then update with `pytest tests/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import json
import os

import pytest
from test_app import settle
from test_monitor import HISTORY, evaluation, log
from test_resultsview import REPORT

from assistant import store
from assistant.app import TunesmithApp
from assistant.conversation import Conversation
from assistant.prompt import PromptInput
from assistant.store import SessionStore
from tuning_core.data import inspect_data
from tuning_core.plan import EMBEDDED_MODEL_ID, Plan
from tuning_core.profile import profile_rows
from tuning_core.runs import write_json_atomic

SIZE = (100, 32)
SESSION_ID = "20261129-090000-0a1b"

TRAIN = [
    ("just love waiting two hours for a bus #blessed", "irony"),
    ("great, another monday", "irony"),
    ("the match starts at eight tonight", "non_irony"),
    ("thanks for the lovely flowers mum", "non_irony"),
    ("oh good, my phone died again", "irony"),
    ("new episode is out tomorrow", "non_irony"),
    ("so glad the wifi is down during my exam", "irony"),
    ("our team won the final", "non_irony"),
    ("great, another monday", "irony"),
    ("", "non_irony"),
] * 3
TURNS = [
    ("user", "I want to detect irony in tweets"),
    ("assistant", "**Task:** single-label classification: one label per text."),
    ("user", "data /data/irony.csv"),
    ("assistant", "**How I read your data:** `text` is the text, `label` the label (2 classes)."),
    ("user", "learning rate 3e-5"),
    ("assistant", "**Changed:** learning rate 5e-05 → 3e-05."),
]


def fixed_session(home, monkeypatch) -> str:
    """The session every snapshot shows; its id."""
    monkeypatch.setattr(store, "new_session_id", lambda: SESSION_ID)
    conversation = Conversation.start(SessionStore(home))
    for role, text in TURNS:
        conversation.session.add_turn(role, text)
    texts = [t for t, _ in TRAIN]
    labels = [y for _, y in TRAIN]
    splits = {"train": (texts, labels), "validation": (texts[:10], labels[:10])}
    splits["test"] = splits["validation"]
    run_dir = conversation.session.runs_dir / "run-1"
    run_dir.mkdir(parents=True)
    events = [
        *HISTORY,
        log(10, 0.61),
        evaluation(10, 0.66, 0.58),
        log(16, 0.48),
        evaluation(20, 0.59, 0.64),
        {"type": "finished", "headline": {"macro_f1": 0.7236}},
    ]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    write_json_atomic(run_dir / "status.json", {"state": "completed", "pid": os.getpid()})
    state = conversation.state
    state.stage, state.task = "results", "single_label_classification"
    csv = home / "irony.csv"
    csv.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in TRAIN))
    state.spec = inspect_data(csv).to_dict()
    state.spec["files"] = {"train": "/data/irony.csv"}  # where it lives does not show
    state.source = "/data/irony.csv"
    state.profile = profile_rows(splits, EMBEDDED_MODEL_ID, max_length=48).to_dict()
    state.plan = Plan(learning_rate=3e-5, max_length=48).to_dict() | {"metric": "macro_f1"}
    state.changed = ["learning_rate"]
    state.run_id, state.run_dir, state.report = "run-1", str(run_dir), REPORT
    conversation.session.add_run("run-1", run_dir)
    conversation.session.update_run("run-1", "completed", {"macro_f1": 0.7236})
    conversation.session.save_state(state.to_dict(), conversation.planner.summary())
    conversation.session.close()
    return conversation.session_id


def still(app: TunesmithApp):
    async def run_before(pilot) -> None:
        await settle(app, pilot)
        app.query_one(PromptInput).cursor_blink = False
        await pilot.pause()

    return run_before


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param([], id="chat"),
        pytest.param(["ctrl+d"], id="data"),
        pytest.param(["ctrl+t", "wait:300"], id="monitor"),
        pytest.param(["ctrl+r"], id="results"),
        pytest.param(["ctrl+o"], id="sessions"),
        pytest.param(["f2"], id="light"),
    ],
)
def test_view(snap_compare, home, monkeypatch, keys):
    app = TunesmithApp(home, fixed_session(home, monkeypatch))
    assert snap_compare(app, terminal_size=SIZE, press=keys, run_before=still(app))
    assert app._exception is None  # a view that raised would snapshot an empty screen
