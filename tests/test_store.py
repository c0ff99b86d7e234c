"""The session store and the conversation's persistence."""

import pytest

from assistant.conversation import Conversation
from assistant.store import SessionStore
from tuning_core.errors import SessionError


def test_turns_plans_and_state_round_trip(home, sentiment_csv):
    store = SessionStore(home)
    conversation = Conversation.start(store)
    conversation.opening()
    conversation.say(f"sentiment: {sentiment_csv}")
    conversation.say("5 epochs")
    session_id = conversation.session_id

    again = Conversation.start(SessionStore(home), session_id)
    turns = again.history()
    assert [t["role"] for t in turns[:2]] == ["assistant", "user"]
    assert turns[1]["text"] == f"sentiment: {sentiment_csv}"
    assert again.state.plan["epochs"] == 5 and again.state.stage == "plan"
    plans = again.session.plans()
    assert [p["source"] for p in plans] == ["recommend", "person"]
    (summary,) = store.list()
    assert summary["id"] == session_id and summary["stage"] == "plan"
    assert summary["data_file"] == str(sentiment_csv)


def test_a_turn_is_saved_before_the_planner_answers(home, monkeypatch):
    conversation = Conversation.start(SessionStore(home))

    def boom(text):
        raise RuntimeError("planner crashed")

    monkeypatch.setattr(conversation.planner, "handle", boom)
    with pytest.raises(RuntimeError):
        conversation.say("my precious words")
    reopened = Conversation.start(SessionStore(home), conversation.session_id)
    assert reopened.history()[-1]["text"] == "my precious words"


def test_unknown_and_damaged_sessions(home):
    store = SessionStore(home)
    with pytest.raises(SessionError, match="No session 'nope'"):
        store.open("nope")
    good = store.create()
    bad = home / "20990101-000000-dead"
    bad.mkdir()
    (bad / "session.db").write_bytes(b"this is not a database" * 100)
    listed = {s["id"]: s for s in store.list()}
    assert "error" in listed[bad.name] and bad.name in listed[bad.name]["error"]
    assert listed[good.id]["stage"] == "task"
