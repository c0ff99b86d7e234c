"""What each freezing mode trains, LoRA's save and reload, and early stopping's best checkpoint,
on the tiny random model."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_PLAN

from tuning_core import recipe
from tuning_core.plan import Plan

pytestmark = pytest.mark.usefixtures("one_thread")


def plan_dict(tiny_model, **options) -> dict:
    settings = {**TINY_PLAN, **options}
    return Plan(base_model=str(tiny_model), max_length=32, **settings).validate().to_dict()


def trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_each_freezing_mode_trains_exactly_what_it_says(tiny_model, labels):
    full = recipe.build_model(plan_dict(tiny_model), labels)
    everything = {name for name, _ in full.named_parameters()}
    assert trainable(full) == everything

    head = trainable(recipe.build_model(plan_dict(tiny_model, freezing="head_only"), labels))
    assert head == {n for n in everything if n.startswith(("classifier.", "bert.pooler."))}
    assert {"classifier.weight", "classifier.bias"} <= head

    bottom = trainable(
        recipe.build_model(plan_dict(tiny_model, freezing="bottom_k", freeze_layers=1), labels)
    )
    frozen = {n for n in everything if n.startswith(("bert.embeddings.", "bert.encoder.layer.0."))}
    assert frozen and bottom == everything - frozen
    assert any(n.startswith("bert.encoder.layer.1.") for n in bottom)

    lora_model = recipe.build_model(
        plan_dict(tiny_model, freezing="lora", lora_rank=4, lora_alpha=8), labels
    )
    lora = trainable(lora_model)
    adapters = {n for n in lora if ".lora_A." in n or ".lora_B." in n}
    heads = lora - adapters
    assert adapters and all(".attention." in n for n in adapters)
    # the head is trained in full (peft's modules_to_save copy); nothing of the encoder is
    assert heads and all("classifier" in n and "modules_to_save" in n for n in heads)
    assert all(
        p.shape[0] == 4 or p.shape[1] == 4
        for n, p in lora_model.named_parameters()
        if n in adapters
    )


def test_lora_model_saves_and_reloads_with_its_head(tiny_model, labels, data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    plan = plan_dict(tiny_model, freezing="lora", lora_rank=4, lora_alpha=8, epochs=2.0)
    report = recipe.train_and_evaluate(plan, data, tmp_path / "run")
    saved = tmp_path / "run" / "model"
    assert (saved / "adapter_model.safetensors").exists()

    torch.manual_seed(123)  # a different random head: the saved one must replace it
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_model, num_labels=len(labels), id2label=dict(enumerate(labels))
    )
    model = PeftModel.from_pretrained(base, saved).eval()
    tokenizer = AutoTokenizer.from_pretrained(saved)
    texts, names = recipe.load_splits(data)["test"]
    with torch.no_grad():
        enc = tokenizer(texts, truncation=True, max_length=32, padding=True, return_tensors="pt")
        preds = model(**enc).logits.argmax(-1).tolist()
    truth = [labels.index(n) for n in names]
    reloaded = recipe.classification_metrics(truth, preds, labels)
    assert reloaded["accuracy"] == report["test"]["accuracy"]
    assert reloaded["macro_f1"] == report["test"]["macro_f1"]


def test_early_stopping_restores_the_best_checkpoint(tiny_model, data, tmp_path):
    from transformers import TrainerCallback

    seen: list[dict] = []

    class Evals(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            seen.append({"step": state.global_step, **(metrics or {})})

    class SpoilAfterEpochTwo(TrainerCallback):
        """From the third epoch on, the output layer always says the first class: each later
        evaluation is worse than the best, so only a restored checkpoint scores well."""

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.epoch is not None and state.epoch > 2:
                with torch.no_grad():
                    model.classifier.weight.zero_()
                    model.classifier.bias.copy_(torch.tensor([5.0, 0.0, 0.0]))

    plan = plan_dict(tiny_model, learning_rate=1e-2, epochs=8.0, early_stopping_patience=2)
    report = recipe.train_and_evaluate(
        plan, data, tmp_path / "run", callbacks=[Evals(), SpoilAfterEpochTwo()]
    )
    scores = [e["eval_macro_f1"] for e in seen]
    best = max(range(len(seen)), key=lambda i: (scores[i], -i))  # the first of equal bests
    assert len(seen) == 4, "two spoilt evaluations after the best: early stopping ends the run"
    assert best < 2 and max(scores[2:]) < scores[best], scores
    assert report["best_checkpoint"].endswith(f"checkpoint-{seen[best]['step']}")
    # the model evaluated at the end is the restored best one, not the spoilt last one
    assert report["validation"]["macro_f1"] == pytest.approx(scores[best], abs=1e-4)
    assert report["epochs_run"] == 4.0


def test_predict_reads_a_lora_adapter_back(tiny_model, labels, data, tmp_path):
    """`tuning_core.predict` loads a LoRA run's adapter over its base model, with its head and
    its labels, and labels the test rows as the run scored them."""
    from tuning_core.predict import load_classifier, model_dir, predict

    plan = plan_dict(tiny_model, freezing="lora", lora_rank=4, lora_alpha=8, epochs=2.0)
    report = recipe.train_and_evaluate(plan, data, tmp_path / "run")
    model, tokenizer, names = load_classifier(model_dir(tmp_path / "run"), labels)
    assert names == labels
    texts, truth = recipe.load_splits(data)["test"]
    rows = predict(model, tokenizer, names, texts, max_length=32, batch_size=7)
    accuracy = sum(r["label"] == y for r, y in zip(rows, truth, strict=True)) / len(truth)
    assert round(accuracy, 4) == round(report["test"]["accuracy"], 4)


def test_a_lora_run_exports_as_an_adapter_or_merged(tiny_model, labels, data, tmp_path):
    """Both forms of a LoRA run's model label the test rows as the run scored them; the merged
    one is a plain model (no peft needed) with the run's labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuning_core.errors import ExportError
    from tuning_core.export import write_model
    from tuning_core.predict import load_classifier, predict

    plan = plan_dict(tiny_model, freezing="lora", lora_rank=4, lora_alpha=8, epochs=2.0)
    report = recipe.train_and_evaluate(plan, data, tmp_path / "run")
    texts, truth = recipe.load_splits(data)["test"]

    def accuracy(model, tokenizer, names) -> float:
        rows = predict(model, tokenizer, names, texts, max_length=32)
        return sum(r["label"] == y for r, y in zip(rows, truth, strict=True)) / len(truth)

    write_model(tmp_path / "run", report, tmp_path / "merged", "merged")
    assert (tmp_path / "merged" / "model.safetensors").exists()
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert [merged.config.id2label[i] for i in range(len(labels))] == labels
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert round(accuracy(merged, tokenizer, labels), 4) == round(report["test"]["accuracy"], 4)

    write_model(tmp_path / "run", report, tmp_path / "adapter", "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    adapter = load_classifier(tmp_path / "adapter", labels)
    assert round(accuracy(*adapter), 4) == round(report["test"]["accuracy"], 4)
    with pytest.raises(ExportError, match="LoRA adapter"):
        write_model(tmp_path / "run", report, tmp_path / "full", "full")
