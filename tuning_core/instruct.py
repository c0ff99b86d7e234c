"""Instruction tuning of a decoder LLM with LoRA: the building blocks.

Standalone on purpose: this module imports only the standard library at module level (torch,
transformers and peft are imported inside the functions that need them) and nothing from
tunesmith, so that it can be inlined into, or shipped beside, an exported plain training script.

The pieces, in the order a run uses them:

- `read_instruction_jsonl`: a JSON-lines file -> conversations (lists of {"role", "content"}).
- `ensure_chat_template`: give a tokenizer without a chat template `DEFAULT_CHAT_TEMPLATE`, and a
  pad token (its eos token) when it has none.
- `encode_conversation`: render with the chat template, tokenize, and label only the assistant
  replies (everything else is -100). `masked_view` shows what is trained and what is masked.
- `instruction_profile`: lengths, truncation and duplicates of a whole set.
- `collate`, `evaluate_loss`, `perplexity`: dynamic padding and loss per trained token.
- `lora_target_modules`: the attention projections LoRA should adapt in a given model.
- `generate_side_by_side`: greedy replies of the base and the tuned model on held-out prompts.

How replies are found: the chat template is rendered on prefixes of the conversation. For the
assistant turn i, `render(messages[:i], add_generation_prompt=True)` is everything the model is
shown before it answers, and `render(messages[:i + 1])` ends right after the answer, so the
characters between the two are the reply as the template writes it: its content and the
template's end-of-turn marker (trailing whitespace after the marker is not trained, since
generation stops at the marker). Tokens whose first character falls inside a reply are trained;
all others (system and user text, role markers, the generation prompt, separators) are masked.
This works with any template that renders a conversation's beginning the same way whatever
follows; templates that render the final assistant turn differently from earlier ones (such as
those that add an empty reasoning block to the last turn only) fall back to finding the reply's
content in the full text and training it plus an immediately following special token.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")
IGNORE_INDEX = -100
# perplexity() is exp(loss) with the loss capped here, so it stays finite (and JSON-safe) for
# a model that is wildly wrong: exp(50) is about 5e21, far beyond any real vocabulary size.
PERPLEXITY_LOSS_CAP = 50.0

# A Zephyr-like template: each turn is a role marker, a newline, the content and the eos token.
# The eos token doubles as the end-of-turn marker, so a tuned model stops generating after its
# reply without any new special token (no embedding resize). It renders bos first when the
# tokenizer has one. No whitespace between turns, so nothing untrainable trails a reply.
# The role markers are plain text (several ordinary tokens each), not added special tokens.
DEFAULT_CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('roles must be system, user or assistant') }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# Attention projections by name. STRONG names are attention projections wherever they appear;
# WEAK names count only inside a module whose path mentions attention ("attn"/"attention"),
# since e.g. GPT-2's MLP also has a c_proj.
_STRONG_TARGETS = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "qkv_proj",
    "c_attn",
    "query",
    "key",
    "value",
    "query_key_value",
    "Wqkv",
    "q_lin",
    "k_lin",
    "v_lin",
    "out_lin",
)
_WEAK_TARGETS = ("c_proj", "q", "k", "v", "o", "out_proj")


# --------------------------------------------------------------------------------------------
# Reading


def _text(value: Any, where: str, what: str) -> str:
    """A message text: strings as they are, numbers as strings, anything else an error."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{where}: {what} must be a string, got {type(value).__name__}")


def _from_messages(turns: Any, where: str, key: str) -> list[dict[str, str]]:
    if not isinstance(turns, list):
        raise ValueError(f"{where}: '{key}' must be a list of {{role, content}} objects")
    sharegpt = {"human": "user", "gpt": "assistant", "system": "system", "user": "user"}
    messages = []
    for n, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            raise ValueError(f"{where}: message {n} must be an object with role and content")
        if "role" in turn:
            role, content = turn["role"], turn.get("content")
        elif "from" in turn:  # ShareGPT: {"from": "human" | "gpt" | "system", "value": ...}
            role, content = sharegpt.get(turn["from"], turn["from"]), turn.get("value")
        else:
            raise ValueError(f"{where}: message {n} has no 'role'")
        if role not in ROLES:
            raise ValueError(
                f"{where}: message {n} has role {role!r}; roles must be system, user or assistant"
            )
        if content is None:
            raise ValueError(f"{where}: message {n} ({role}) has no 'content'")
        messages.append({"role": role, "content": _text(content, where, f"message {n} content")})
    return messages


