"""The chat prompt widget: history on up/down, completion of slash commands and column names."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Button

from assistant.planner import Planner
from assistant.prompt import COMMANDS, HISTORY_MAX, PromptInput, PromptSuggester


class PromptApp(App[None]):
    """Just the prompt, and a button after it for focus to move to."""

    def __init__(self, history: list[str] | None = None, columns: list[str] | None = None):
        super().__init__()
        self.history = history or []
        self.columns = columns if columns is not None else []

    def compose(self) -> ComposeResult:
        yield PromptInput(
            placeholder="say something", id="prompt", history=self.history, columns=self.cols
        )
        yield Button("next", id="next")

    def cols(self) -> list[str]:
        return self.columns

    def on_mount(self) -> None:
        self.query_one(PromptInput).focus()

    def on_input_submitted(self, event: PromptInput.Submitted) -> None:
        """What the app does with an entry: clear the prompt, remember the text."""
        event.input.clear()
        prompt(self).remember(event.value)


def prompt(app: App) -> PromptInput:
    return app.query_one(PromptInput)


async def type_text(pilot, text: str) -> None:
    await pilot.press(*text)
    await pilot.pause()  # the suggestion is computed in a worker and posted back


async def test_up_and_down_browse_history_and_keep_the_draft():
    app = PromptApp(history=["first", "second"])
    async with app.run_test() as pilot:
        box = prompt(app)
        box.remember("third")
        await type_text(pilot, "dra")
        await pilot.press("up")
        assert box.value == "third"
        assert box.cursor_position == len("third")
        await pilot.press("up", "up")
        assert box.value == "first"
        await pilot.press("up")  # the oldest entry stays
        assert box.value == "first"
        await pilot.press("down")
        assert box.value == "second"
        await pilot.press("down", "down")
        assert box.value == "dra"  # back to what was being typed
        await pilot.press("down")  # nothing further
        assert box.value == "dra"
        await type_text(pilot, "ft")
        assert box.value == "draft"


async def test_editing_a_recalled_entry_makes_it_the_draft():
    app = PromptApp(history=["first", "second"])
    async with app.run_test() as pilot:
        box = prompt(app)
        await pilot.press("up")
        await type_text(pilot, "!")
        assert box.value == "second!"
        await pilot.press("up")
        assert box.value == "second"
        await pilot.press("down")
        assert box.value == "second!"


async def test_up_with_no_history_keeps_the_value():
    app = PromptApp()
    async with app.run_test() as pilot:
        await type_text(pilot, "hi")
        await pilot.press("up", "down")
        assert prompt(app).value == "hi"


async def test_submit_clear_and_remember_like_the_app():
    app = PromptApp()
    async with app.run_test() as pilot:
        box = prompt(app)
        await type_text(pilot, "3 epochs")
        await pilot.press("enter")
        await pilot.pause()
        assert box.value == ""
        assert box.history == ["3 epochs"]
        await type_text(pilot, "3 epochs")
        await pilot.press("enter")
        await pilot.pause()
        assert box.history == ["3 epochs"]  # a repeat is not kept twice
        await pilot.press("up")
        assert box.value == "3 epochs"
        await pilot.press("down")
        assert box.value == ""


def test_remember_skips_empty_and_repeats_and_keeps_the_newest():
    box = PromptInput(history=["a", "", "a", "b"])
    assert box.history == ["a", "b"]
    box.remember("b")
    box.remember("   ")
    box.remember("")
    assert box.history == ["a", "b"]
    box.remember("a")  # only a repeat of the newest entry is skipped
    assert box.history == ["a", "b", "a"]
    box.set_history(str(i) for i in range(HISTORY_MAX + 20))
    assert len(box.history) == HISTORY_MAX
    assert box.history[0] == "20"
    assert box.history[-1] == str(HISTORY_MAX + 19)


async def test_slash_command_is_suggested_and_right_arrow_accepts_it():
    app = PromptApp()
    async with app.run_test() as pilot:
        box = prompt(app)
        await type_text(pilot, "/he")
        assert box._suggestion == "/help"
        assert box.value == "/he"
        await pilot.press("right")
        assert box.value == "/help"
        assert box.cursor_position == len("/help")


async def test_column_name_is_completed_and_right_arrow_accepts_it():
    app = PromptApp(columns=["sentiment", "text"])
    async with app.run_test() as pilot:
        box = prompt(app)
        await type_text(pilot, "text is sent")
        assert box._suggestion == "text is sentiment"
        await pilot.press("right")
        assert box.value == "text is sentiment"


async def test_tab_accepts_a_visible_suggestion():
    app = PromptApp(columns=["sentiment", "text"])
    async with app.run_test() as pilot:
        box = prompt(app)
        await type_text(pilot, "label is Sen")
        await pilot.press("tab")
        assert box.value == "label is Sentiment"
        assert box.cursor_position == len(box.value)
        assert app.focused is box


async def test_tab_without_a_suggestion_moves_focus():
    app = PromptApp(columns=["sentiment", "text"])
    async with app.run_test() as pilot:
        box = prompt(app)
        await type_text(pilot, "3 epochs")
        assert box._suggestion == ""
        await pilot.press("tab")
        assert box.value == "3 epochs"
        assert app.focused is app.query_one("#next", Button)


async def test_no_data_means_no_column_suggestion():
    app = PromptApp(columns=[])
    async with app.run_test() as pilot:
        box = prompt(app)
        await type_text(pilot, "label is sent")
        assert box._suggestion == ""
        await pilot.press("tab")
        assert box.value == "label is sent"
        assert app.focused is not box


async def test_suggester_rules():
    columns = ["Review Text", "category", "cat_id"]
    suggest = PromptSuggester(lambda: columns).get_suggestion
    assert await suggest("/s") == "/status"
    assert await suggest("/EXP") == "/EXPort"
    assert await suggest("/help") is None  # complete already
    assert await suggest("/export di") is None  # arguments are not completed
    assert await suggest("/nope") is None
    assert await suggest("label is CAT") == "label is CATegory"  # keeps what was typed
    assert await suggest("label is in column 'cat") == "label is in column 'category"
    assert await suggest("text is rev") == "text is review Text"
    assert await suggest("label is cat ") is None  # nothing after the last word
    assert await suggest("category") is None
    columns.clear()  # the data went away: asked again every time
    assert await suggest("label is cat") is None

    def broken() -> list[str]:
        raise RuntimeError("no state")

    assert await PromptSuggester(broken).get_suggestion("label is cat") is None
    assert await PromptSuggester().get_suggestion("label is cat") is None


def test_every_command_is_understood_by_the_planner(tmp_path):
    planner = Planner(tmp_path / "runs")
    for command in COMMANDS:
        replies = planner.handle(command)
        assert replies, command
        assert not any("I don't know" in reply.text for reply in replies), command
