"""Training options of the plan: class-weighted loss, layer-wise learning-rate decay and gradual
unfreezing. Each is checked piece by piece on the tiny model, then in short in-process runs that
must repeat themselves bit for bit, also across a stop mid-epoch and a resume."""

from __future__ import annotations

import csv
import itertools
import json
import math

import pytest
import torch
from conftest import TINY_PLAN
from tiny import sentiment_rows

from tuning_core import recipe
from tuning_core.data import inspect_data
from tuning_core.errors import PlanError
from tuning_core.plan import Plan

NEW_FIELDS = ("class_weights", "layerwise_lr_decay", "gradual_unfreezing")
STEPS_PER_EPOCH = 12  # 96 training rows of the sentiment file, batches of 8


def plan_dict(tiny_model, **options) -> dict:
    # no early stopping: the tiny model plateaus for a few epochs before it learns
    settings = {**TINY_PLAN, "early_stopping_patience": 0, **options}
    return Plan(base_model=str(tiny_model), max_length=32, **settings).validate().to_dict()


def comparable(report: dict) -> dict:
    return {k: report[k] for k in ("validation", "test", "loss_curve", "global_step")}


def train(plan, data, out_dir, **kwargs) -> dict:
    return recipe.train_and_evaluate(plan, data, out_dir, **kwargs)


def stop_after(steps: int):
    """`recipe.stop_callback` asked once per optimizer step: it stops after `steps` of them."""
    calls = [0]

    def requested() -> bool:
        calls[0] += 1
        return calls[0] >= steps

    return recipe.stop_callback(requested)


pytestmark = pytest.mark.usefixtures("one_thread")  # every comparison on one thread


@pytest.fixture(scope="module")
def imbalanced_data(tmp_path_factory) -> dict:
    """80 positive, 20 negative and 10 neutral rows."""
    wanted = {"positive": 80, "negative": 20, "neutral": 10}
    rows = []
    for text, label in sentiment_rows(80, seed=3):
        if wanted[label] > 0:
            wanted[label] -= 1
            rows.append((text, label))
    path = tmp_path_factory.mktemp("imbalanced") / "posts.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("text", "label"), *rows])
    return inspect_data(path).to_dict()


def make_trainer(plan, labels, tmp_path, class_weights=None, model=None, **args):
    from transformers import TrainingArguments

    recipe.quiet_libraries()
    training_args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        use_cpu=True,
        report_to="none",
        learning_rate=float(plan["learning_rate"]),
        weight_decay=float(plan["weight_decay"]),
        **args,
    )
    model = recipe.build_model(plan, labels) if model is None else model
    return recipe._trainer_class(plan, class_weights)(model=model, args=training_args)


# ---------------------------------------------------------------- the plan


def test_new_fields_default_off_and_round_trip():
    plan = Plan()
    assert (plan.class_weights, plan.layerwise_lr_decay, plan.gradual_unfreezing) == (
        False,
        1.0,
        False,
    )
    on = Plan(class_weights=True, layerwise_lr_decay=0.8, gradual_unfreezing=True)
    assert Plan.from_json(on.to_json()) == on
    assert set(NEW_FIELDS) <= set(json.loads(on.to_json()))
    # a plan saved before these fields existed still loads, with the options off
    old = {k: v for k, v in Plan(epochs=4).to_dict().items() if k not in NEW_FIELDS}
    assert Plan.from_dict(old) == Plan(epochs=4)


