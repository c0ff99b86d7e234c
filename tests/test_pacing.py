"""Long bursts of Textual work split over steps of the event loop (assistant.pacing): each
message a paced screen handles is a step of its own, and a theme switch reparses in one step and
restyles in another, every screen included."""

from __future__ import annotations

import asyncio
import copy
import time

from test_app import SIZE, say, settle
from test_resultsview import REPORT, open_session
from textual.app import App
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from assistant.app import MainScreen, TunesmithApp
from assistant.pacing import STEP_BUDGET_S, OneMessagePerStep
from assistant.resultsview import ResultsScreen


class LoopTicks:
    """Counts the iterations of the running event loop: a callback that schedules itself again
    runs once per iteration."""

    def __init__(self) -> None:
        self.count = 0
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        if not self._stopped:
            self.count += 1
            self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._stopped = True


class Ping(Message):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds  # how long handling it takes


class PlainScreen(Screen):
    def __init__(self, ticks: LoopTicks, pings: list[float]) -> None:
        super().__init__()
        self.ticks = ticks
        self.pings = pings
        self.seen: list[int] = []

    def compose(self):
        yield Static("x")

    def on_mount(self) -> None:
        for seconds in self.pings:
            self.post_message(Ping(seconds))

    def on_ping(self, ping: Ping) -> None:
        until = time.perf_counter() + ping.seconds
        while time.perf_counter() < until:
            pass
        self.seen.append(self.ticks.count)


class PacedScreen(OneMessagePerStep, PlainScreen):
    pass


async def test_a_paced_screen_ends_a_step_after_costly_messages_and_takes_cheap_ones_in_bulk():
    costly = [2 * STEP_BUDGET_S] * 4
    cheap = [0.0] * 40
    seen = {}
    for kind in (PlainScreen, PacedScreen):
        for pings in (costly, cheap):
            app = App()
            async with app.run_test() as pilot:
                ticks = LoopTicks()
                screen = kind(ticks, pings)
                await app.push_screen(screen)
                await pilot.pause(0.3)
                ticks.stop()
                assert len(screen.seen) == len(pings)
                seen[kind, len(pings)] = len(set(screen.seen))  # the loop steps they took
    # Textual's own pump takes all the waiting messages in one step; the paced one ends a step
    # after each costly message, and takes the cheap ones together
    assert seen[PlainScreen, 4] == 1 and seen[PlainScreen, 40] == 1
    assert seen[PacedScreen, 4] == 4 and seen[PacedScreen, 40] == 1


async def test_a_theme_switch_reparses_and_restyles_in_two_steps_and_reaches_every_screen(home):
    app = TunesmithApp(home=home, session_id=open_session(home, copy.deepcopy(REPORT)))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, MainScreen)
        dark_main = app.screen.styles.background
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, ResultsScreen)
        dark_results = app.screen.styles.background

        ticks = LoopTicks()
        when: dict[str, int] = {}
        stylesheet = app.stylesheet
        for name in ("reparse", "update"):
            original = getattr(stylesheet, name)

            def timed(*args, _original=original, _name=name, **kwargs):
                when.setdefault(_name, ticks.count)
                return _original(*args, **kwargs)

            setattr(stylesheet, name, timed)
        await pilot.press("f2")  # from the results view: the chat below must follow too
        await pilot.pause()
        ticks.stop()
        assert not app.current_theme.dark
        assert when["update"] > when["reparse"]  # a turn of the loop in between
        light_results = app.screen.styles.background
        await pilot.press("escape")
        await pilot.pause()
        light_main = app.screen.styles.background
    assert light_results != dark_results and light_main != dark_main

    # the same colours as an app that starts in the light theme
    fresh = TunesmithApp(home=home, session_id=open_session(home, copy.deepcopy(REPORT)))
    async with fresh.run_test(size=SIZE) as pilot:
        await settle(fresh, pilot)
        assert not fresh.current_theme.dark
        assert fresh.screen.styles.background == light_main
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert fresh.screen.styles.background == light_results


