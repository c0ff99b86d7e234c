"""Tests for the knowledge package: the shipped data loads, and validation catches mistakes."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest

import knowledge
from knowledge import (
    DOMAINS,
    EMBEDDED_MODEL_ID,
    KINDS,
    REQUIRED_NOTE_IDS,
    KnowledgeError,
    ModelCard,
    Note,
    get_model,
    get_note,
    load_catalogue,
    load_notes,
    models_by,
    validate_catalogue,
    validate_notes,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

ENCODER_LORA = {
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
    "xlm-roberta": ("query", "value"),
    "electra": ("query", "value"),
    "distilbert": ("q_lin", "v_lin"),
    "deberta-v2": ("query_proj", "value_proj"),
    "modernbert": ("Wqkv",),
}
DECODER_LORA = {
    arch: ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    for arch in ("llama", "qwen2")
}


def _raw(filename: str) -> dict:
    return tomllib.loads(resources.files("knowledge").joinpath(filename).read_text("utf-8"))


def _model(model_id: str, **overrides: object) -> dict:
    entry = {
        "id": model_id,
        "kind": "encoder",
        "params_m": 10.0,
        "layers": 2,
        "hidden": 64,
        "max_positions": 128,
        "languages": ["en"],
        "domain": "general",
        "licence": "mit",
        "architecture": "bert",
        "lora_targets": ["query", "value"],
        "embedded": False,
        "source": "https://example.org/card",
        "summary": "A test model.",
    }
    entry.update(overrides)
    return entry


def _catalogue(*extra: dict) -> dict:
    return {"model": [_model(EMBEDDED_MODEL_ID, embedded=True), *extra]}


def _note(note_id: str, **overrides: object) -> dict:
    entry = {
        "id": note_id,
        "title": "T",
        "text": "Some text.",
        "source": "A paper, 2020",
    }
    entry.update(overrides)
    return entry


def _problems(excinfo: pytest.ExceptionInfo[KnowledgeError]) -> str:
    return str(excinfo.value)


# ------------------------------------------------------------------- the shipped files


def test_shipped_catalogue_loads() -> None:
    catalogue = load_catalogue()
    assert len(catalogue) >= 30
    assert all(isinstance(card, ModelCard) for card in catalogue.values())
    assert all(key == card.id for key, card in catalogue.items())


def test_shipped_catalogue_has_the_models_the_planner_names() -> None:
    catalogue = load_catalogue()
    for model_id in (
        EMBEDDED_MODEL_ID,
        "microsoft/MiniLM-L12-H384-uncased",
        "bert-base-uncased",
        "bert-large-uncased",
        "distilbert-base-uncased",
        "roberta-base",
        "roberta-large",
        "microsoft/deberta-v3-small",
        "microsoft/deberta-v3-base",
        "google/electra-small-discriminator",
        "google/electra-base-discriminator",
        "answerdotai/ModernBERT-base",
        "FacebookAI/xlm-roberta-base",
        "dmis-lab/biobert-base-cased-v1.2",
    ):
        assert model_id in catalogue, model_id
    assert any(card.domain == "tweets" for card in catalogue.values())
    assert catalogue["FacebookAI/xlm-roberta-base"].languages == ("multi",)


def test_shipped_catalogue_covers_every_family_and_domain() -> None:
    cards = list(load_catalogue().values())
    encoders = [card for card in cards if card.kind == "encoder"]
    architectures = {card.architecture for card in encoders}
    for family in ("bert", "distilbert", "roberta", "deberta-v2", "electra", "modernbert"):
        assert family in architectures, family
    assert any("minilm" in card.id.casefold() for card in encoders)
    assert any(card.architecture == "xlm-roberta" for card in encoders)
    # mDeBERTa: the DeBERTa-v2 architecture with a multilingual vocabulary
    assert any(card.architecture == "deberta-v2" and "multi" in card.languages for card in cards)
    assert sum("multi" in card.languages for card in encoders) >= 3
    for domain in DOMAINS:
        assert any(card.domain == domain for card in encoders), domain
    assert len([card for card in cards if card.kind == "decoder"]) >= 4


def test_every_card_states_a_known_kind() -> None:
    raw = _raw("models.toml")
    assert all("kind" in entry for entry in raw["model"])
    for card in load_catalogue().values():
        assert card.kind in KINDS, card.id
        expected = ENCODER_LORA if card.kind == "encoder" else DECODER_LORA
        assert card.architecture in expected, card.id
    assert get_model(EMBEDDED_MODEL_ID).kind == "encoder"


def test_decoders_target_the_attention_projections() -> None:
    decoders = [card for card in load_catalogue().values() if card.kind == "decoder"]
    assert decoders
    for card in decoders:
        assert {"q_proj", "v_proj"} <= set(card.lora_targets), card.id
        assert not card.embedded


def test_exactly_one_embedded_model_and_it_is_minilm() -> None:
    embedded = [card for card in load_catalogue().values() if card.embedded]
    assert [card.id for card in embedded] == [EMBEDDED_MODEL_ID]
    card = embedded[0]
    assert (card.layers, card.hidden, card.max_positions) == (6, 384, 512)
    assert card.params_m == pytest.approx(22.7)
    assert card.licence == "apache-2.0"
    assert card.languages == ("en",)


def test_shipped_catalogue_facts_are_sane() -> None:
    for card in load_catalogue().values():
        assert card.domain in DOMAINS
        assert card.lora_targets and card.languages
        assert card.source.startswith("https://")
        assert card.summary.strip() and "\n" not in card.summary
        # width and depth imply a lower bound on size: 12 * hidden^2 parameters per layer
        assert card.params_m * 1e6 > 12 * card.hidden**2 * card.layers * 0.9, card.id


def test_lora_targets_match_the_architecture() -> None:
    expected = {**ENCODER_LORA, **DECODER_LORA}
    for card in load_catalogue().values():
        assert card.lora_targets == expected[card.architecture], card.id


# Tiny configs (2 layers, width 32) of each catalogued architecture, to check the LoRA target
# names against the installed transformers' module names without downloading anything.
_TINY_CONFIGS = {
    "bert": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "vocab_size": 100,
    },
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, "vocab_size": 100},
    "deberta-v2": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "vocab_size": 100,
        "relative_attention": True,
        "pos_att_type": ["p2c", "c2p"],
    },
    "modernbert": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        # its default special-token ids sit near 50280, so keep the default vocabulary
    },
    "llama": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 64,
        "vocab_size": 100,
    },
}
for _arch in ("roberta", "xlm-roberta", "electra"):
    _TINY_CONFIGS[_arch] = _TINY_CONFIGS["bert"]
_TINY_CONFIGS["qwen2"] = _TINY_CONFIGS["llama"]


@pytest.mark.parametrize(
    "architecture", sorted({card.architecture for card in load_catalogue().values()})
)
def test_lora_targets_exist_in_transformers(architecture: str) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.AutoConfig.for_model(architecture, **_TINY_CONFIGS[architecture])
    model = transformers.AutoModel.from_config(config)
    linear_names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    targets = {
        t
        for card in load_catalogue().values()
        if card.architecture == architecture
        for t in card.lora_targets
    }
    assert targets <= linear_names, sorted(targets - linear_names)


def test_shipped_notes_load_with_every_required_id() -> None:
    notes = load_notes()
    assert all(isinstance(note, Note) for note in notes.values())
    for note_id in REQUIRED_NOTE_IDS:
        assert note_id in notes, note_id
    for note in notes.values():
        assert note.title.strip() and note.text.strip() and note.source.strip()


@pytest.mark.parametrize(
    "note_id",
    [
        "embedded-default-model",
        "max-length-p99",
        "dynamic-padding",
        "full-finetune-default",
        "head-only-small-data",
        "lora-large-model",
        "freeze-bottom-layers",
        "trainer-defaults-lr-batch",
        "weight-decay-zero",
        "dropout-pretrained",
        "label-smoothing-conflicts",
        "early-stopping",
        "metric-macro-f1",
        "metric-accuracy",
        "seed-variance",
        "lora-rank",
    ],
)
def test_required_note_exists(note_id: str) -> None:
    assert get_note(note_id).id == note_id


def test_loaders_are_cached() -> None:
    assert load_catalogue() is load_catalogue()
    assert load_notes() is load_notes()


def test_shipped_files_validate_as_raw_toml() -> None:
    assert validate_catalogue(_raw("models.toml")) == load_catalogue()
    assert validate_notes(_raw("notes.toml"), required=REQUIRED_NOTE_IDS) == load_notes()


# ------------------------------------------------------------------------------ lookups


def test_models_by_without_filters_is_the_whole_catalogue_by_size() -> None:
    cards = models_by()
    assert {card.id for card in cards} == set(load_catalogue())
    sizes = [card.params_m for card in cards]
    assert sizes == sorted(sizes)


def test_models_by_kind_and_size() -> None:
    decoders = models_by(kind="decoder")
    assert len(decoders) >= 4 and all(card.kind == "decoder" for card in decoders)
    small = models_by(kind="encoder", max_params_m=70)
    assert small and all(card.kind == "encoder" and card.params_m <= 70 for card in small)
    assert EMBEDDED_MODEL_ID in [card.id for card in small]
    assert models_by(max_params_m=0.001) == []


def test_models_by_domain() -> None:
    for domain in ("tweets", "biomedical", "legal", "finance", "code"):
        cards = models_by(domain=domain)
        assert cards and all(card.domain == domain for card in cards), domain
    assert "ProsusAI/finbert" in [card.id for card in models_by(domain="finance")]


def test_models_by_language_includes_multilingual_models() -> None:
    german = {card.id for card in models_by(language="DE")}
    assert "FacebookAI/xlm-roberta-base" in german  # "multi"
    assert "meta-llama/Llama-3.2-1B" in german  # lists "de"
    assert "roberta-base" not in german
    multi = models_by(language="multi")
    assert multi and all("multi" in card.languages for card in multi)
    assert "microsoft/mdeberta-v3-base" in [card.id for card in multi]


def test_models_by_licence_predicate() -> None:
    seen: list[str] = []

    def permissive(licence: str) -> bool:
        seen.append(licence)
        return licence in {"mit", "apache-2.0"}

    cards = models_by(licence_ok=permissive)
    assert cards and all(card.licence in {"mit", "apache-2.0"} for card in cards)
    assert "unknown" in seen and "llama3.2" in seen
    ids = [card.id for card in cards]
    assert "ProsusAI/finbert" not in ids and "meta-llama/Llama-3.2-1B" not in ids


def test_models_by_combines_filters() -> None:
    cards = models_by(kind="encoder", domain="general", language="en", max_params_m=150)
    assert cards
    for card in cards:
        assert card.kind == "encoder" and card.domain == "general" and card.params_m <= 150
        assert "en" in card.languages or "multi" in card.languages


def test_models_by_rejects_unknown_kind_or_domain() -> None:
    with pytest.raises(ValueError, match="kind"):
        models_by(kind="seq2seq")
    with pytest.raises(ValueError, match="domain"):
        models_by(domain="cooking")


def test_get_model_exact_and_aliases() -> None:
    assert get_model("roberta-base") is load_catalogue()["roberta-base"]
    assert get_model("FacebookAI/roberta-base") is load_catalogue()["roberta-base"]
    assert get_model("google-bert/bert-base-uncased").id == "bert-base-uncased"
    assert get_model("xlm-roberta-base").id == "FacebookAI/xlm-roberta-base"
    assert get_model("Sentence-Transformers/All-MiniLM-L6-v2").id == EMBEDDED_MODEL_ID


def test_get_model_unknown_is_none() -> None:
    assert get_model("someone/not-a-catalogued-model") is None
    assert get_model("./runs/my-checkpoint") is None
    # only the legacy organisations are stripped: another org's bert-base-uncased is unknown
    assert get_model("someone/bert-base-uncased") is None


def test_get_note_typo_suggests_the_closest_id() -> None:
    with pytest.raises(KeyError) as excinfo:
        get_note("erly-stopping")
    assert "early-stopping" in str(excinfo.value)


def test_get_note_unknown_without_close_match() -> None:
    with pytest.raises(KeyError, match="zzzz"):
        get_note("zzzz")


# --------------------------------------------------------------------------- validation


def test_valid_minimal_catalogue() -> None:
    catalogue = validate_catalogue(_catalogue(_model("org/other", params_m=5)))
    assert set(catalogue) == {EMBEDDED_MODEL_ID, "org/other"}
    other = catalogue["org/other"]
    assert other.params_m == 5.0 and isinstance(other.params_m, float)
    assert other.languages == ("en",) and other.lora_targets == ("query", "value")
    assert other.kind == "encoder"


def test_decoder_kind_is_kept() -> None:
    entry = _model(
        "org/tiny-lm", kind="decoder", architecture="llama", lora_targets=["q_proj", "v_proj"]
    )
    assert validate_catalogue(_catalogue(entry))["org/tiny-lm"].kind == "decoder"


def test_missing_kind_is_an_error_despite_the_dataclass_default() -> None:
    entry = _model("org/no-kind")
    del entry["kind"]
    with pytest.raises(KnowledgeError, match=r"org/no-kind.*missing field 'kind'"):
        validate_catalogue(_catalogue(entry))


def test_unknown_kind_detected() -> None:
    with pytest.raises(KnowledgeError) as excinfo:
        validate_catalogue(_catalogue(_model("org/x", kind="seq2seq")))
    message = _problems(excinfo)
    assert "org/x" in message and "kind" in message and "seq2seq" in message


def test_model_card_built_in_code_defaults_to_encoder() -> None:
    # tuning_core.recommend.model_facts builds cards for unknown local models without a kind
    card = ModelCard(
        id="./runs/local",
        params_m=1.0,
        layers=1,
        hidden=8,
        max_positions=16,
        languages=("unknown",),
        domain="general",
        licence="unknown",
        architecture="bert",
        lora_targets=("query", "value"),
        embedded=False,
        source="./runs/local/config.json",
        summary="read from config.json",
    )
    assert card.kind == "encoder"


def test_validate_catalogue_reports_all_problems_at_once() -> None:
    raw = _catalogue(
        _model("org/broken-one", layers=-3, domain="astrology"),
        _model("org/broken-two", lora_targets=[], hidden="wide"),
    )
    del raw["model"][2]["source"]
    with pytest.raises(KnowledgeError) as excinfo:
        validate_catalogue(raw)
    message = _problems(excinfo)
    assert "org/broken-one" in message and "org/broken-two" in message
    for field in ("layers", "domain", "lora_targets", "hidden", "source"):
        assert field in message, field
    assert len(excinfo.value.problems) == 5
    assert isinstance(excinfo.value, ValueError)


def test_duplicate_model_id_detected() -> None:
    with pytest.raises(KnowledgeError, match=r"org/twice.*duplicate"):
        validate_catalogue(_catalogue(_model("org/twice"), _model("org/twice")))


def test_unknown_domain_detected() -> None:
    with pytest.raises(KnowledgeError) as excinfo:
        validate_catalogue(_catalogue(_model("org/x", domain="cooking")))
    message = _problems(excinfo)
    assert "org/x" in message and "domain" in message and "cooking" in message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"params_m": 0}, "params_m"),
        ({"params_m": "big"}, "params_m"),
        ({"params_m": True}, "params_m"),
        ({"layers": 2.5}, "layers"),
        ({"max_positions": 0}, "max_positions"),
        ({"languages": []}, "languages"),
        ({"languages": "en"}, "languages"),
        ({"lora_targets": [""]}, "lora_targets"),
        ({"embedded": "no"}, "embedded"),
        ({"source": "   "}, "source"),
        ({"licence": 3}, "licence"),
        ({"kind": 1}, "kind"),
        ({"kind": ""}, "kind"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_field_detected(overrides: dict, field: str) -> None:
    with pytest.raises(KnowledgeError) as excinfo:
        validate_catalogue(_catalogue(_model("org/bad", **overrides)))
    message = _problems(excinfo)
    assert "org/bad" in message and field in message


def test_missing_fields_named() -> None:
    entry = _model("org/sparse")
    del entry["layers"], entry["summary"]
    with pytest.raises(KnowledgeError) as excinfo:
        validate_catalogue(_catalogue(entry))
    assert "'layers'" in _problems(excinfo) and "'summary'" in _problems(excinfo)


def test_entry_without_id_is_named_by_position() -> None:
    entry = _model("x")
    del entry["id"]
    with pytest.raises(KnowledgeError, match=r"model #2: missing field 'id'"):
        validate_catalogue(_catalogue(entry))


def test_no_embedded_model_detected() -> None:
    raw = {"model": [_model(EMBEDDED_MODEL_ID)]}
    with pytest.raises(KnowledgeError, match="embedded"):
        validate_catalogue(raw)


def test_two_embedded_models_detected() -> None:
    with pytest.raises(KnowledgeError, match="2 models have embedded"):
        validate_catalogue(_catalogue(_model("org/also", embedded=True)))


def test_wrong_embedded_model_detected() -> None:
    raw = {"model": [_model(EMBEDDED_MODEL_ID), _model("org/other", embedded=True)]}
    with pytest.raises(KnowledgeError) as excinfo:
        validate_catalogue(raw)
    assert EMBEDDED_MODEL_ID in _problems(excinfo) and "org/other" in _problems(excinfo)


def test_bad_top_level_shape() -> None:
    with pytest.raises(KnowledgeError, match=r"no \[\[model\]\]"):
        validate_catalogue({})
    with pytest.raises(KnowledgeError, match="array of tables"):
        validate_catalogue({"model": {"id": "x"}})
    with pytest.raises(KnowledgeError, match="unknown key 'models'"):
        validate_catalogue({**_catalogue(), "models": []})


def test_shipped_catalogue_with_two_mistakes_reports_both() -> None:
    raw = copy.deepcopy(_raw("models.toml"))
    raw["model"][1]["layers"] = 0
    raw["model"][2]["domain"] = "poetry"
    with pytest.raises(KnowledgeError) as excinfo:
        validate_catalogue(raw)
    assert raw["model"][1]["id"] in _problems(excinfo)
    assert raw["model"][2]["id"] in _problems(excinfo)


def test_validate_notes_reports_all_problems_at_once() -> None:
    raw = {
        "note": [
            _note("fine"),
            _note("no-source", source=""),
            _note("bad-title", title=7),
            _note("fine"),
        ]
    }
    with pytest.raises(KnowledgeError) as excinfo:
        validate_notes(raw, required=("fine", "must-exist"))
    message = _problems(excinfo)
    assert "no-source" in message and "source" in message
    assert "bad-title" in message and "title" in message
    assert "'fine': duplicate id" in message
    assert "must-exist" in message
    assert len(excinfo.value.problems) == 4


def test_validate_notes_valid() -> None:
    notes = validate_notes({"note": [_note("a"), _note("b")]})
    assert notes["a"] == Note(id="a", title="T", text="Some text.", source="A paper, 2020")


def test_validate_notes_unknown_field() -> None:
    with pytest.raises(KnowledgeError, match=r"note 'a': unknown field 'url'"):
        validate_notes({"note": [_note("a", url="https://x")]})


# ------------------------------------------------------------------------------ hygiene


def test_import_does_not_pull_heavy_dependencies() -> None:
    code = (
        "import knowledge, sys; "
        "assert not any(m in sys.modules for m in ('torch','transformers','textual'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_data_files_live_in_the_package() -> None:
    package_dir = resources.files("knowledge")
    assert package_dir.joinpath("models.toml").is_file()
    assert package_dir.joinpath("notes.toml").is_file()
    assert Path(knowledge.__file__).name == "__init__.py"


@pytest.mark.parametrize(
    "question, note_id",
    [
        ("what is label smoothing?", "label-smoothing-conflicts"),
        ("how many seeds should I compare?", "seed-variance"),
        ("what is gradual unfreezing", "gradual-unfreezing"),
        ("why freeze the bottom layers?", "freeze-bottom-layers"),
        ("why bf16 on a CPU?", "bf16-autocast-cpu"),
        ("what is a linear probe?", "linear-probe-then-fine-tune"),
    ],
)
def test_questions_find_the_note_that_answers_them(question, note_id):
    found = knowledge.search_notes(question)
    assert found and found[0][0].id == note_id, [(n.id, s) for n, s in found]
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)


def test_a_question_no_note_covers_finds_nothing():
    assert knowledge.search_notes("what is the capital of France?") == []
    assert knowledge.search_notes("") == []


def test_the_chat_answers_a_technique_question_from_its_notes_with_sources(tmp_path):
    from assistant.planner import Planner

    planner = Planner(tmp_path / "runs")
    reply = planner.handle("what is label smoothing?")[0].text
    note = knowledge.get_note("label-smoothing-conflicts")
    assert reply.startswith(f"> **{note.title}**") and f"> Source: {note.source}" in reply
    assert planner.state.stage == "task"  # a question, not a task: nothing was set
    planner.state.stage = "plan"  # where every question is answered, with a note or without
    assert "no note" in planner.handle("explain the offside rule")[0].text