def test_new_fields_are_validated():
    with pytest.raises(PlanError) as err:
        Plan(layerwise_lr_decay=0.0, gradual_unfreezing=True, freezing="lora").validate()
    message = str(err.value)
    assert "layerwise_lr_decay" in message and "gradual_unfreezing needs freezing" in message
    for bad in (1.2, -0.5):
        assert any("layerwise_lr_decay" in p for p in Plan(layerwise_lr_decay=bad).problems())
    assert Plan(layerwise_lr_decay=1.0).problems() == []
    assert Plan(layerwise_lr_decay=0.8, freezing="lora").problems() == []
    assert any("epochs >= 2" in p for p in Plan(gradual_unfreezing=True, epochs=1).problems())
    for freezing in ("head_only", "bottom_k", "lora"):
        problems = Plan(gradual_unfreezing=True, freezing=freezing, freeze_layers=1).problems()
        assert any("gradual_unfreezing" in p for p in problems), freezing
    with pytest.raises(PlanError) as err:
        Plan.from_dict(
            {"class_weights": 1, "gradual_unfreezing": "yes", "layerwise_lr_decay": True}
        )
    message = str(err.value)
    assert "class_weights must be bool" in message
    assert "gradual_unfreezing must be bool" in message
    assert "layerwise_lr_decay must be float" in message
    assert Plan.from_dict({"layerwise_lr_decay": 1}).layerwise_lr_decay == 1.0


def test_options_off_leave_the_trainer_untouched(tiny_model):
    plan = plan_dict(tiny_model)
    old = {k: v for k, v in plan.items() if k not in NEW_FIELDS}
    for p in (plan, old):
        cls = recipe._trainer_class(p, None)
        assert cls.__name__ == "SeededTrainer"
        assert "compute_loss" not in cls.__dict__ and "create_optimizer" not in cls.__dict__


# ---------------------------------------------------------------- class weights


def test_class_weights_are_inverse_frequency_averaging_one_per_row():
    ids = [0] * 80 + [1] * 20 + [2] * 10
    weights = recipe.class_weights_for(ids, 3)
    assert weights == pytest.approx([110 / (3 * 80), 110 / (3 * 20), 110 / (3 * 10)])
    assert weights[0] * 80 == pytest.approx(weights[1] * 20) == pytest.approx(weights[2] * 10)
    assert sum(weights[y] for y in ids) / len(ids) == pytest.approx(1.0)
    assert recipe.class_weights_for([0, 1, 0, 1], 2) == [1.0, 1.0]
    # a class missing from training is never a target: it keeps a neutral weight
    assert recipe.class_weights_for([0, 0, 0, 2], 3) == pytest.approx([4 / 6, 1.0, 2.0])


def test_weighted_loss_with_label_smoothing(tiny_model, labels, tmp_path):
    from transformers import AutoTokenizer

    plan = plan_dict(tiny_model, label_smoothing=0.1)
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    batch = dict(tok(["great fun today", "awful phone", "the train", "sad"], padding=True))
    inputs = {k: torch.tensor(v) for k, v in batch.items()}
    inputs["labels"] = torch.tensor([2, 0, 1, 0])
    weights = [0.5, 2.0, 1.5]

    def loss_of(trainer, **kw):
        trainer.model.eval()  # no dropout
        with torch.no_grad():
            return trainer.compute_loss(trainer.model, dict(inputs), **kw)

    model = recipe.build_model(plan, labels)
    smoothing = {"model": model, "label_smoothing_factor": 0.1}
    stock = make_trainer(plan, labels, tmp_path, **smoothing)
    uniform = make_trainer(plan, labels, tmp_path, [1.0, 1.0, 1.0], **smoothing)
    weighted = make_trainer(plan, labels, tmp_path, weights, **smoothing)
    # unit weights: the same loss as the Trainer's own label smoother
    torch.testing.assert_close(loss_of(uniform), loss_of(stock))
    # weighted: (1 - eps) w_y nll_y + eps / K * sum_c w_c nll_c, summed over rows, over rows
    with torch.no_grad():
        logits = weighted.model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
    nll = -torch.log_softmax(logits, dim=-1)
    w = torch.tensor(weights)
    y = inputs["labels"]
    rows = 0.9 * w[y] * nll[torch.arange(4), y] + 0.1 / 3 * (nll * w).sum(-1)
    torch.testing.assert_close(loss_of(weighted), rows.sum() / 4)
    # with gradient accumulation the Trainer passes the labelled rows of the whole batch
    torch.testing.assert_close(
        loss_of(weighted, num_items_in_batch=torch.tensor(8)), rows.sum() / 8
    )
    assert weighted.loss_is_scaled_for_ga is True
    assert not torch.allclose(loss_of(weighted), loss_of(uniform))


