"""The results view driven through Pilot, over a hand-made report (nothing is trained): the
numbers it shows, opening and closing it, and reports from older versions with keys missing."""

from __future__ import annotations

import copy

import pytest
from test_app import SIZE, settle
from test_monitor import wait_for
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from assistant.app import TunesmithApp
from assistant.conversation import Conversation
from assistant.resultsview import ResultsScreen
from assistant.store import SessionStore

LABELS = ["negative", "neutral", "positive"]
CONFUSION = [[8, 1, 1], [2, 5, 3], [0, 1, 9]]
LONG_TEXT = "honestly   I expected\nto hate it " + "and yet " * 20 + "it was fine"

TEST_SPLIT = {
    "accuracy": 0.7333,
    "macro_f1": 0.7236,
    "weighted_f1": 0.7236,
    "per_class": {
        "negative": {"precision": 0.8, "recall": 0.8, "f1": 0.8, "support": 10},
        "neutral": {"precision": 0.7143, "recall": 0.5, "f1": 0.5882, "support": 10},
        "positive": {"precision": 0.6923, "recall": 0.9, "f1": 0.7826, "support": 10},
    },
    "confusion": CONFUSION,
    "labels": LABELS,
    "n": 30,
    "ece": 0.0612,
    "mean_confidence": 0.79,
    "confident_errors": [
        {
            "row": 4,
            "text": "worst purchase ever, love it",
            "true": "positive",
            "predicted": "negative",
            "confidence": 0.9812,
        },
        {
            "row": 17,
            "text": "it is a phone",
            "true": "neutral",
            "predicted": "positive",
            "confidence": 0.9034,
        },
        {
            "row": 22,
            "text": LONG_TEXT,
            "true": "negative",
            "predicted": "neutral",
            "confidence": 0.8571,
        },
    ],
}

REPORT = {
    "forecast_check": None,
    "validation": {"accuracy": 0.71, "macro_f1": 0.7},
    "test": TEST_SPLIT,
    "metric": "macro_f1",
    "epochs_run": 3.0,
    "train_rows": 240,
    "train_fit": {"accuracy": 0.76, "macro_f1": 0.745, "n": 200},
    "judge": {
        "metric": "macro_f1",
        "metric_name": "macro-F1",
        "official": 0.7236,
        "accuracy": 0.7333,
        "macro_f1": 0.7236,
        "weighted_f1": 0.7236,
        "ece": 0.0612,
        "validation": 0.7,
        "train": 0.745,
        "train_rows_scored": 200,
        "fit_gap": 0.045,
        "overfitting": False,
        "baselines": {"majority": 0.1667, "tfidf_lr": 0.65},
        "deltas": {"majority": 0.5569, "tfidf_lr": 0.0736},
        "calls": ["The neutral class is the weak spot: recall 0.50."],
    },
}


def open_session(home, report: dict | None, run_id: str | None = "run-3") -> str:
    """A saved session whose state holds `report`; its id."""
    conversation = Conversation.start(SessionStore(home))
    state = conversation.state
    state.report, state.run_id = report, run_id
    conversation.session.save_state(state.to_dict(), conversation.planner.summary())
    conversation.session.close()
    return conversation.session_id


def rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def static_text(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


async def test_results_view_shows_the_report(home):
    app = TunesmithApp(home=home, session_id=open_session(home, copy.deepcopy(REPORT)))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ResultsScreen)

        header = static_text(screen, "#results-header")
        for part in (
            "run-3",
            "test (30 rows)",
            "macro-F1 0.7236",
            "accuracy 0.7333",
            "weighted F1 0.7236",
            "ECE 0.0612",
            "train/validation gap +0.0450",
            "(training 0.7450, validation 0.7000)",
            "3.0 epochs run on 240 training rows",
        ):
            assert part in header, header
        assert "overfitting" not in header

        per_class = screen.query_one("#per-class", DataTable)
        assert rows(per_class) == [
            ["negative", "0.8000", "0.8000", "0.8000", "10"],
            ["neutral", "0.7143", "0.5000", "0.5882", "10"],
            ["positive", "0.6923", "0.9000", "0.7826", "10"],
        ]

        confusion = screen.query_one("#confusion", DataTable)
        assert [str(c.label) for c in confusion.columns.values()][1:] == LABELS
        assert rows(confusion) == [
            ["negative", "8", "1", "1"],
            ["neutral", "2", "5", "3"],
            ["positive", "0", "1", "9"],
        ]
        diagonal = confusion.get_cell_at(Coordinate(1, 2))  # true neutral, predicted neutral
        off = confusion.get_cell_at(Coordinate(1, 3))  # true neutral, predicted positive
        assert str(diagonal) == "5" and "on green" in str(diagonal.style)
        assert "on green" not in str(off.style)

        baselines = screen.query_one("#baselines", DataTable)
        assert rows(baselines) == [
            ["fine-tuned model", "0.7236", ""],
            ["majority class", "0.1667", "+0.5569"],
            ["TF-IDF + logistic regression", "0.6500", "+0.0736"],
        ]
        assert "The neutral class is the weak spot: recall 0.50." in static_text(screen, "#calls")

        errors = screen.query_one("#errors", DataTable)
        table = rows(errors)
        assert len(table) == 3
        assert table[0] == ["0.981", "positive", "negative", "worst purchase ever, love it"]
        assert table[1] == ["0.903", "neutral", "positive", "it is a phone"]
        # a long text is one line in the table, cut with an ellipsis; the detail shows it whole
        assert table[2][3].startswith("honestly I expected to hate it and yet")
        assert table[2][3].endswith("…") and "\n" not in table[2][3]
        assert "worst purchase ever, love it" in static_text(screen, "#error-text")
        errors.focus()
        errors.move_cursor(row=2)
        await pilot.pause()
        detail = static_text(screen, "#error-text")
        assert "row 22" in detail and LONG_TEXT in detail and "0.857" in detail

        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ResultsScreen)

        # ctrl+r toggles: it opens the view, and closes it again
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, ResultsScreen)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not isinstance(app.screen, ResultsScreen)


