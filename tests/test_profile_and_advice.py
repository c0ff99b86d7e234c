import knowledge
from tuning_core.hardware import GpuInfo, Resources, probe_resources
from tuning_core.plan import EMBEDDED_MODEL_ID
from tuning_core.profile import DataProfile, profile_rows
from tuning_core.recommend import recommend_plan


def splits_with_problems():
    train_texts = [
        "good day",
        "good day",
        "bad day",
        "bad day",
        "fine",
        "",
        "lovely weather",
        "same text",
    ]
    train_labels = ["pos", "pos", "neg", "pos", "pos", "neg", "pos", "neg"]
    return {
        "train": (train_texts, train_labels),
        "validation": (["lovely weather", "new text"], ["pos", "neg"]),
        "test": (["other"], ["neg"]),
    }


def test_profile_counts_duplicates_conflicts_empties_and_leakage(tiny_model):
    profile = profile_rows(splits_with_problems(), str(tiny_model))
    assert profile.rows == {"train": 8, "validation": 2, "test": 1}
    assert profile.label_counts == {"neg": 3, "pos": 5}
    assert profile.imbalance_ratio == round(5 / 3, 2)
    assert profile.exact_duplicates == 2  # "good day" and "bad day" seen twice
    assert profile.conflicting_texts == 1  # "bad day" is both neg and pos
    assert profile.empty_texts == 1
    assert profile.leaked_texts == {"validation": 1, "test": 0}
    lengths = profile.token_lengths
    assert 2 <= lengths["p50"] <= lengths["p90"] <= lengths["p99"] <= lengths["max"]
    assert DataProfile.from_dict(profile.to_dict()) == profile
    # the quality findings ride along
    assert profile.near_duplicates == 0
    assert profile.leaked_near == {"validation": 0, "test": 0}
    ids = [f["id"] for f in profile.findings]
    assert ids[0] == "leakage" and "conflicting_labels" in ids and "empty_texts" in ids
    lines = profile.summary_lines()
    assert lines[0].startswith("[high] 1 validation/test row duplicates training texts")
    assert "Rows: train 8, validation 2, test 1" in lines
    assert any(line.startswith("Leakage: 1 validation texts also in train") for line in lines)


def test_profiles_saved_before_the_findings_still_load():
    old = {
        "rows": {"train": 10},
        "label_counts": {"a": 5, "b": 5},
        "imbalance_ratio": 1.0,
        "token_lengths": {"p50": 5, "p90": 6, "p99": 7, "max": 8},
        "share_longer_than": {"8": 0.0},
        "exact_duplicates": 0,
        "conflicting_texts": 0,
        "empty_texts": 0,
        "leaked_texts": {},
        "tokenizer": "x",
        "notes": [],
    }
    profile = DataProfile.from_dict(old)
    assert profile.findings == [] and profile.near_duplicates == 0 and profile.leaked_near == {}
    assert profile.summary_lines()[0].startswith("Rows: train 10")
    assert DataProfile.from_dict({**old, "added_later": 1}) == profile


def test_profile_finds_near_duplicates_and_truncation(tiny_model):
    texts = ["Great movie http://x.co @bob", "great movie https://y.io @alice"]
    texts += ["good " * 80, "bad day", "fine", "happy today"]
    profile = profile_rows(
        {"train": (texts, ["a", "a", "b", "b", "a", "b"]), "test": (["GOOD day"], ["a"])},
        str(tiny_model),
        max_length=64,
    )
    assert profile.near_duplicates == 1
    found = {f["id"]: f for f in profile.findings}
    assert found["truncation"]["count"] == 1
    assert found["near_duplicates"]["samples"][0]["duplicate_of"]["row"] == 0
    assert profile.length_rows == 6


def test_token_lengths_are_sampled_on_big_data(monkeypatch):
    import tuning_core.profile as profile_module

    monkeypatch.setattr(profile_module, "LENGTH_SAMPLE", 3)
    monkeypatch.setattr(profile_module, "LONGEST_EXTRA", 1)
    texts = ["hello world"] * 4 + ["a much longer text " * 40, "hi there"]
    profile = profile_rows({"train": (texts, ["a", "b"] * 3)}, EMBEDDED_MODEL_ID)
    assert profile.length_rows == 3
    assert profile.token_lengths["max"] > 160  # the longest text is always counted
    assert any("random sample of 3 of 6" in note for note in profile.notes)
    assert any("(counted on 3 sampled rows)" in line for line in profile.summary_lines())