@pytest.fixture(scope="module")
def weighted_runs(tiny_model, imbalanced_data, tmp_path_factory):
    plan = plan_dict(tiny_model, epochs=2.0, class_weights=True)
    # the unweighted run gets a plan dict from before the new fields existed
    old = {k: v for k, v in plan.items() if k not in NEW_FIELDS}
    out = tmp_path_factory.mktemp("weighted")
    return (
        train(old, imbalanced_data, out / "plain"),
        train(plan, imbalanced_data, out / "a"),
        train(plan, imbalanced_data, out / "b"),
    )


def test_class_weights_change_the_loss_and_repeat(weighted_runs, imbalanced_data):
    plain, weighted, again = weighted_runs
    assert plain["loss_curve"] != weighted["loss_curve"]
    assert plain["global_step"] == weighted["global_step"]
    assert comparable(weighted) == comparable(again)
    # the weights come from the training split: 65 / 16 / 8 rows after carving
    train_labels = recipe.load_splits(imbalanced_data)["train"][1]
    counts = [train_labels.count(label) for label in imbalanced_data["labels"]]
    assert sorted(counts) == [8, 16, 65]


# ---------------------------------------------------------------- layer-wise learning rates


def test_layerwise_groups_follow_depth(tiny_model, labels, tmp_path):
    lr, decay = 1e-3, 0.8
    plan = plan_dict(tiny_model, learning_rate=lr, layerwise_lr_decay=decay, weight_decay=0.01)
    trainer = make_trainer(plan, labels, tmp_path)
    optimizer = trainer.create_optimizer()
    where = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            assert id(param) not in where
            where[id(param)] = (group["lr"], group["weight_decay"])
    named = dict(trainer.model.named_parameters())
    assert len(where) == len(named)
    n_layers = 2
    expected_lr = {
        "classifier.weight": lr,
        "classifier.bias": lr,
        "bert.pooler.dense.weight": lr,
        "bert.encoder.layer.1.attention.self.query.weight": lr * decay,
        "bert.encoder.layer.1.output.LayerNorm.weight": lr * decay,
        "bert.encoder.layer.0.intermediate.dense.weight": lr * decay**2,
        "bert.embeddings.word_embeddings.weight": lr * decay ** (n_layers + 1),
        "bert.embeddings.LayerNorm.bias": lr * decay ** (n_layers + 1),
    }
    for name, rate in expected_lr.items():
        assert where[id(named[name])][0] == pytest.approx(rate), name
    for name, param in named.items():
        undecayed = name.endswith("bias") or "LayerNorm" in name
        assert where[id(param)][1] == (0.0 if undecayed else 0.01), name
    # the head comes first (it is the learning rate the Trainer logs), and the AdamW settings
    # are the Trainer's own
    assert optimizer.param_groups[0]["lr"] == pytest.approx(lr)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True

    # the same groups in the same order on every build (a resumed optimizer state relies on it)
    def layout(model, groups):
        names = {id(p): n for n, p in model.named_parameters()}
        return [([names[id(p)] for p in g["params"]], g["lr"], g["weight_decay"]) for g in groups]

    rebuilt = recipe.build_model(plan, labels)
    decay_names = trainer.get_decay_parameter_names(rebuilt)
    groups = recipe.layerwise_lr_groups(rebuilt, lr, decay, 0.01, decay_names)
    assert layout(rebuilt, groups) == layout(trainer.model, optimizer.param_groups)


