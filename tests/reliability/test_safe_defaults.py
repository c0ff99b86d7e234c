"""Safe by default (issue 8, point 6): no model's own Python code runs and no pickle weight file
is read unless the person agreed to it in the conversation, for that named model only; paths
typed in the chat are shown in their absolute form.

The model folders here are copies of the tiny random model (tests/tiny.py): one whose config
asks for its own code (`auto_map`), one whose weights are only `pytorch_model.bin`.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from assistant.planner import Planner
from tuning_core import export, recipe
from tuning_core.errors import PlanError
from tuning_core.plan import Plan

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["negative", "neutral", "positive"]


# ---------------------------------------------------------------- model folders (shared with
# test_bad_input.py)


def copy_model(tiny_model: Path, target: Path) -> Path:
    shutil.copytree(tiny_model, target)
    return target


def remote_code_model(tiny_model: Path, target: Path) -> Path:
    """The tiny model, with a config that asks to run code from the folder's own file."""
    copy_model(tiny_model, target)
    config = json.loads((target / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "modeling_custom.CustomConfig",
        "AutoModelForSequenceClassification": "modeling_custom.CustomClassifier",
    }
    (target / "config.json").write_text(json.dumps(config))
    (target / "modeling_custom.py").write_text("raise SystemExit('remote code ran')\n")
    return target


def pickle_model(tiny_model: Path, target: Path) -> Path:
    """The tiny model with its weights as pytorch_model.bin only (pickle, read by torch.load)."""
    import torch
    from safetensors.torch import load_file

    copy_model(tiny_model, target)
    torch.save(load_file(target / "model.safetensors"), target / "pytorch_model.bin")
    (target / "model.safetensors").unlink()
    return target


def say(planner: Planner, text: str) -> tuple[str, list]:
    replies = planner.handle(text)
    assert replies, text
    return "\n\n".join(r.text for r in replies), replies


def snapshot(planner: Planner) -> str:
    return json.dumps(planner.state.to_dict(), sort_keys=True, default=str)


@pytest.fixture(scope="module")
def folders(tiny_model, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "remote": remote_code_model(tiny_model, root / "remote-code"),
        "pickle": pickle_model(tiny_model, root / "pickle-only"),
        "plain": copy_model(tiny_model, root / "plain"),
    }


@pytest.fixture
def planner(tmp_path, sentiment_csv) -> Planner:
    """A conversation at the plan stage over the small sentiment file."""
    planner = Planner(tmp_path / "session" / "runs")
    say(planner, f"sentiment: {sentiment_csv}")
    say(planner, "")
    assert planner.state.stage == "plan"
    return planner


# ---------------------------------------------------------------- defaults


def test_a_plan_agrees_to_nothing_by_default(tiny_model):
    plan = Plan(base_model=str(tiny_model)).to_dict()
    assert (plan["trust_remote_code"], plan["allow_pickle_weights"]) == (False, False)
    assert plan["consent_model"] is None
    assert recipe.model_load_options(plan) == {"trust_remote_code": False, "use_safetensors": True}


def from_pretrained_calls(path: Path) -> list[tuple[int, str, set[str]]]:
    """(line, callee, keyword names) of each `X.from_pretrained(...)` call in a source file."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "from_pretrained"
        ):
            owner = ast.unparse(node.func.value)
            keywords = {k.arg for k in node.keywords if k.arg}
            if any(k.arg is None for k in node.keywords):  # **options: model_load_options
                keywords.add("**")
            calls.append((node.lineno, owner, keywords))
    return calls


def test_every_from_pretrained_in_tunesmith_says_whether_model_code_may_run():
    """Each load names trust_remote_code (False unless the plan holds the person's consent);
    model weights also name use_safetensors. peft's own loaders read only adapter files."""
    missing = []
    for path in sorted((ROOT / "tuning_core").glob("*.py")):
        for line, owner, keywords in from_pretrained_calls(path):
            if owner.startswith(("PeftConfig", "PeftModel")):
                continue
            needs = {"trust_remote_code"}
            if "Model" in owner:
                needs.add("use_safetensors")
            if "**" not in keywords and not needs <= keywords:
                missing.append(f"{path.name}:{line} {owner}.from_pretrained")
    assert not missing, missing


# ---------------------------------------------------------------- remote code


def test_a_model_asking_for_its_own_code_is_refused_without_consent(planner, folders):
    remote = folders["remote"]
    before = planner.state.plan
    text, replies = say(planner, f"use model {remote}")
    assert "needs your consent" in text and "own Python code" in text
    assert "modeling_custom.CustomClassifier" in text and str(remote) in text
    assert planner.state.plan == before  # nothing changes until the person answers
    text, _ = say(planner, "no")
    assert "Nothing allowed" in text and planner.state.plan == before
    assert planner.state.pending_consent is None
    # the recipe (the worker's and the exported train.py's) refuses it on its own
    plan = Plan(base_model=str(remote)).to_dict()
    with pytest.raises(ValueError, match="asks to run its own Python code"):
        recipe.build_model(plan, LABELS)
    # a yes records the consent for that model, and loading then passes trust_remote_code
    say(planner, f"use model {remote}")
    text, _ = say(planner, "yes")
    plan = planner.state.plan
    assert plan["base_model"] == str(remote) and plan["trust_remote_code"] is True
    assert plan["consent_model"] == str(remote) and plan["allow_pickle_weights"] is False
    assert "you allowed its own code for this model only" in text
    assert "Model's own code:** allowed for this model only" in text
    assert recipe.model_load_options(plan)["trust_remote_code"] is True


# ---------------------------------------------------------------- pickle weights


def test_pickle_weights_load_only_after_consent_for_that_model(planner, folders):
    pickled, plain = folders["pickle"], folders["plain"]
    without = Plan(base_model=str(pickled)).to_dict()
    with pytest.raises(ValueError, match="only pickle weights"):
        recipe.build_model(without, LABELS)
    before = planner.state.plan
    text, _ = say(planner, f"use model {pickled}")
    assert "pytorch_model.bin" in text and "needs your consent" in text
    assert planner.state.plan == before
    say(planner, "yes")
    plan = planner.state.plan
    assert (plan["base_model"], plan["consent_model"]) == (str(pickled), str(pickled))
    assert plan["allow_pickle_weights"] is True and plan["trust_remote_code"] is False
    model = recipe.build_model(plan, LABELS)  # the yes lets the pickle file load
    assert model.config.num_labels == 3
    # a different model drops the consent; coming back asks again
    say(planner, f"use model {plain}")
    plan = planner.state.plan
    assert plan["base_model"] == str(plain)
    assert (plan["allow_pickle_weights"], plan["consent_model"]) == (False, None)
    text, _ = say(planner, f"use model {pickled}")
    assert "needs your consent" in text and planner.state.plan["base_model"] == str(plain)
    say(planner, "no")


def test_a_consent_does_not_carry_over_to_another_model_name(folders):
    pickled, plain = str(folders["pickle"]), str(folders["plain"])
    agreed = Plan(base_model=pickled, allow_pickle_weights=True, consent_model=pickled)
    assert agreed.validate()
    with pytest.raises(PlanError, match="allow_pickle_weights was agreed for model"):
        agreed.replace(base_model=plain)
    with pytest.raises(PlanError, match="trust_remote_code"):
        Plan.from_dict({"base_model": plain, "trust_remote_code": True, "consent_model": pickled})
    # the recipe ignores a consent recorded for another name, even in a plan not validated
    forged = {**agreed.to_dict(), "base_model": plain}
    assert recipe.model_load_options(forged) == {
        "trust_remote_code": False,
        "use_safetensors": True,
    }
    with pytest.raises(ValueError, match="only pickle weights"):
        recipe.model_load_options({**forged, "base_model": pickled, "consent_model": plain})


def test_the_exported_train_py_reads_the_consent_from_its_plan(folders, tmp_path):
    pickled = str(folders["pickle"])
    data = {"files": {"train": "x.csv"}, "sha256": {}, "labels": LABELS}
    for name, plan in (
        ("agreed", Plan(base_model=pickled, allow_pickle_weights=True, consent_model=pickled)),
        ("refused", Plan(base_model=pickled)),
    ):
        script = tmp_path / name / "train.py"
        script.parent.mkdir()
        script.write_text(export.render_train_script(plan.to_dict(), data, {}, []))
        spec = importlib.util.spec_from_file_location(f"bundle_train_{name}", script)
        bundle = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bundle)
        assert bundle.PLAN["consent_model"] == plan.consent_model
        if name == "agreed":
            assert bundle.build_model(bundle.PLAN, LABELS).config.num_labels == 3
        else:
            with pytest.raises(ValueError, match="only pickle weights"):
                bundle.build_model(bundle.PLAN, LABELS)


# ---------------------------------------------------------------- typed paths


def test_typed_relative_paths_are_shown_in_their_absolute_form(
    tmp_path, monkeypatch, sentiment_csv, tiny_model
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    shutil.copy(sentiment_csv, tmp_path / "data" / "posts.csv")
    copy_model(tiny_model, tmp_path / "models" / "tiny")
    planner = Planner(tmp_path / "session" / "runs")
    text, _ = say(planner, "sentiment: data/../data/posts.csv")
    assert f"File: `{tmp_path.resolve() / 'data' / 'posts.csv'}`" in text
    say(planner, "")
    text, _ = say(planner, "use model ./models/tiny")
    absolute = str(tmp_path.resolve() / "models" / "tiny")
    assert f"Base model → `{absolute}`" in text
    assert planner.state.plan["base_model"] == absolute
    text, replies = say(planner, "use model ./models/none")
    assert replies[0].kind == "error" and str(tmp_path.resolve() / "models" / "none") in text