async def test_the_monitor_builds_its_plots_outside_the_frame(home, monkeypatch):
    from test_monitor import HISTORY, make_session, wait_for
    from textual_plotext import PlotextPlot

    from assistant.monitor import CurvePlot, RunMonitorScreen

    builds: list[str] = []
    build = PlotextPlot.render

    def counted(self):
        builds.append(self.id)
        return build(self)

    monkeypatch.setattr(PlotextPlot, "render", counted)
    session_id, run_dir = make_session(home, HISTORY)
    app = TunesmithApp(home=home, session_id=session_id)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.pause(0.6)
        await pilot.press("ctrl+t")
        plot = app.screen.query_one("#metric-plot", CurvePlot)
        await wait_for(pilot, lambda: "validation macro-F1" in plot.render().plain)
        assert isinstance(app.screen, RunMonitorScreen)
        assert builds.count("metric-plot") == 1  # drawn in several frames, built once
        before = plot.render()

        # new data: the frame shows the last figure, and the build comes in a step of its own
        plot.plt.clear_data()
        plot.plt.plot([1, 2], [0.5, 0.6], label="changed")
        plot.changed()
        assert plot.render() is before and builds.count("metric-plot") == 1
        await wait_for(pilot, lambda: "changed" in plot.render().plain)
        assert builds.count("metric-plot") == 2


async def test_a_pushed_screen_starts_with_the_breakpoint_class_textual_gives_it(home):
    for size, expected in (((80, 24), "-narrow"), ((100, 32), "-wide"), ((160, 48), "-wider")):
        app = TunesmithApp(home=home, session_id=open_session(home, copy.deepcopy(REPORT)))
        async with app.run_test(size=size) as pilot:
            await settle(app, pilot)
            made = ResultsScreen(app.conversation.state)
            assert expected in made.classes  # before its first layout and resize
            await pilot.press("ctrl+r")
            await pilot.pause()
            shown = {c for c in app.screen.classes if c.startswith("-") and "mode" not in c}
            assert shown == {expected}  # what Textual set on resize: the same, and only it


async def test_a_reply_is_rendered_in_the_conversations_thread_for_the_chats_width(
    home, monkeypatch
):
    import threading

    from rich.markdown import Markdown

    from assistant.widgets import RenderedOnce

    renders: list[tuple[str, str, int]] = []  # (thread, markdown, width) of each actual render
    render = RenderedOnce.__rich_console__

    def counted(self, console, options):
        key = (options.max_width, options.justify, options.overflow, options.no_wrap)
        if key not in self._rendered and isinstance(self.renderable, Markdown):
            renders.append((threading.current_thread().name, self.renderable.markup, key[0]))
        return render(self, console, options)

    monkeypatch.setattr(RenderedOnce, "__rich_console__", counted)
    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        width = app.message_widths["assistant"][0]  # known from the opening message
        # the chat does not scroll yet: also the width it will have once it does
        bar = app.query_one("#chat").styles.scrollbar_size_vertical
        assert bar and app.message_widths["assistant"] == [width, width - bar]
        replies = await say(app, pilot, "help")
        await pilot.pause()
        assert replies and all(m.content_region.width == width for m in replies)
        main = threading.main_thread().name
        for message in replies:
            made = [(thread, w) for thread, text, w in renders if text == message.source]
            assert made and made[0][0] != main and made[0][1] == width, made
            assert (main, width) not in made  # drawn from the segments kept
            # the segments are the ones Textual's own rendering gives
            options = app.console.options.update_width(width)
            assert message.content._rendered[(width, None, None, False)] == list(
                app.console.render(Markdown(message.source), options)
            )


async def test_the_plan_pane_is_redrawn_only_when_what_it_shows_changes(home):
    from assistant.widgets import PlanPanel
    from tuning_core.plan import Plan

    app = TunesmithApp(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        panel = app.query_one(PlanPanel)
        table = app.query_one("#plan-table", Static)
        state = app.conversation.state
        state.plan = Plan().to_dict()
        panel.show(state, app.conversation.session_id)
        drawn = table.content
        app._refresh_side()  # as after every reply: shown again, unchanged
        assert table.content is drawn
        state.plan = Plan(learning_rate=3e-5).to_dict()
        panel.show(state, app.conversation.session_id)
        assert table.content is not drawn