def test_layerwise_groups_skip_frozen_parameters(tiny_model, labels):
    plan = plan_dict(tiny_model, freezing="bottom_k", freeze_layers=1, layerwise_lr_decay=0.5)
    model = recipe.build_model(plan, labels)
    groups = recipe.layerwise_lr_groups(model, 1.0, 0.5, 0.0, [])
    kept = {id(p) for g in groups for p in g["params"]}
    for name, param in model.named_parameters():
        assert (id(param) in kept) == param.requires_grad, name
    assert sorted({g["lr"] for g in groups}) == [0.5, 1.0]  # top layer and head only
    # through a LoRA wrapper: the adapters learn at their layer's rate, the head at the full one
    lora = recipe.build_model(plan_dict(tiny_model, freezing="lora", lora_rank=2), labels)
    rate = {
        id(p): g["lr"]
        for g in recipe.layerwise_lr_groups(lora, 1.0, 0.5, 0.0, [])
        for p in g["params"]
    }
    for name, param in lora.named_parameters():
        if param.requires_grad:
            expected = 0.5 if ".layer.1." in name else 0.25 if ".layer.0." in name else 1.0
            assert rate[id(param)] == expected, name


def test_layerwise_decay_run_repeats(tiny_model, data, tmp_path):
    plan = plan_dict(tiny_model, layerwise_lr_decay=0.8, epochs=3.0)
    first = train(plan, data, tmp_path / "a")
    assert first["global_step"] == 3 * STEPS_PER_EPOCH
    assert comparable(train(plan, data, tmp_path / "b")) == comparable(first)


# ---------------------------------------------------------------- gradual unfreezing


def test_unfreezing_schedule(tiny_model, labels, tmp_path):
    model = recipe.build_model(plan_dict(tiny_model), labels)
    start = recipe.unfreezing_epochs(model, 6)
    for name, epoch in start.items():
        if name.startswith(("classifier", "bert.pooler")):
            assert epoch == 0, name
        elif name.startswith("bert.encoder.layer.1."):
            assert epoch == 1, name
        else:  # layer 0 and the embeddings
            assert name.startswith(("bert.encoder.layer.0.", "bert.embeddings.")), name
            assert epoch == 2, name
    # a deeper model with few epochs: 6 layers in 2 groups from the top, embeddings last
    from tiny import make_tiny_model

    deep = recipe.build_model(plan_dict(make_tiny_model(tmp_path / "deep", layers=6)), labels)
    start = recipe.unfreezing_epochs(deep, 3)
    by_layer = {
        int(n.split(".")[3]): e for n, e in start.items() if n.startswith("bert.encoder.layer.")
    }
    assert by_layer == {5: 1, 4: 1, 3: 1, 2: 2, 1: 2, 0: 2}
    assert start["bert.embeddings.word_embeddings.weight"] == 2
    # one epoch per group as long as there are layers; never a group without a layer
    many = recipe.unfreezing_epochs(deep, 20)
    assert sorted({e for n, e in many.items() if "layer." in n}) == [1, 2, 3, 4, 5, 6]
    assert max(many.values()) == 6
    # requires_grad is a function of the epoch alone
    for epoch in (2, 0, 1, 5, 0):
        recipe.apply_unfreezing(deep, epoch, 3)
        for name, param in deep.named_parameters():
            assert param.requires_grad == (start[name] <= epoch), (epoch, name)


def test_each_epoch_unfreezes_the_next_layer_group(tiny_model, data, tmp_path):
    from safetensors.torch import load_file

    # weight decay on: a frozen parameter has no gradient, and AdamW must not decay it either
    plan = plan_dict(tiny_model, gradual_unfreezing=True, weight_decay=0.1)
    stop = stop_after(2 * STEPS_PER_EPOCH)
    report = train(plan, data, tmp_path, callbacks=[stop], interrupted=lambda: stop.stopped)
    assert report == {"interrupted": True, "global_step": 2 * STEPS_PER_EPOCH}
    initial = load_file(str(tiny_model / "model.safetensors"))

    def changed_after(step: int) -> set[str]:
        path = tmp_path / "checkpoints" / f"checkpoint-{step}" / "model.safetensors"
        return {
            name
            for name, value in load_file(str(path)).items()
            if name.startswith("classifier") or not torch.equal(value, initial[name[5:]])
        }

    head = changed_after(STEPS_PER_EPOCH)
    assert all(n.startswith(("classifier", "bert.pooler")) for n in head), head
    assert {"bert.pooler.dense.weight", "classifier.weight"} <= head
    top = changed_after(2 * STEPS_PER_EPOCH) - head
    assert top and all(n.startswith("bert.encoder.layer.1.") for n in top), top