def test_profile_uses_the_embedded_tokenizer():
    profile = profile_rows(
        {"train": (["hello world"] * 3 + ["a much longer text " * 40], ["a", "a", "b", "b"])},
        EMBEDDED_MODEL_ID,
    )
    assert profile.token_lengths["p50"] == 4  # [CLS] hello world [SEP]
    assert profile.token_lengths["max"] > 160
    assert profile.truncated_share(128) == 0.25


def test_probe_resources_reads_this_machine():
    res = probe_resources()
    assert res.cpu_cores >= 1 and res.ram_gb > 0
    assert Resources.from_dict(res.to_dict()) == res
    assert "CPU cores" in res.describe()


def small_profile(**overrides):
    base = dict(
        rows={"train": 3000, "validation": 300, "test": 300},
        label_counts={"a": 1000, "b": 1000, "c": 1000},
        imbalance_ratio=1.0,
        token_lengths={"p50": 30, "p90": 50, "p99": 70, "max": 140},
        share_longer_than={"72": 0.008, "128": 0.001},
        exact_duplicates=0,
        conflicting_texts=0,
        empty_texts=0,
        leaked_texts={},
    )
    base.update(overrides)
    return DataProfile(**base)


CPU = Resources(cpu_cores=2, ram_gb=24.0)


def test_every_choice_has_a_reason_backed_by_a_note():
    rec = recommend_plan("single_label_classification", small_profile(), CPU)
    notes = knowledge.load_notes()
    for field in (
        "base_model",
        "max_length",
        "freezing",
        "learning_rate",
        "batch_size",
        "epochs",
        "weight_decay",
        "dropout",
        "label_smoothing",
        "early_stopping_patience",
        "metric",
        "seed",
    ):
        assert field in rec.reasons, field
        assert rec.reasons[field].note in notes
        assert rec.reasons[field].text
    assert rec.plan.base_model == EMBEDDED_MODEL_ID
    assert rec.plan.max_length == 72  # p99 70 rounded up to a multiple of 8
    assert "0.8%" in rec.reasons["max_length"].text
    assert rec.plan.freezing == "none"
    assert rec.plan.metric == "macro_f1"
    assert rec.estimate_minutes > 0


def test_rules_follow_the_data_and_the_machine():
    conflicted = recommend_plan(
        "single_label_classification", small_profile(conflicting_texts=90), CPU
    )
    assert conflicted.plan.label_smoothing == 0.1
    binary = recommend_plan(
        "single_label_classification",
        small_profile(label_counts={"a": 1500, "b": 1500}),
        CPU,
    )
    assert binary.plan.metric == "accuracy"
    tiny_gpu = Resources(cpu_cores=8, ram_gb=64, gpus=(GpuInfo("small", 4.0),))
    large = recommend_plan(
        "single_label_classification", small_profile(), tiny_gpu, {"base_model": "roberta-large"}
    )
    assert large.plan.freezing == "lora"
    assert large.plan.extras["lora_targets"]
    # pure: same inputs, same output
    assert (
        recommend_plan("single_label_classification", small_profile(), CPU).to_dict()
        == recommend_plan("single_label_classification", small_profile(), CPU).to_dict()
    )


def test_unknown_local_models_are_read_from_their_config(tmp_path):
    import json

    from tuning_core.recommend import model_facts

    encoder = tmp_path / "enc"
    encoder.mkdir()
    (encoder / "config.json").write_text(
        json.dumps(
            {"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 3, "vocab_size": 1000}
        )
    )
    card = model_facts(str(encoder))
    assert (card.kind, card.layers, card.hidden, card.lora_targets) == (
        "encoder",
        3,
        64,
        ("query", "value"),
    )
    assert "outside the catalogue" in card.summary
    decoder = tmp_path / "dec"
    decoder.mkdir()
    (decoder / "config.json").write_text(
        json.dumps(
            {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2}
        )
    )
    assert model_facts(str(decoder)).kind == "decoder"
    assert model_facts(str(decoder)).lora_targets == ("q_proj", "v_proj")
    assert model_facts("someone/not-in-the-catalogue") is None


def test_small_data_trains_longer_at_a_higher_learning_rate():
    small = recommend_plan(
        "single_label_classification",
        small_profile(rows={"train": 400, "validation": 300, "test": 300}),
        CPU,
    )
    assert (small.plan.learning_rate, small.plan.epochs, small.plan.early_stopping_patience) == (
        1e-4,
        10.0,
        3,
    )
    assert small.reasons["epochs"].note == "small-data-longer-training"
    assert "50 steps per epoch" in small.reasons["epochs"].text
    large = recommend_plan("single_label_classification", small_profile(), CPU)  # 3000 rows
    assert (large.plan.learning_rate, large.plan.epochs) == (5e-5, 3.0)
