"""Tiny random decoder LLMs and a small, learnable instruction set for fast tests.

`make_tiny_llama(dir)` trains a byte-level BPE tokenizer on the fly (special tokens `<s>`,
`</s>`, `<pad>` and NO chat template, so the default template path is exercised) and saves a
randomly initialised 2-layer `LlamaForCausalLM` beside it. `make_tiny_gpt2(dir)` does the same
for GPT-2 with a GPT-2-like tokenizer: one `<|endoftext|>` token as bos and eos, and no pad
token. `instruction_rows` / `write_instruction_jsonl` write a synthetic instruction set the
tiny models can learn in a few CPU seconds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "candle", "rocket", "maple"]
CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Egypt": "Cairo",
    "Peru": "Lima",
    "Kenya": "Nairobi",
    "Norway": "Oslo",
}
SYSTEM = "You are a terse assistant."


def instruction_rows(n: int = 60, seed: int = 0) -> list[dict[str, str]]:
    """`n` prompt/response pairs: "Repeat the word X." -> "X X", "Capital of C?" -> "City."."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        if rng.random() < 0.5:
            word = rng.choice(WORDS)
            rows.append({"prompt": f"Repeat the word {word}.", "response": f"{word} {word}"})
        else:
            country = rng.choice(sorted(CAPITALS))
            rows.append({"prompt": f"Capital of {country}?", "response": f"{CAPITALS[country]}."})
    return rows


def write_instruction_jsonl(
    path: Path, n: int = 60, seed: int = 0, style: str = "prompt_response"
) -> Path:
    """Write `instruction_rows(n, seed)` as JSON lines in one of two layouts:
    `prompt_response` ({"prompt", "response"}) or `messages` ({"messages": [...]}, with a
    system turn)."""
    if style not in ("prompt_response", "messages"):
        raise ValueError(f"unknown style {style!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in instruction_rows(n, seed):
            if style == "messages":
                row = {
                    "messages": [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": row["prompt"]},
                        {"role": "assistant", "content": row["response"]},
                    ]
                }
            fh.write(json.dumps(row) + "\n")
    return path


def _corpus() -> list[str]:
    corpus = []
    for row in instruction_rows(200, seed=1):
        corpus += [row["prompt"], row["response"], f"<|user|>\n{row['prompt']}<|assistant|>\n"]
    corpus += [" ".join(WORDS + list(CAPITALS) + list(CAPITALS.values())), SYSTEM] * 5
    corpus += ["<|system|>\n<|user|>\n<|assistant|>\n", "Hello there, how are you? Fine, thanks!"]
    return corpus


def _byte_level_bpe(special: list[str], vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer)
    return tok


def make_tiny_llama(
    directory: Path, hidden: int = 32, layers: int = 2, init_range: float = 0.3
) -> Path:
    """A random LlamaForCausalLM + byte-level BPE tokenizer (no chat template) in `directory`.

    Weights are drawn with std `init_range` = 0.3, not the usual 0.02: LoRA on the attention
    leaves the random lm_head frozen, and with 0.02 its logits stay so flat that no reply can
    become likely (validation loss barely moves from ln(vocab))."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = _byte_level_bpe(["<pad>", "<s>", "</s>"])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=256,
    )
    fast.save_pretrained(directory)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=256,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        initializer_range=init_range,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def make_tiny_gpt2(directory: Path, hidden: int = 32, layers: int = 2) -> Path:
    """A random GPT2LMHeadModel + byte-level BPE tokenizer whose only special token is
    `<|endoftext|>` (bos = eos, no pad token, no chat template), like the real GPT-2."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = _byte_level_bpe(["<|endoftext|>"])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        model_max_length=256,
    )
    fast.save_pretrained(directory)
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_embd=hidden,
        n_layer=layers,
        n_head=2,
        n_positions=256,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(directory)
    return directory
