"""Facts about a base model: the catalogue entry, or one read from a local folder's config.

Owns `model_facts`, shared by the recommender (which model, how to freeze) and the forecast
(how much memory, how long). Only the standard library and `knowledge` are imported.
"""

from __future__ import annotations

import json
from pathlib import Path

import knowledge


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