def test_gradual_unfreezing_run_repeats(tiny_model, data, tmp_path):
    plan = plan_dict(tiny_model, gradual_unfreezing=True, epochs=3.0)
    first = train(plan, data, tmp_path / "a")
    assert first["global_step"] == 3 * STEPS_PER_EPOCH
    assert comparable(train(plan, data, tmp_path / "b")) == comparable(first)


def test_gradual_unfreezing_refuses_a_frozen_plan(tiny_model, data, tmp_path):
    plan = {**plan_dict(tiny_model), "gradual_unfreezing": True, "freezing": "head_only"}
    with pytest.raises(ValueError, match="gradual_unfreezing"):
        train(plan, data, tmp_path)


# ---------------------------------------------------------------- all together, resumed


def test_all_options_stop_mid_epoch_and_resume_like_an_uninterrupted_run(
    tiny_model, data, tmp_path
):
    plan = plan_dict(
        tiny_model,
        class_weights=True,
        layerwise_lr_decay=0.8,
        gradual_unfreezing=True,
        label_smoothing=0.1,
        weight_decay=0.01,
    )
    whole = train(plan, data, tmp_path / "whole")
    assert whole["global_step"] == 6 * STEPS_PER_EPOCH
    assert comparable(train(plan, data, tmp_path / "again")) == comparable(whole)
    # stopped in the middle of epoch 1 (layer 1 training, layer 0 and the embeddings not yet)
    stopped_at = STEPS_PER_EPOCH + 5
    stop = stop_after(stopped_at)
    run_dir = tmp_path / "stopped"
    report = train(plan, data, run_dir, callbacks=[stop], interrupted=lambda: stop.stopped)
    assert report == {"interrupted": True, "global_step": stopped_at}
    assert (run_dir / "checkpoints" / f"checkpoint-{stopped_at}").exists()
    resumed = train(plan, data, run_dir, resume=True)
    assert comparable(resumed) == comparable(whole)
    assert math.isclose(resumed["epochs_run"], 6.0)


def test_training_order_modes():
    lengths = [(i * 37) % 61 + 3 for i in range(203)]  # 25 batches of 8 and a short last one
    length = recipe.training_order(lengths, 8, seed=5, sampling="length")
    buckets = recipe.training_order(lengths, 8, seed=5, sampling="buckets")
    shuffled = recipe.training_order(lengths, 8, seed=5, sampling="random")
    for order in (length, buckets, shuffled):
        assert sorted(order) == list(range(203))
    assert recipe.training_order(lengths, 8, seed=5, sampling="buckets") == buckets

    def batches(order):
        return [tuple(order[i : i + 8]) for i in range(0, len(order), 8)]

    # buckets: the very batches of the length grouping, in another order, the short one last
    assert sorted(batches(buckets)) == sorted(batches(length))
    assert batches(buckets)[-1] == batches(length)[-1]
    assert batches(buckets) != batches(length)

    def sweeps(order):  # batches longer than the one before: a length grouping has few
        tops = [max(lengths[i] for i in b) for b in batches(order)]
        return sum(b > a for a, b in itertools.pairwise(tops))

    assert sweeps(length) < sweeps(buckets)

    def spread(order):  # mean range of lengths inside a batch: grouping keeps it small
        return sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches(order))

    assert spread(buckets) == spread(length) < spread(shuffled) / 3
    with pytest.raises(ValueError, match="sampling must be one of"):
        recipe.training_order(lengths, 8, seed=5, sampling="sorted")


