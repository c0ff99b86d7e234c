"""Facts about a base model: the catalogue entry, or one read from a local folder's config;
and whether its files can be loaded safely.

Owns `model_facts`, shared by the recommender (which model, how to freeze) and the forecast
(how much memory, how long), and the checks the planner makes when a model is picked and
before a run starts (`check_model_files`, `consents_needed`, `check_model`): a missing folder,
an unknown hub name offline, missing weights, and remote code or pickle weights the person has
not agreed to, each as a `ModelError` saying what to do. Only the standard library,
`knowledge` and the standalone recipe (whose own check guards the worker and the exported
train.py) are imported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import knowledge
from tuning_core import recipe
from tuning_core.errors import ModelError
from tuning_core.plan import EMBEDDED_MODEL_ID


def check_model_files(name: str) -> dict:
    """`recipe.model_files(name)` for a model that can be loaded at all; ModelError when its
    folder, its config.json or its weights are missing, or it is a hub name the offline hub
    cannot give."""
    files = recipe.model_files(name)
    if files["folder"] is None:
        if files["missing_path"]:
            path = Path(name).expanduser().absolute()
            raise ModelError(
                f"There is no folder `{path}`. Check the path, or name the folder that holds the "
                "model's config.json and model.safetensors."
            )
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            raise ModelError(
                f"I can't find the model `{name}`: it is not a folder here, not in the Hugging "
                "Face cache, and the hub is offline (HF_HUB_OFFLINE=1). Download it where there "
                f"is a network (`hf download {name} --local-dir DIR`), copy DIR here and say "
                f"`use model DIR`; or keep the embedded default `{EMBEDDED_MODEL_ID}`."
            )
        return files  # a hub name, fetched by transformers when the run starts
    folder = files["folder"]
    if not files["config"]:
        raise ModelError(
            f"`{folder}` has no config.json, so it is not a saved model: name the folder that "
            "holds config.json and the weights (model.safetensors)."
        )
    if files["weights"] is None:
        raise ModelError(
            f"`{folder}` has a config.json but no weights: model.safetensors is missing. Copy "
            "the weights file into it (or save the model again with `save_pretrained`), or "
            "choose another model."
        )
    return files


def consents_needed(files: dict) -> dict[str, bool]:
    """The plan consents loading these files needs: its own Python code, pickle weights."""
    return {
        "trust_remote_code": bool(files.get("remote_code")),
        "allow_pickle_weights": files.get("weights") == "pickle",
    }


def consent_question(files: dict) -> str:
    """Why model `files` needs the person's yes, and what saying yes allows."""
    name, needs = files["name"], consents_needed(files)
    parts = []
    if needs["trust_remote_code"]:
        parts.append(
            "it asks to run its own Python code from its files ("
            + ", ".join(f"`{c}`" for c in files["remote_code"])
            + "): that code runs with your permissions, so allow it only if you trust who wrote it"
        )
    if needs["allow_pickle_weights"]:
        parts.append(
            "its weights are only in pickle form (`pytorch_model.bin`), which can run code when "
            "read; safetensors cannot (converting them to `model.safetensors` avoids this)"
        )
    allow = " and ".join(
        what
        for what, on in (
            ("its remote code", needs["trust_remote_code"]),
            ("its pickle weights", needs["allow_pickle_weights"]),
        )
        if on
    )
    return (
        f"**`{name}` needs your consent:** " + "; and ".join(parts) + ". "
        f"Allow {allow} for `{name}` only? (`yes` / `no`; another model will ask again)"
    )


def check_model(plan: dict) -> dict:
    """The plan's base model files, loadable with the consents the plan records; ModelError
    saying what is missing or not agreed to (checked when a run starts)."""
    name = plan["base_model"]
    files = check_model_files(name)
    agreed = plan.get("consent_model") == name
    needs = consents_needed(files)
    missing = [k for k, on in needs.items() if on and not (agreed and plan.get(k))]
    if missing:
        what = {
            "trust_remote_code": "its own Python code",
            "allow_pickle_weights": "its pickle weights (pytorch_model.bin)",
        }
        raise ModelError(
            f"`{name}` needs your consent to {' and '.join(what[k] for k in missing)} before it "
            f"loads, and the plan has none for it: say `use model {name}` and I'll ask."
        )
    return files


def model_facts(name: str) -> knowledge.ModelCard | None:
    """The catalogue entry for `name`, or one read from a local folder's config.json."""
    card = knowledge.get_model(name)
    if card is not None:
        return card
    config_file = Path(name).expanduser() / "config.json"
    if not config_file.exists():
        return None
    config = json.loads(config_file.read_text())
    hidden = int(config.get("hidden_size", config.get("dim", 0)) or 0)
    layers = int(config.get("num_hidden_layers", config.get("n_layers", 0)) or 0)
    vocab = int(config.get("vocab_size", 0) or 0)
    # embeddings plus ~12 h^2 per transformer block: close enough to size memory and time
    params = (vocab * hidden + layers * 12 * hidden * hidden) / 1e6
    decoder = any(str(a).endswith("ForCausalLM") for a in config.get("architectures") or ())
    return knowledge.ModelCard(
        id=name,
        params_m=round(max(params, 0.01), 2),
        layers=layers,
        hidden=hidden,
        max_positions=int(config.get("max_position_embeddings", 512)),
        languages=("unknown",),
        domain="general",
        licence="unknown",
        architecture=str(config.get("model_type", "unknown")),
        lora_targets=("q_proj", "v_proj") if decoder else ("query", "value"),
        embedded=False,
        source=str(config_file),
        summary="read from the model's config.json (outside the catalogue)",
        kind="decoder" if decoder else "encoder",
    )
