"""Label new texts with a finished run's model: `tunesmith predict SESSION --input FILE|TEXT`.

`model_dir(run_dir)` finds the trained model (the run's own, or the best trial's of a search);
`load_classifier` reads it back (a LoRA adapter over its base model too), and `predict` scores
texts in batches, shortest first so that batches pad little, reporting progress as it goes.
`read_texts` takes a plain text file (one text a line), a CSV/TSV with a text column, or JSON
lines. torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuning_core.errors import DatasetError, ModelError
from tuning_core.runs import read_report

TEXT_COLUMNS = ("text", "sentence", "tweet", "content", "body")


def model_dir(run_dir: Path) -> Path:
    """The folder of the model a finished run trained; TuningError when there is none."""
    run_dir = Path(run_dir)
    own = run_dir / "model"
    if (own / "config.json").exists() or (own / "adapter_config.json").exists():
        return own
    try:
        best = (read_report(run_dir) or {})["search"]["best"]["number"]
    except (KeyError, TypeError):
        best = None
    if best is not None:
        trial = run_dir / "search" / "trials" / f"trial-{best}" / "model"
        if trial.exists():
            return trial
    raise ModelError(f"{run_dir.name} has no saved model to predict with")


def load_classifier(folder: Path, labels: list[str] | None = None, plan: dict | None = None):
    """(model in eval mode, tokenizer, labels) from a saved model folder, or from a LoRA
    adapter folder over its base model (`labels`, the run's, size its output layer).

    Safe by default: weights load from safetensors only and no Python code from the model's
    files runs, unless `plan` (the run's) records the person's consent for its base model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuning_core import recipe

    folder = Path(folder)
    plan = plan or {}
    agreed = bool(plan.get("base_model")) and plan.get("consent_model") == plan.get("base_model")
    trust = agreed and bool(plan.get("trust_remote_code"))
    pickle_ok = agreed and bool(plan.get("allow_pickle_weights"))
    try:
        if (folder / "adapter_config.json").exists():
            from peft import PeftConfig, PeftModel

            adapter = PeftConfig.from_pretrained(folder)
            kind = str(getattr(adapter, "task_type", "") or "")
            causal = kind.endswith("CAUSAL_LM")
            scale_file = folder / recipe.TARGET_SCALE  # a regressor's: no labels, a scale
            scale = json.loads(scale_file.read_text()) if scale_file.exists() else None
            if not labels and not causal and scale is None:
                raise ModelError("A LoRA adapter needs the run's labels to be read back")
            if not (folder / "adapter_model.safetensors").exists():
                raise ModelError(f"{folder} has no adapter_model.safetensors to load")
            load = {"trust_remote_code": trust, "use_safetensors": None if pickle_ok else True}
            if causal:  # an instruction-tuned language model: no labels
                from transformers import AutoModelForCausalLM

                base = AutoModelForCausalLM.from_pretrained(adapter.base_model_name_or_path, **load)
                labels = []
            elif scale is not None:  # a regressor: one output, in the targets' units
                from transformers import AutoConfig

                path = adapter.base_model_name_or_path
                config = AutoConfig.from_pretrained(
                    path, trust_remote_code=trust, num_labels=1, problem_type="regression"
                )
                for name, value in scale.items():  # set: from_pretrained drops unknown names
                    setattr(config, name, float(value))
                base = AutoModelForSequenceClassification.from_pretrained(
                    path, config=config, **load
                )
                labels = []
            else:
                auto = AutoModelForSequenceClassification
                if kind.endswith("TOKEN_CLS"):
                    from transformers import AutoModelForTokenClassification as auto
                base = auto.from_pretrained(
                    adapter.base_model_name_or_path,
                    num_labels=len(labels),
                    id2label=dict(enumerate(labels)),
                    label2id={label: i for i, label in enumerate(labels)},
                    **load,
                )
            model = PeftModel.from_pretrained(base, folder)  # the adapters and the trained head
        else:
            if not any((folder / name).exists() for name in recipe.SAFE_WEIGHTS):
                raise ModelError(
                    f"{folder} has no model.safetensors: the trained weights are missing"
                )
            auto = AutoModelForSequenceClassification
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            if any(a.endswith("ForTokenClassification") for a in config.get("architectures", [])):
                from transformers import AutoModelForTokenClassification as auto
            model = auto.from_pretrained(folder, trust_remote_code=trust, use_safetensors=True)
            labels = [model.config.id2label[i] for i in range(len(model.config.id2label))]
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
    except (OSError, ValueError) as exc:  # a damaged or incomplete folder: one line, no traceback
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"Cannot load the model in {folder}: {message}") from exc
    return model.eval(), tokenizer, list(labels)


def predict(
    model,
    tokenizer,
    labels: list[str],
    texts: list[str],
    max_length: int = 128,
    batch_size: int = 32,
    progress: Callable[[int, int], None] = lambda done, total: None,
    thresholds: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """One row per text, in the input's order: the label and the probability of each class;
    for a multi-label model the labels whose sigmoid score reaches their threshold (`thresholds`,
    tuned on validation; 0.5 for a label without one) joined by "|"; for a regressor the score
    in the target's units."""
    import torch

    problem = getattr(model.config, "problem_type", None)
    if getattr(model, "can_generate", lambda: False)() and not labels:
        return _generate_replies(model, tokenizer, texts, max_length, progress)
    if type(model).__name__.endswith("ForTokenClassification"):
        return _predict_tags(model, tokenizer, labels, texts, max_length, batch_size, progress)
    if problem == "regression":
        mean = float(getattr(model.config, "target_mean", 0.0))
        std = float(getattr(model.config, "target_std", 1.0))

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    rows: list[dict[str, Any] | None] = [None] * len(texts)
    progress(0, len(texts))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in chunk],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            logits = model(**enc).logits.float()
            if problem == "regression":
                for i, x in zip(chunk, logits.reshape(-1).tolist(), strict=True):
                    rows[i] = {"text": texts[i], "score": round(x * std + mean, 6)}
                progress(min(start + batch_size, len(texts)), len(texts))
                continue
            if problem == "multi_label_classification":
                cuts = [(thresholds or {}).get(label, 0.5) for label in labels]
                scores = torch.sigmoid(logits).tolist()
                for i, p in zip(chunk, scores, strict=True):
                    chosen = [x for x, q, c in zip(labels, p, cuts, strict=True) if q >= c]
                    rows[i] = {"text": texts[i], "labels": "|".join(chosen)}
                    rows[i] |= {f"p_{x}": round(q, 6) for x, q in zip(labels, p, strict=True)}
                progress(min(start + batch_size, len(texts)), len(texts))
                continue
            probs = torch.softmax(logits, dim=-1).tolist()
            for i, p in zip(chunk, probs, strict=True):
                best = max(range(len(p)), key=p.__getitem__)
                rows[i] = {"text": texts[i], "label": labels[best]}
                rows[i] |= {f"p_{label}": round(q, 6) for label, q in zip(labels, p, strict=True)}
            progress(min(start + batch_size, len(texts)), len(texts))
    return [row for row in rows if row is not None]


REPLY_TOKENS = 128  # the longest reply `predict` writes for an instruction-tuned model


def _generate_replies(model, tokenizer, texts, max_length, progress):
    """An instruction-tuned model: each text as the user's message, the greedy reply (up to
    REPLY_TOKENS new tokens), one at a time so no padding changes the result."""
    import torch

    from tuning_core import recipe

    recipe.instruct_tools().ensure_chat_template(tokenizer)
    rows: list[dict[str, Any]] = []
    progress(0, len(texts))
    with torch.no_grad():
        for i, text in enumerate(texts):
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][-max_length:]
            out = model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                do_sample=False,
                max_new_tokens=REPLY_TOKENS,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            reply = tokenizer.decode(out[0, len(ids) :].tolist(), skip_special_tokens=True)
            rows.append({"text": text, "reply": reply.strip()})
            progress(i + 1, len(texts))
    return rows


