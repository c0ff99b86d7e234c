"""The bundle's generated files for one fixed session, against exact expected text in
tests/golden/ (issue 7.3). train.py and search.py are tunesmith's own recipe and search
modules with a generated part; the golden files hold the generated parts, and the rest must
be the modules' source unchanged. ruff must find nothing in either script.

After a deliberate change, read the diff the failing test prints, then rewrite the files with
`TUNESMITH_UPDATE_GOLDEN=1 pytest tests/test_export_golden.py` and read `git diff tests/golden`.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuning_core import export, recipe, search
from tuning_core.plan import Plan

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TUNESMITH_UPDATE_GOLDEN") == "1"

PLAN = Plan(
    base_model="sentence-transformers/all-MiniLM-L6-v2",
    max_length=48,
    head_init="probe",
    metric="f1",
    positive_label="irony",
    search_space={
        "learning_rate": {"low": 1.667e-05, "high": 0.00015, "log": True},
        "epochs": {"low": 2, "high": 5, "step": 1},
    },
    trials=12,
).to_dict()
TRAINED = {**PLAN, "learning_rate": 4e-05, "epochs": 4.0, "trials": 0, "search_space": {}}
DATA = {
    "files": {"train": "/data/irony/train.csv", "validation": "/data/irony/val.csv"},
    "sha256": {"train": "ab" * 32, "validation": "cd" * 32},
    "text_column": "text",
    "label_column": "label",
    "labels": ["irony", "non_irony"],
    "readers": {},
    "split_seed": 42,
}
VERSIONS = {
    "python": "3.11.7",
    "torch": "2.13.0+cpu",
    "transformers": "5.24.0",
    "datasets": "5.0.1",
    "accelerate": "1.9.0",
    "peft": "0.19.0",
    "tokenizers": "0.23.1",
    "scikit-learn": "1.9.1",
    "optuna": "5.0.0",
}
PER_CLASS = {
    "irony": {"precision": 0.6, "recall": 0.79, "f1": 0.682, "support": 311},
    "non_irony": {"precision": 0.8253, "recall": 0.649, "f1": 0.7266, "support": 473},
}
REPORT = {
    "metric": "f1",
    "train_rows": 2862,
    "validation": {"accuracy": 0.69, "macro_f1": 0.6931, "f1": 0.6945, "positive_label": "irony"},
    "test": {
        "accuracy": 0.7054,
        "macro_f1": 0.7043,
        "f1": 0.682,
        "ece": 0.1606,
        "n": 784,
        "positive_label": "irony",
        "labels": ["irony", "non_irony"],
        "per_class": PER_CLASS,
    },
    "judge": {
        "official": 0.682,
        "metric_name": "F1 of 'irony'",
        "baselines": {"majority": 0.568, "tfidf_lr": 0.629},
        "calls": ["Overfitting: F1 of 'irony' is 0.92 on training rows but 0.69 on validation."],
    },
    "loss_curve": [[18, 0.6931], [36, 0.6512], [54, 0.5873]],
    "versions": VERSIONS,
    "hardware": "CPU, 2 cores (x86_64), 2 threads",
    "wall_seconds": 312.4,
    "trained_plan": TRAINED,
}


def rendered() -> dict[str, str]:
    """Each generated file (or generated part of one) for the fixed session."""
    train = export.render_train_script(TRAINED, DATA, recipe.headline(REPORT), REPORT["loss_curve"])
    start = train.index(export.SETTINGS_START)
    end = train.index(export.SETTINGS_END)
    search_script = export.render_search_script(PLAN)
    generated = search_script.index("# --- the bundle's search")
    return {
        "train_settings.txt": train[start:end],
        "search_main.txt": search_script[generated:],
        "requirements.txt": export.render_requirements(VERSIONS, TRAINED),
        "README.md": export.render_readme(TRAINED, DATA, REPORT, VERSIONS),
        "model_card.md": export.render_model_card(TRAINED, DATA, REPORT, VERSIONS),
        "plan.yaml": export.render_plan_yaml(TRAINED),
    }


@pytest.mark.parametrize(
    "name",
    ["README.md", "model_card.md", "plan.yaml", "requirements.txt", "search_main.txt",
     "train_settings.txt"],
)  # fmt: skip
def test_generated_file_matches_its_golden_text(name):
    text = rendered()[name]
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(True), text.splitlines(True), f"golden/{name}", "rendered"
        )
    )
    assert text == expected, diff


def test_the_scripts_are_the_modules_with_only_their_generated_parts(tmp_path):
    train = export.render_train_script(TRAINED, DATA, recipe.headline(REPORT), [])
    source = Path(recipe.__file__).read_text(encoding="utf-8")
    head, tail = source.split(export.SETTINGS_START)
    assert train.startswith(head) and train.endswith(tail.split(export.SETTINGS_END, 1)[1])
    script = export.render_search_script(PLAN)
    original = Path(search.__file__).read_text(encoding="utf-8")
    assert "from tuning_core" not in script and "import train as recipe" in script
    assert script.startswith(original.split("from tuning_core import recipe")[0])
    (tmp_path / "train.py").write_text(train)
    (tmp_path / "search.py").write_text(script)
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment")
    lint = subprocess.run(
        [str(ruff), "check", "--no-cache", "--isolated", "train.py", "search.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