def test_eval_rows_sample_checks_each_epoch_and_the_report_reads_all(tiny_model, data, tmp_path):
    from transformers import TrainerCallback

    class Seen(TrainerCallback):
        def __init__(self):
            self.sizes = []

        def on_evaluate(self, args, state, control, eval_dataloader=None, **kwargs):
            self.sizes.append(len(eval_dataloader.dataset))

    validation = sum(1 for _ in recipe.load_splits(data)["validation"][1])
    full, sampled = Seen(), Seen()
    plan = plan_dict(tiny_model, epochs=2.0)
    report = train(plan, data, tmp_path / "full", callbacks=[full])
    assert full.sizes == [validation, validation]
    plan = plan_dict(tiny_model, epochs=2.0, eval_rows=6, sampling="buckets")
    report = train(plan, data, tmp_path / "sampled", callbacks=[sampled])
    assert sampled.sizes[:2] == [6, 6] and validation > 6
    assert sum(c["support"] for c in report["validation"]["per_class"].values()) == validation
    again = train(plan, data, tmp_path / "again")
    assert comparable(again) == comparable(report)


# ---------------------------------------------------------------- the output layer's start


def test_zero_head_starts_every_class_level_and_still_learns(tiny_model, labels, data, tmp_path):
    assert Plan().head_init == "random"
    assert any("head_init" in p for p in Plan(head_init="ones").problems())
    plan = plan_dict(tiny_model, head_init="zeros", epochs=3.0)
    model = recipe.build_model(plan, labels)
    assert model.classifier.weight.abs().sum() == 0 and model.classifier.bias.abs().sum() == 0
    random_head = recipe.build_model(plan_dict(tiny_model), labels)
    assert random_head.classifier.weight.abs().sum() > 0
    # every class starts at the same score, whatever the text
    batch = torch.randint(5, 100, (3, 8))
    logits = model(input_ids=batch).logits
    assert torch.equal(logits, torch.zeros_like(logits))
    first = train(plan, data, tmp_path / "a")
    losses = [loss for _step, loss in first["loss_curve"]]
    assert losses[-1] < losses[0]
    assert comparable(train(plan, data, tmp_path / "b")) == comparable(first)


def test_probe_head_starts_from_a_fitted_logistic_regression(tiny_model, labels, data, tmp_path):
    """head_init "probe" (linear probe, then fine-tune): before any training the model scores
    its training rows exactly as a logistic regression fitted on its output layer's inputs."""
    import numpy as np
    from datasets import Dataset
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoTokenizer

    texts, names = recipe.load_splits(data)["train"]
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    encoded = tokenizer(texts, truncation=True, max_length=32)
    rows = Dataset.from_dict({**encoded, "labels": [labels.index(y) for y in names]})
    plan = plan_dict(tiny_model, head_init="probe", epochs=3.0)
    with pytest.raises(ValueError, match="training rows"):
        recipe.build_model(plan, labels)

    probed = recipe.build_model(plan, labels, rows).eval()
    random_start = recipe.build_model(plan_dict(tiny_model), labels).eval()
    with torch.no_grad():
        features, scores, random_scores = [], [], []
        for ids in rows["input_ids"]:
            batch = torch.tensor([ids])
            features.append(probed.bert(input_ids=batch).pooler_output[0].numpy())
            scores.append(torch.softmax(probed(input_ids=batch).logits[0], -1).numpy())
            random_scores.append(torch.softmax(random_start(input_ids=batch).logits[0], -1).numpy())
    fitted = LogisticRegression(max_iter=2000).fit(np.array(features), rows["labels"])
    # the untrained model scores each row as the regression on its own features does
    np.testing.assert_allclose(np.array(scores), fitted.predict_proba(features), atol=1e-5)
    assert not np.allclose(np.array(random_scores), np.array(scores), atol=1e-3)
    # the same fit on every build (no random draw in it)
    again = recipe.build_model(plan, labels, rows)
    assert torch.equal(again.classifier.weight, probed.classifier.weight)
    first = train(plan, data, tmp_path / "a")
    losses = [loss for _step, loss in first["loss_curve"]]
    assert losses[-1] < losses[0]
    assert comparable(train(plan, data, tmp_path / "b")) == comparable(first)