def _predict_tags(model, tokenizer, labels, texts, max_length, batch_size, progress):
    """Token classification: each text split at whitespace into words, one tag per word (read
    at its first sub-word; a word cut by `max_length` is "O"), the tags joined by spaces."""
    import torch

    rows: list[dict[str, Any]] = []
    progress(0, len(texts))
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            chunk = [t.split() for t in texts[start : start + batch_size]]
            enc = tokenizer(
                chunk,
                is_split_into_words=True,
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            best = model(**enc).logits.argmax(dim=-1).tolist()
            for i, words in enumerate(chunk):
                tags, seen = ["O"] * len(words), set()
                for position, word in enumerate(enc.word_ids(i)):
                    if word is not None and word not in seen:
                        seen.add(word)
                        tags[word] = labels[best[i][position]]
                rows.append({"text": " ".join(words), "tags": " ".join(tags)})
            progress(min(start + batch_size, len(texts)), len(texts))
    return rows


def read_texts(source: str, text_column: str | None = None) -> list[str]:
    """The texts in file `source` (lines of a .txt; the text column of any table the data
    stage reads: CSV, TSV, JSON lines, Parquet, gzipped too), or `source` itself when no such
    file exists."""
    from tuning_core import recipe

    path = Path(source).expanduser()
    if not path.is_file():
        if not source.strip():
            raise DatasetError("There is no text to label")
        return [source]
    try:
        if recipe.data_suffix(path)[0] == ".txt":
            return [line for line in recipe.text_lines(path) if line.strip()]
        table = recipe.read_table(path)
    except Exception as exc:  # whatever the reader says, as one line, not a traceback
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"Cannot read {path}: {message}") from exc
    fields = list(table.column_names)
    column = text_column or next((c for c in TEXT_COLUMNS if c in fields), None)
    if column not in fields:
        raise DatasetError(
            f"{path.name} has no column {column or 'text'!r} (columns: {', '.join(fields)}); "
            "name it with --text-column"
        )
    return ["" if v is None else str(v) for v in recipe.column_values(table, column)]


def write_predictions(rows: list[dict[str, Any]], out) -> None:
    """CSV: text, label, then p_<label> per class."""
    if not rows:
        return
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
