"""Each recommender rule pinned on constructed profiles and machines (issue 4, point 6)."""

from __future__ import annotations

import pytest

import knowledge
from tuning_core.hardware import GpuInfo, Resources
from tuning_core.plan import EMBEDDED_MODEL_ID, Plan
from tuning_core.profile import DataProfile
from tuning_core.recommend import (
    CLASS_WEIGHT_IMBALANCE,
    TINY_ROWS,
    positive_label,
    recommend_plan,
)

TASK = "single_label_classification"
CPU = Resources(cpu_cores=2, ram_gb=24.0, models_here=(EMBEDDED_MODEL_ID,))
ONLINE_GPU = Resources(
    cpu_cores=16,
    ram_gb=128.0,
    gpus=(GpuInfo("A100", 80.0, 8.0),),
    hub=True,
    models_here=(EMBEDDED_MODEL_ID,),
)
SMALL_GPU = Resources(cpu_cores=8, ram_gb=32.0, gpus=(GpuInfo("T4", 4.0, 7.5),), hub=True)


def profile(train=3000, labels=None, p99=70, **overrides) -> DataProfile:
    labels = labels or {"a": train // 3, "b": train // 3, "c": train - 2 * (train // 3)}
    counts = list(labels.values())
    base = dict(
        rows={"train": train, "validation": 300, "test": 300},
        label_counts=labels,
        imbalance_ratio=round(max(counts) / min(counts), 2),
        token_lengths={"p50": p99 // 2, "p90": p99 * 3 // 4, "p95": p99 * 5 // 6, "p99": p99,
                       "max": p99 * 2},
        share_longer_than={"72": 0.008, "128": 0.001, "512": 0.0},
        exact_duplicates=0,
        conflicting_texts=0,
        empty_texts=0,
        leaked_texts={},
        text_traits={"mentions": 0.0, "hashtags": 0.0, "links": 0.0, "non_ascii_letters": 0.0},
    )  # fmt: skip
    base.update(overrides)
    return DataProfile(**base)


def test_tiny_data_gets_lora_on_a_base_size_model_and_full_tuning_on_minilm():
    tiny = profile(train=TINY_ROWS - 80)
    base = recommend_plan(TASK, tiny, ONLINE_GPU, {"base_model": "roberta-base"})
    assert base.plan.freezing == "lora"
    assert f"only {TINY_ROWS - 80} training rows" in base.reasons["freezing"].text
    # measured: on MiniLM at 100 rows full fine-tuning beat a head on the frozen encoder
    small = recommend_plan(TASK, tiny, CPU)
    assert small.plan.freezing == "none" and small.plan.learning_rate == 1e-4
    assert small.reasons["freezing"].note == "head-only-small-data"
    assert "did worse here" in small.reasons["freezing"].text
    enough = recommend_plan(TASK, profile(train=TINY_ROWS + 300), ONLINE_GPU,
                            {"base_model": "roberta-base"})  # fmt: skip
    assert enough.plan.freezing == "none"


def test_head_only_on_a_sentence_embedder_switches_to_mean_pooling(tmp_path, sentiment_csv):
    from assistant.planner import Planner

    planner = Planner(tmp_path / "runs")
    planner.handle(f"sentiment: {sentiment_csv}")
    planner.handle("")
    assert planner.state.plan["pooling"] == "default"
    text = "\n".join(r.text for r in planner.handle("head only"))
    assert planner.state.plan["freezing"] == "head_only"
    assert planner.state.plan["pooling"] == "mean" and "pooling → mean" in text
    planner.handle("full fine-tuning")
    assert planner.state.plan["pooling"] == "default"


def test_a_large_model_on_little_data_gets_lora():
    rec = recommend_plan(TASK, profile(train=2000), ONLINE_GPU, {"base_model": "roberta-large"})
    assert rec.plan.freezing == "lora"
    assert rec.plan.extras["lora_targets"] == ["query", "value"]
    assert (rec.plan.lora_rank, rec.plan.lora_alpha) == (8, 16)
    assert "lora_rank" in rec.reasons
    plenty = recommend_plan(TASK, profile(train=60000), ONLINE_GPU, {"base_model": "roberta-large"})
    assert plenty.plan.freezing == "none"


def test_heavy_imbalance_gets_class_weights_and_a_macro_metric():
    skewed = {"a": 2000, "b": 300, "c": 2000 // int(CLASS_WEIGHT_IMBALANCE * 2)}
    rec = recommend_plan(TASK, profile(train=sum(skewed.values()), labels=skewed), CPU)
    assert rec.plan.metric == "macro_f1"
    assert rec.plan.class_weights is True
    assert "macro-F1" in rec.reasons["class_weights"].text
    mild = {"a": 1200, "b": 900, "c": 400}  # 3x: below the threshold
    assert recommend_plan(TASK, profile(train=2500, labels=mild), CPU).plan.class_weights is False


def test_long_texts_get_a_longer_max_length_or_a_model_with_more_positions():
    short = recommend_plan(TASK, profile(p99=60), CPU)
    long = recommend_plan(TASK, profile(p99=300), CPU)
    assert (short.plan.max_length, long.plan.max_length) == (64, 304)
    capped = recommend_plan(TASK, profile(p99=2000), CPU)
    assert capped.plan.max_length == 512  # MiniLM's positions
    assert "ModernBERT" in capped.reasons["max_length"].text
    assert capped.reasons["max_length"].note == "long-texts-more-positions"
    chosen = recommend_plan(TASK, profile(p99=2000), ONLINE_GPU)
    assert knowledge.get_model(chosen.plan.base_model).max_positions >= 2000
    assert chosen.plan.max_length == 2000


def test_a_small_gpu_gets_lora_and_a_smaller_micro_batch():
    rec = recommend_plan(
        TASK, profile(train=30000, p99=256), SMALL_GPU, {"base_model": "roberta-large"}
    )
    assert rec.plan.freezing == "lora"
    # 30,000 rows on a GPU: effective batch 16, reached by accumulating smaller micro-batches
    assert rec.plan.batch_size < 16 and rec.plan.batch_size * rec.plan.grad_accum == 16
    assert rec.reasons["batch_size"].note == "batch-fits-memory"
    assert "accumulated" in rec.reasons["batch_size"].text
    assert rec.plan.precision == "fp16"  # a T4 (compute capability 7.5) has no bf16


def test_precision_follows_the_device():
    assert recommend_plan(TASK, profile(), ONLINE_GPU).plan.precision == "bf16"
    assert recommend_plan(TASK, profile(), CPU).plan.precision == "fp32"
    assert recommend_plan(TASK, profile(), SMALL_GPU).reasons["precision"].note == (
        "precision-by-device"
    )


def test_the_model_follows_domain_language_size_and_licence():
    tweets = profile(text_traits={"mentions": 0.4, "hashtags": 0.3, "links": 0.0,
                                  "non_ascii_letters": 0.0})  # fmt: skip
    online = recommend_plan(TASK, tweets, ONLINE_GPU)
    assert knowledge.get_model(online.plan.base_model).domain == "tweets"
    offline = recommend_plan(TASK, tweets, CPU)
    assert offline.plan.base_model == EMBEDDED_MODEL_ID
    assert "would fit better" in offline.reasons["base_model"].text
    assert "40% of texts have @mentions" in offline.reasons["base_model"].text
    german = recommend_plan(TASK, profile(), ONLINE_GPU, {"language": "de"})
    assert "multi" in knowledge.get_model(german.plan.base_model).languages
    small = recommend_plan(TASK, profile(), ONLINE_GPU, {"max_params_m": 40})
    assert knowledge.get_model(small.plan.base_model).params_m <= 40
    legal = recommend_plan(TASK, profile(), ONLINE_GPU, {"domain": "legal"})
    assert legal.plan.base_model == "nlpaueb/legal-bert-base-uncased"
    permissive = recommend_plan(
        TASK, profile(), ONLINE_GPU, {"domain": "legal", "licence": "permissive"}
    )
    assert knowledge.get_model(permissive.plan.base_model).licence in ("mit", "apache-2.0")


def test_few_rows_keep_models_at_base_size():
    rec = recommend_plan(TASK, profile(train=600), ONLINE_GPU)
    assert knowledge.get_model(rec.plan.base_model).params_m <= 200
    big = recommend_plan(TASK, profile(train=50000), ONLINE_GPU, {"time_budget_min": 600})
    assert knowledge.get_model(big.plan.base_model).params_m > 200


def test_a_tight_time_budget_freezes_lower_layers_or_picks_a_smaller_model():
    data = profile(train=200000, p99=128)
    rec = recommend_plan(TASK, data, CPU, {"time_budget_min": 300})
    assert rec.plan.freezing == "bottom_k" and rec.plan.freeze_layers == 3
    assert "skips their backward pass" in rec.reasons["freezing"].text
    roomy = recommend_plan(TASK, data, CPU, {"time_budget_min": 100000})
    assert roomy.plan.freezing == "none"


def test_the_search_space_and_trials_follow_the_plan_and_the_budget():
    rec = recommend_plan(TASK, profile(), CPU)
    assert rec.plan.trials == 0 and "time budget" in rec.reasons["trials"].text
    space = rec.plan.search_space
    assert space["learning_rate"]["log"] is True
    assert space["learning_rate"]["low"] < rec.plan.learning_rate < space["learning_rate"]["high"]
    assert "lora_rank" not in space and "label_smoothing" not in space
    budget = recommend_plan(TASK, profile(), CPU, {"time_budget_min": 60})
    assert budget.plan.trials >= 5
    assert "within your 60 min budget" in budget.reasons["trials"].text
    tight = recommend_plan(TASK, profile(), CPU, {"time_budget_min": 3})
    assert tight.plan.trials == 0 and "your 3 min budget buys ~" in tight.reasons["trials"].text
    lora = recommend_plan(TASK, profile(train=2000), ONLINE_GPU, {"base_model": "roberta-large"})
    assert lora.plan.search_space["lora_rank"]["choices"] == [4, 8, 16, 32]
    assert "layerwise_lr_decay" not in lora.plan.search_space
    conflicted = recommend_plan(TASK, profile(conflicting_texts=100), CPU)
    assert "label_smoothing" in conflicted.plan.search_space
    assert "gradual_unfreezing" not in rec.plan.search_space  # 3000 rows
    small = recommend_plan(TASK, profile(train=500), CPU).plan.search_space
    assert small["gradual_unfreezing"] == {"choices": [False, True]}
    assert small["epochs"]["low"] >= 2  # it trains the head alone in the first epoch
    Plan.from_dict(budget.plan.to_dict())  # the space validates and round-trips


def test_a_negated_label_pair_is_scored_by_the_named_class():
    assert positive_label(["irony", "non_irony"]) == "irony"
    assert positive_label(["not-spam", "spam"]) == "spam"
    assert positive_label(["negative", "positive"]) is None
    rec = recommend_plan(TASK, profile(labels={"irony": 1500, "non_irony": 1450}), CPU)
    assert (rec.plan.metric, rec.plan.positive_label) == ("f1", "irony")
    balanced = recommend_plan(TASK, profile(labels={"neg": 1500, "pos": 1450}), CPU)
    assert balanced.plan.metric == "accuracy"


@pytest.mark.parametrize(
    "resources,constraints",
    [(CPU, {}), (ONLINE_GPU, {}), (SMALL_GPU, {"base_model": "roberta-large"})],
)
def test_every_decision_has_a_reason_and_a_note(resources, constraints):
    rec = recommend_plan(TASK, profile(), resources, constraints)
    notes = knowledge.load_notes()
    for name in (
        "base_model", "max_length", "freezing", "learning_rate", "batch_size", "grad_accum",
        "epochs", "weight_decay", "dropout", "label_smoothing", "early_stopping_patience",
        "class_weights", "layerwise_lr_decay", "gradual_unfreezing", "precision", "metric",
        "search_space", "trials", "seed", "sampling", "eval_rows", "pooling",
    ):  # fmt: skip
        assert rec.reasons[name].text, name
        assert rec.reasons[name].note in notes, (name, rec.reasons[name].note)
    assert recommend_plan(TASK, profile(), resources, constraints).to_dict() == rec.to_dict()


def test_early_stopping_reads_a_validation_sample_when_validation_outgrows_training():
    def irony(train):
        half = train // 2
        return profile(
            train=train,
            labels={"irony": half, "non_irony": train - half},
            rows={"train": train, "validation": 955, "test": 784},
        )

    small = recommend_plan(TASK, irony(400), CPU)
    assert small.plan.eval_rows == 400
    assert "955 rows" in small.reasons["eval_rows"].text
    assert "400-row sample" in small.reasons["eval_rows"].text
    assert recommend_plan(TASK, irony(120), CPU).plan.eval_rows == 300  # EVAL_ROWS_MIN at least
    full = recommend_plan(TASK, irony(2862), CPU)
    assert full.plan.eval_rows == 0
    assert "all 955 validation rows" in full.reasons["eval_rows"].text
    assert full.plan.sampling == "length"


def test_the_output_layer_starts_from_a_probe_on_enough_rows_for_full_tuning():
    two = {"irony": 1500, "non_irony": 1500}
    rec = recommend_plan(TASK, profile(train=3000, labels=two), CPU)
    assert rec.plan.freezing == "none" and rec.plan.head_init == "probe"
    assert rec.reasons["head_init"].note == "linear-probe-then-fine-tune"
    assert "3,000 training rows" in rec.reasons["head_init"].text
    four = recommend_plan(TASK, profile(train=3000), CPU)
    assert four.plan.head_init == "random"
    assert "with 3 labels" in four.reasons["head_init"].text
    small = recommend_plan(TASK, profile(train=400, labels={"a": 200, "b": 200}), CPU)
    assert small.plan.freezing == "none" and small.plan.head_init == "random"
    assert "below 1,000" in small.reasons["head_init"].text
    lora = recommend_plan(
        TASK, profile(train=3000, labels=two), SMALL_GPU, {"base_model": "roberta-large"}
    )
    assert lora.plan.freezing != "none" and lora.plan.head_init == "random"