def _conversation_from_record(record: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "messages" in record or "conversations" in record:
        key = "messages" if "messages" in record else "conversations"
        messages = _from_messages(record[key], where, key)
    elif "instruction" in record:
        if "output" not in record:
            raise ValueError(f"{where}: an 'instruction' row needs an 'output'")
        prompt = _text(record["instruction"], where, "instruction").strip()
        extra = record.get("input")
        extra = "" if extra is None else _text(extra, where, "input").strip()
        if extra:
            prompt = f"{prompt}\n\n{extra}" if prompt else extra
        messages = [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": _text(record["output"], where, "output")},
        ]
    elif "prompt" in record:
        key = next((k for k in ("response", "completion", "output") if k in record), None)
        if key is None:
            raise ValueError(
                f"{where}: a 'prompt' row needs a 'response' (or 'completion' / 'output')"
            )
        messages = [
            {"role": "user", "content": _text(record["prompt"], where, "prompt")},
            {"role": "assistant", "content": _text(record[key], where, key)},
        ]
    else:
        keys = ", ".join(sorted(record)) or "none"
        raise ValueError(
            f"{where}: expected 'prompt'+'response', 'instruction'+'output' or 'messages'; "
            f"found keys: {keys}"
        )
    system = record.get("system")
    if system is not None and _text(system, where, "system").strip():
        if messages and messages[0]["role"] == "system":
            raise ValueError(f"{where}: both a 'system' field and a system message")
        messages.insert(0, {"role": "system", "content": _text(system, where, "system")})
    check_conversation(messages, where)
    return messages


def check_conversation(messages: list[dict[str, str]], where: str = "conversation") -> None:
    """Raise a one-line ValueError (prefixed with `where`) unless `messages` is trainable: roles
    system/user/assistant, a system turn only first, a user turn before the first reply, no
    empty user or assistant content, and the last turn an assistant reply."""
    if not messages:
        raise ValueError(f"{where}: empty conversation")
    for n, message in enumerate(messages, 1):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"{where}: message {n} has role {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"{where}: message {n} ({role}) content must be a string")
        if role == "system" and n != 1:
            raise ValueError(f"{where}: a system message may only come first (message {n})")
        if role == "assistant" and not content.strip():
            raise ValueError(f"{where}: empty assistant reply (message {n})")
        if role == "user" and not content.strip():
            raise ValueError(f"{where}: empty user message (message {n})")
    roles = [m["role"] for m in messages if m["role"] != "system"]
    if "assistant" not in roles:
        raise ValueError(f"{where}: no assistant reply to learn from")
    if roles[0] != "user":
        raise ValueError(f"{where}: the conversation must start with a user message")
    if roles[-1] != "assistant":
        raise ValueError(f"{where}: the conversation must end with an assistant reply")


def read_instruction_jsonl(path: str | Path) -> list[list[dict[str, str]]]:
    """Read a JSON-lines instruction file: one conversation per line, as a list of
    {"role", "content"} dicts. Each line is one of

    - {"prompt": ..., "response": ...} (or "completion" / "output" for the response),
    - {"instruction": ..., "input": ... (optional), "output": ...}: instruction and input are
      joined with a blank line into the user turn,
    - {"messages": [{"role", "content"}, ...]} (or "conversations"; ShareGPT's
      {"from": "human"/"gpt", "value"} turns are accepted too),

    each with an optional "system" field. Blank lines are skipped. Bad input raises a one-line
    ValueError that starts with "path:line:"."""
    path = Path(path)
    conversations = []
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
            conversations.append(_conversation_from_record(record, where))
    if not conversations:
        raise ValueError(f"{path}: no conversations (the file is empty)")
    return conversations


# --------------------------------------------------------------------------------------------
# Template and encoding


def ensure_chat_template(tokenizer: Any) -> bool:
    """Prepare `tokenizer` for instruction tuning, in place.

    - No chat template: sets `tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE` and returns True
      (False when the tokenizer already had a template, which is then left alone).
    - No pad token: sets `tokenizer.pad_token = tokenizer.eos_token`. Labels never depend on
      the pad id (padding is labelled -100 by `collate`), so replies still learn their eos.

    Nothing else changes: no tokens are added and the vocabulary keeps its size, so the model's
    embeddings need no resize. Raises ValueError when the tokenizer has no eos token (the
    default template uses it to end every turn)."""
    if tokenizer.eos_token is None:
        raise ValueError("the tokenizer has no eos token, which ends every turn of the template")
    changed = False
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
        changed = True
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return changed


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def _special_strings(tokenizer: Any) -> list[str]:
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False):
            specials.add(str(token))
    return sorted((s for s in specials if s), key=len, reverse=True)