async def test_results_view_is_in_the_command_palette(home):
    app = TunesmithApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert "Results view" in commands
        assert "ctrl+r" in commands["Results view"].help


async def test_ctrl_r_without_a_report_notifies(home, monkeypatch):
    app = TunesmithApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.conversation.state.report is None
        notes = []
        monkeypatch.setattr(app, "notify", lambda message, **kw: notes.append(message))
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not isinstance(app.screen, ResultsScreen)
        assert notes == ["No results yet: train a model first."]


async def test_report_without_judge_or_errors_still_opens(home):
    report = copy.deepcopy(REPORT)
    del report["judge"]
    del report["test"]["confident_errors"]
    app = TunesmithApp(home=home, session_id=open_session(home, report))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ResultsScreen)
        header = static_text(screen, "#results-header")
        # the gap comes from the training and validation scores when there is no verdict
        assert "macro-F1 0.7236" in header and "gap +0.0450" in header, header
        assert rows(screen.query_one("#confusion", DataTable))[2] == ["positive", "0", "1", "9"]
        assert not screen.query_one("#baselines", DataTable).display
        assert "No verdict" in static_text(screen, "#calls")
        assert not screen.query_one("#errors", DataTable).display
        assert "No confident errors" in static_text(screen, "#error-text")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ResultsScreen)


@pytest.mark.parametrize(
    "report",
    [
        {"metric": "accuracy"},
        {"test": None, "judge": None, "train_fit": "not a dict", "validation": []},
        {
            "metric": "f1",
            "test": {
                "labels": ["a", "b", "a"],
                "confusion": [[1, None], [2]],
                "per_class": {"a": None, "b": {"f1": "n/a", "support": 3}},
                "confident_errors": [{"text": None}, "not an error"],
                "ece": 0.3,
            },
            "judge": {"baselines": {"majority": None, "tfidf_lr": "x"}, "calls": None},
        },
        {"judge": {"official": 0.5, "baselines": {"tfidf_lr": 0.6}, "overfitting": True}},
    ],
    ids=["metric-only", "wrong-types", "ragged", "judge-only"],
)
async def test_odd_reports_open_without_raising(home, report):
    app = TunesmithApp(home=home, session_id=open_session(home, report, run_id=None))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen))
        assert "this run" in static_text(app.screen, "#results-header")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ResultsScreen))


REGRESSION_REPORT = {
    "task": "regression",
    "metric": "pearson",
    "validation": {"pearson": 0.81},
    "train_fit": {"pearson": 0.9, "n": 100},
    "test": {
        "pearson": 0.8, "spearman": 0.78, "mse": 0.42, "mae": 0.51, "r2": 0.6, "n": 20,
        "confident_errors": [
            {"row": 3, "text": "so so", "true": "4.5", "predicted": "1.2", "error": -3.3},
        ],
    },
    "judge": {
        "task": "regression", "metric": "pearson", "metric_name": "Pearson's r",
        "official": 0.8, "validation": 0.81, "train": 0.9, "fit_gap": 0.09,
        "overfitting": False,
        "baselines": {"majority": 0.0, "tfidf_lr": 0.7},
        "deltas": {"majority": 0.8, "tfidf_lr": 0.1},
        "calls": [],
    },
}  # fmt: skip

