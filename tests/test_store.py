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
    conversation.close()  # a session has one writer at a time

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
    conversation.close()
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


# ---------------------------------------------------------------- private files (issue 8)


def mode(path) -> int:
    import stat

    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_session_files_are_private_whatever_the_umask(tmp_path, umask):
    import os

    from assistant.settings import Settings

    old = os.umask(umask)
    try:
        home = tmp_path / "new-home"
        store = SessionStore(home)
        session = store.create()
        session.add_turn("user", "hello")  # the -wal and -shm files exist while it is open
        folder = home / session.id
        assert mode(home) == 0o700 and mode(folder) == 0o700
        names = {p.name for p in folder.iterdir()}
        assert {"session.db", "session.db-wal", "session.db-shm", "session.lock"} <= names
        for name in names:
            assert mode(folder / name) == 0o600, name
        session.close()

        Settings(home).set("theme", "textual-light")
        assert mode(home / "settings.json") == 0o600
        assert [p.name for p in home.iterdir() if p.name.endswith(".tmp")] == []
        Settings(home).set("theme", "textual-dark")  # replaced whole, still private
        assert Settings(home).get("theme") == "textual-dark"
        assert mode(home / "settings.json") == 0o600
    finally:
        os.umask(old)


def test_an_existing_home_is_left_alone_and_old_loose_files_are_tightened(home):
    import os

    os.chmod(home, 0o755)
    store = SessionStore(home)
    session = store.create()
    session.close()
    assert mode(home) == 0o755  # the person's own folder: not ours to change
    folder = home / session.id
    os.chmod(folder, 0o755)  # as an older tunesmith left it
    os.chmod(folder / "session.db", 0o644)
    store.open(session.id).close()
    assert mode(folder) == 0o700 and mode(folder / "session.db") == 0o600


def test_the_chat_pages_through_a_long_conversation(home):
    session = SessionStore(home).create()
    for n in range(1, 251):
        session.add_turn("user" if n % 2 else "assistant", f"turn {n}")
    assert session.turn_count() == 250
    newest = session.turns(limit=100)
    assert [t["n"] for t in newest] == list(range(151, 251))
    older = session.turns(limit=100, before=newest[0]["n"])
    assert [t["n"] for t in older] == list(range(51, 151))
    assert session.turn_count(before=older[0]["n"]) == 50
    assert [t["n"] for t in session.turns(limit=100, before=51)] == list(range(1, 51))
    assert session.user_texts(2) == ["turn 247", "turn 249"]
    session.close()