def _reply_spans(tokenizer: Any, messages: list[dict[str, str]], text: str) -> list[tuple]:
    """Character spans of the assistant replies (content + end-of-turn marker) in `text`, the
    full rendering of `messages`."""
    spans = []
    floor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], generation_prompt=True)
        if not text.startswith(prompt) or len(prompt) < floor:
            raise ValueError(
                "the chat template renders the start of a conversation differently depending "
                "on what follows it, so the assistant replies cannot be located"
            )
        start = len(prompt)
        upto = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if text.startswith(upto) and len(upto) > start:
            end = start + len(upto[start:].rstrip())
        else:
            # The template writes the last turn differently; find the content in the full text
            # and take the end-of-turn special token right after it, if there is one.
            content = message["content"].strip()
            found = text.find(content, start)
            if found < 0:
                raise ValueError("the chat template does not reproduce an assistant reply")
            end = found + len(content)
            for special in _special_strings(tokenizer):
                if text.startswith(special, end):
                    end += len(special)
                    break
        spans.append((start, end))
        floor = end
    return spans


def _ids_and_mask(tokenizer: Any, text: str, spans: list[tuple]) -> tuple[list, list]:
    """Token ids of `text` and, per token, whether it belongs to a reply span."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        mask = [
            end > start and any(a <= start < b for a, b in spans)
            for start, end in enc["offset_mapping"]
        ]
        return ids, mask
    # Slow tokenizers have no offsets: tokenize the masked and trained pieces separately.
    ids, mask, position = [], [], 0
    pieces = []
    for a, b in spans:
        pieces += [(text[position:a], False), (text[a:b], True)]
        position = b
    pieces.append((text[position:], False))
    for piece, trained in pieces:
        if piece:
            piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
            ids += piece_ids
            mask += [trained] * len(piece_ids)
    return ids, mask


def _encode_full(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list, list]:
    check_conversation(messages)
    text = _render(tokenizer, messages, generation_prompt=False)
    return _ids_and_mask(tokenizer, text, _reply_spans(tokenizer, messages, text))


def encode_conversation(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int | None
) -> dict[str, Any]:
    """Tokenize one conversation with the tokenizer's chat template (see `ensure_chat_template`)
    and label it for response-only training.

    Returns `input_ids`, `attention_mask` and `labels` (lists of ints; labels are the token ids
    on the assistant replies, content plus end-of-turn marker, and -100 everywhere else),
    `truncated` (True when max_length cut into an assistant reply; sequences are cut from the
    right) and `response_tokens` (how many tokens are trained after the cut). The rendered text
    already holds the template's special tokens (bos), so none are added on top.
    `max_length=None` keeps the whole conversation."""
    ids, mask = _encode_full(tokenizer, messages)
    truncated = False
    if max_length is not None and len(ids) > max_length:
        truncated = any(mask[max_length:])
        ids, mask = ids[:max_length], mask[:max_length]
    return {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "labels": [t if m else IGNORE_INDEX for t, m in zip(ids, mask, strict=True)],
        "truncated": truncated,
        "response_tokens": sum(mask),
    }


def _shorten(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    keep = max(width - 1, 2)
    return text[: keep - keep // 2] + "…" + text[len(text) - keep // 2 :]


def masked_view(tokenizer: Any, encoded: dict[str, Any], width: int = 100) -> str:
    """One encoded example as short readable text, one line per stretch of tokens: masked
    (prompt) stretches are wrapped as `[masked: …]`, trained (reply) stretches stand bare, and
    newlines inside them show as ⏎. Every line fits in `width` characters (a longer stretch is
    shortened in the middle with …). Padding (attention 0) is left out, and a reply cut by
    max_length adds a last line "[cut at max_length]"."""
    width = max(int(width), 20)
    ids = list(encoded["input_ids"])
    labels = list(encoded["labels"])
    attention = list(encoded.get("attention_mask") or [1] * len(ids))
    groups: list[tuple[bool, list[int]]] = []
    for token, label, attend in zip(ids, labels, attention, strict=True):
        if not attend:
            continue
        trained = label != IGNORE_INDEX
        if groups and groups[-1][0] == trained:
            groups[-1][1].append(int(token))
        else:
            groups.append((trained, [int(token)]))
    lines = []
    for trained, tokens in groups:
        text = tokenizer.decode(tokens, skip_special_tokens=False).replace("\n", "⏎")
        if trained:
            lines.append(_shorten(text, width))
        else:
            lines.append(f"[masked: {_shorten(text, width - len('[masked: ]'))}]")
    if encoded.get("truncated"):
        lines.append("[cut at max_length]")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Profile


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": 0, "p95": 0, "max": 0}
    return {
        "median": statistics.median(values),
        "p95": _percentile(values, 0.95),
        "max": max(values),
    }


def instruction_profile(
    tokenizer: Any, conversations: list[list[dict[str, str]]], max_length: int
) -> dict[str, Any]:
    """Shape of an instruction set under a tokenizer's chat template, as plain JSON values:

    - `rows`, `max_length`;
    - `turns`: turns per conversation (user and assistant messages; a system prompt is not a
      turn), as {median, p95, max};
    - `tokens_per_turn`: {role: {median, p95, max}} over the content tokens of every message
      of that role (roles that never occur are left out);
    - `tokens_per_example`: {median, p95, max} of the full templated length, before any cut;
    - `truncated`, `truncated_share`: examples whose reply is cut by max_length;
    - `zero_response`: examples left with no trained token (the prompt fills max_length);
    - `duplicates`: conversations that repeat an earlier one exactly."""
    per_role: dict[str, list[int]] = {}
    turns, lengths = [], []
    truncated = zero = duplicates = 0
    seen: set[str] = set()
    for messages in conversations:
        key = json.dumps(messages, sort_keys=True, ensure_ascii=False)
        if key in seen:
            duplicates += 1
        seen.add(key)
        turns.append(sum(1 for m in messages if m["role"] != "system"))
        for message in messages:
            count = len(tokenizer(message["content"], add_special_tokens=False)["input_ids"])
            per_role.setdefault(message["role"], []).append(count)
        ids, mask = _encode_full(tokenizer, messages)
        lengths.append(len(ids))
        truncated += any(mask[max_length:])
        zero += not any(mask[:max_length])
    rows = len(conversations)
    return {
        "rows": rows,
        "max_length": max_length,
        "turns": _stats(turns),
        "tokens_per_turn": {role: _stats(per_role[role]) for role in ROLES if role in per_role},
        "tokens_per_example": _stats(lengths),
        "truncated": truncated,
        "truncated_share": truncated / rows if rows else 0.0,
        "zero_response": zero,
        "duplicates": duplicates,
    }


# --------------------------------------------------------------------------------------------
# Batches and evaluation


def collate(batch: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad a list of encoded examples to the longest one: input_ids with `pad_id`,
    attention_mask with 0, labels with -100. Other keys (truncated, response_tokens) are
    dropped. Returns long tensors."""
    import torch

    if pad_id is None:
        raise ValueError("collate needs a pad id (see ensure_chat_template)")
    if not batch:
        raise ValueError("collate got an empty batch")
    width = max(len(row["input_ids"]) for row in batch)
    fills = {"input_ids": pad_id, "attention_mask": 0, "labels": IGNORE_INDEX}
    out = {}
    for key, fill in fills.items():
        out[key] = torch.tensor(
            [
                [int(v) for v in row[key]] + [fill] * (width - len(row["input_ids"]))
                for row in batch
            ],
            dtype=torch.long,
        )
    return out