MULTI_LABEL_REPORT = {
    "task": "multi_label_classification",
    "metric": "micro_f1",
    "validation": {"micro_f1": 0.7},
    "test": {
        "micro_f1": 0.75, "macro_f1": 0.7, "exact_match": 0.5, "n": 12,
        "labels": ["sport", "tech"],
        "thresholds": {"sport": 0.35, "tech": 0.5},
        "per_class": {
            "sport": {"precision": 0.8, "recall": 0.6667, "f1": 0.7273, "support": 6},
            "tech": {"precision": 0.6, "recall": 0.75, "f1": 0.6667, "support": 4},
        },
    },
    "judge": {
        "task": "multi_label_classification", "metric": "micro_f1", "metric_name": "micro-F1",
        "official": 0.75, "validation": 0.7, "baselines": {"majority": 0.4, "tfidf_lr": 0.7},
        "deltas": {"majority": 0.35, "tfidf_lr": 0.05}, "calls": [],
    },
}  # fmt: skip


async def test_results_view_speaks_regression_and_multi_label(home):
    app = TunesmithApp(home=home, session_id=open_session(home, REGRESSION_REPORT))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        screen = app.screen
        header = static_text(screen, "#results-header")
        for part in ("Pearson's r 0.8000", "mean absolute error 0.5100", "R² 0.6000"):
            assert part in header, header
        assert "ECE" not in header and "accuracy" not in header
        assert rows(screen.query_one("#baselines", DataTable))[1:] == [
            ["the mean target", "0.0000", "+0.8000"],
            ["TF-IDF + ridge regression", "0.7000", "+0.1000"],
        ]
        errors = screen.query_one("#errors", DataTable)
        assert next(str(c.label) for c in errors.columns.values()) == "error"
        assert rows(errors)[0][:3] == ["-3.300", "4.5", "1.2"]
        assert not screen.query_one("#confusion", DataTable).display
    app = TunesmithApp(home=home, session_id=open_session(home, MULTI_LABEL_REPORT))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        screen = app.screen
        header = static_text(screen, "#results-header")
        assert "micro-F1 0.7500" in header and "exact match 0.5000" in header
        assert rows(screen.query_one("#per-class", DataTable))[0][0] == "sport"
        assert rows(screen.query_one("#baselines", DataTable))[1][0] == "most common label set"


INSTRUCTION_REPORT = {
    "task": "instruction_tuning",
    "metric": "perplexity",
    "validation": {"perplexity": 3.1, "loss": 1.13},
    "train_fit": {"perplexity": 2.9, "loss": 1.06, "n": 80},
    "test": {
        "perplexity": 3.3, "loss": 1.19, "base_perplexity": 900.0, "n": 10,
        "generations": [
            {"question": "Capital of Peru?", "reference": "Lima.", "base": "zq zq",
             "tuned": "Lima."},
        ],
    },
    "judge": {
        "task": "instruction_tuning", "metric": "perplexity", "metric_name": "perplexity",
        "official": 3.3, "validation": 3.1, "baselines": {"majority": None, "tfidf_lr": 900.0},
        "deltas": {"tfidf_lr": 896.7}, "calls": [],
    },
}  # fmt: skip


async def test_results_view_shows_an_instruction_tuned_models_replies(home):
    app = TunesmithApp(home=home, session_id=open_session(home, INSTRUCTION_REPORT))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        screen = app.screen
        header = static_text(screen, "#results-header")
        assert "perplexity 3.3000" in header and "loss per reply token 1.1900" in header
        assert rows(screen.query_one("#baselines", DataTable))[1] == [
            "the base model, untuned",
            "900.0000",
            "+896.7000",
        ]
        assert rows(screen.query_one("#errors", DataTable)) == [
            ["Capital of Peru?", "Lima.", "zq zq", "Lima."]
        ]
        detail = static_text(screen, "#error-text")
        assert "base model: zq zq" in detail and "tuned: Lima." in detail


async def test_results_view_lists_the_tasks_trained_together(home):
    report = copy.deepcopy(REPORT)
    report["judge"]["tasks"] = {
        "strength": {"metric_name": "macro-F1", "official": 0.81, "accuracy": 0.83,
                     "validation": 0.79, "test_rows": 24, "train_rows": 96, "weight": 0.5},
    }  # fmt: skip
    app = TunesmithApp(home=home, session_id=open_session(home, report))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        table = app.screen.query_one("#other-tasks", DataTable)
        assert rows(table) == [["strength", "macro-F1", "0.8100", "0.7900", "96", "0.5"]]
    app = TunesmithApp(home=home, session_id=open_session(home, REPORT))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.screen.query("#other-tasks")  # a single task: no such table