def perplexity(mean_loss: float) -> float:
    """exp(mean loss per token), with the loss capped at PERPLEXITY_LOSS_CAP so the result stays
    finite (nan stays nan)."""
    if math.isnan(mean_loss):
        return math.nan
    return math.exp(min(float(mean_loss), PERPLEXITY_LOSS_CAP))


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def evaluate_loss(
    model: Any, dataset_rows: list[dict[str, Any]], pad_id: int, batch_size: int = 8
) -> float:
    """Mean cross-entropy per trained token over `dataset_rows` (encoded examples): the sum of
    every trained token's loss divided by the number of trained tokens, so long replies weigh
    by their length and the batch size does not matter. `dataset_rows` is any iterable of
    encoded examples (a list, or a datasets.Dataset with those columns). Runs in eval mode without gradients,
    in the rows' order (deterministic), and restores the model's training mode."""
    import torch
    import torch.nn.functional as F

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    dataset_rows = list(dataset_rows)  # a datasets.Dataset slices into columns, not rows
    was_training = model.training
    model.eval()
    device = _device(model)
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for first in range(0, len(dataset_rows), batch_size):
                batch = collate(dataset_rows[first : first + batch_size], pad_id)
                labels = batch["labels"][:, 1:].to(device)
                logits = model(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                ).logits[:, :-1]
                loss = F.cross_entropy(
                    logits.float().reshape(-1, logits.shape[-1]),
                    labels.reshape(-1),
                    ignore_index=IGNORE_INDEX,
                    reduction="sum",
                )
                total += float(loss)
                count += int((labels != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("no trained tokens to evaluate (every reply is masked or cut)")
    return total / count


# --------------------------------------------------------------------------------------------
# LoRA targets


def lora_target_modules(model: Any) -> list[str]:
    """Names of the attention projections to adapt with LoRA, found by scanning
    `model.named_modules()` for Linear (or GPT-2's Conv1D) leaves: q_proj/k_proj/v_proj/o_proj
    for Llama, Qwen, Mistral; c_attn/c_proj for GPT-2; query/key/value for BERT; and so on.
    Names like c_proj or out_proj count only under an attention module. Falls back to every
    Linear leaf under an attention module; raises ValueError when there is none. Works on a
    peft-wrapped model too (its lora_* modules are skipped)."""
    import torch

    found: set[str] = set()
    attention_leaves: set[str] = set()
    for name, module in model.named_modules():
        parts = name.split(".")
        if any(p.startswith("lora_") for p in parts) or list(module.children()):
            continue
        if not (isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"):
            continue
        if parts[-1] == "base_layer" and len(parts) > 1:  # peft's wrapped original layer
            parts = parts[:-1]
        leaf = parts[-1]
        in_attention = any("attn" in p.lower() or "attention" in p.lower() for p in parts[:-1])
        if leaf in _STRONG_TARGETS or (leaf in _WEAK_TARGETS and in_attention):
            found.add(leaf)
        elif in_attention:
            attention_leaves.add(leaf)
    if found:
        return [name for name in (*_STRONG_TARGETS, *_WEAK_TARGETS) if name in found]
    if attention_leaves:
        return sorted(attention_leaves)
    raise ValueError(
        f"no attention projection layers found in {type(model).__name__}; "
        "name LoRA's target_modules explicitly"
    )


# --------------------------------------------------------------------------------------------
# Side-by-side generation


def generate_side_by_side(
    base_model: Any,
    tuned_model: Any,
    tokenizer: Any,
    conversations: list[list[dict[str, str]]],
    max_new_tokens: int = 32,
) -> list[dict[str, str]]:
    """Greedy replies of the base and the tuned model to held-out conversations.

    For each conversation the prompt is everything before its last assistant turn, rendered
    with the generation prompt; the reference is that last reply. Returns one dict per
    conversation: `prompt` (the rendered text), `reference`, `base` and `tuned` (the new tokens,
    decoded without special tokens and stripped of surrounding whitespace). Generation is greedy (do_sample=False), one conversation at
    a time (no padding), so it is deterministic.

    Pass `base_model=None`, or the very model object a peft `tuned_model` wraps (peft injects
    LoRA into it in place), and the base replies come from `tuned_model` with its adapter
    disabled."""
    import contextlib

    import torch

    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id
    wraps_base = hasattr(tuned_model, "disable_adapter") and (
        base_model is None
        or (hasattr(tuned_model, "get_base_model") and base_model is tuned_model.get_base_model())
    )
    if base_model is None and not wraps_base:
        raise ValueError("base_model is None but tuned_model has no adapter to disable")

    def generate(model: Any, ids: list[int], base: bool) -> str:
        context = tuned_model.disable_adapter() if base and wraps_base else contextlib.nullcontext()
        model = tuned_model if base and wraps_base else model
        was_training = model.training
        model.eval()
        device = _device(model)
        try:
            with context, torch.no_grad():
                out = model.generate(
                    input_ids=torch.tensor([ids], device=device),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=pad_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
        finally:
            model.train(was_training)
        return tokenizer.decode(out[0, len(ids) :].tolist(), skip_special_tokens=True).strip()

    results = []
    for messages in conversations:
        check_conversation(messages)
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        prompt = _render(tokenizer, messages[:last], generation_prompt=True)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        results.append(
            {
                "prompt": prompt,
                "reference": messages[last]["content"],
                "base": generate(base_model, ids, base=True),
                "tuned": generate(tuned_model, ids, base=False),
            }
        )
    return results
