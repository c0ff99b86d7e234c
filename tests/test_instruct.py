"""Instruction tuning building blocks (tuning_core.instruct): reading, the chat template, reply-only
masking, the profile, batching, evaluation, LoRA targets, and an end-to-end LoRA run on a tiny
random Llama."""

from __future__ import annotations

import json
import math
import random

import pytest
from tiny_llm import instruction_rows, make_tiny_gpt2, make_tiny_llama, write_instruction_jsonl

from tuning_core.instruct import (
    DEFAULT_CHAT_TEMPLATE,
    PERPLEXITY_LOSS_CAP,
    collate,
    encode_conversation,
    ensure_chat_template,
    evaluate_loss,
    generate_side_by_side,
    instruction_profile,
    lora_target_modules,
    masked_view,
    perplexity,
    read_instruction_jsonl,
)

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    # peft 0.21 calls a transformers method that 5.x deprecates (harmless)
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning"),
]


@pytest.fixture(scope="module", autouse=True)
def quiet():
    from transformers import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return make_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture
def tok(llama_dir):
    """A fresh tokenizer (tests change it), with the default template set."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    ensure_chat_template(tokenizer)
    return tokenizer


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def system(text):
    return {"role": "system", "content": text}


TWO_TURNS = [
    system("Be terse."),
    user("Repeat the word apple."),
    assistant("apple apple"),
    user("Capital of Peru?"),
    assistant("Lima."),
]


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Reading


def test_reader_accepts_every_format(tmp_path):
    lines = [
        {"prompt": "Hi?", "response": "Hello."},
        {"prompt": "Hi?", "completion": "Hey."},
        {"prompt": "Hi?", "output": "Yo.", "system": "Be nice."},
        {"instruction": "Translate.", "input": "chat", "output": "cat"},
        {"instruction": "Say hi.", "input": "", "output": "hi"},
        {"instruction": "Say bye.", "output": "bye"},
        {"messages": [system("S."), user("a"), assistant("b"), user("c"), assistant("d")]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "r"}]},
        {"messages": [user("q"), assistant("r")], "system": "Sys."},
        {"prompt": "2+2?", "response": 4},
    ]
    path = write_lines(tmp_path / "mixed.jsonl", [json.dumps(x) for x in lines[:3]] + [""])
    with open(path, "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(x) + "\n" for x in lines[3:])
    got = read_instruction_jsonl(path)
    assert got == [
        [user("Hi?"), assistant("Hello.")],
        [user("Hi?"), assistant("Hey.")],
        [system("Be nice."), user("Hi?"), assistant("Yo.")],
        [user("Translate.\n\nchat"), assistant("cat")],
        [user("Say hi."), assistant("hi")],
        [user("Say bye."), assistant("bye")],
        [system("S."), user("a"), assistant("b"), user("c"), assistant("d")],
        [user("q"), assistant("r")],
        [system("Sys."), user("q"), assistant("r")],
        [user("2+2?"), assistant("4")],
    ]


def test_reader_reads_the_helper_files(tmp_path):
    flat = read_instruction_jsonl(write_instruction_jsonl(tmp_path / "a.jsonl", n=5, seed=3))
    chat = read_instruction_jsonl(
        write_instruction_jsonl(tmp_path / "b.jsonl", n=5, seed=3, style="messages")
    )
    assert len(flat) == len(chat) == 5
    assert [c[1:] for c in chat] == flat and chat[0][0]["role"] == "system"


BAD_LINES = [
    ('{"prompt": "Hi", "response": ', "not valid JSON"),
    ('["prompt", "response"]', "expected a JSON object, got list"),
    ('{"question": "Hi", "answer": "Yo"}', "found keys: answer, question"),
    ('{"prompt": "Hi"}', "needs a 'response'"),
    ('{"instruction": "Hi", "input": "x"}', "needs an 'output'"),
    ('{"prompt": "Hi", "response": "   "}', "empty assistant reply (message 2)"),
    ('{"prompt": "", "response": "Yo"}', "empty user message"),
    ('{"prompt": "Hi", "response": ["Yo"]}', "response must be a string, got list"),
    ('{"messages": []}', "empty conversation"),
    ('{"messages": [{"role": "user", "content": "Hi"}]}', "no assistant reply"),
    (
        '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"},'
        ' {"role": "user", "content": "And?"}]}',
        "must end with an assistant reply",
    ),
    ('{"messages": [{"role": "bot", "content": "Hi"}]}', "role 'bot'"),
    ('{"messages": [{"role": "user"}]}', "has no 'content'"),
    ('{"messages": [{"role": "assistant", "content": "Yo"}]}', "must start with a user message"),
    (
        '{"messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "S"},'
        ' {"role": "assistant", "content": "Yo"}]}',
        "system message may only come first",
    ),
    (
        '{"system": "A", "messages": [{"role": "system", "content": "B"},'
        ' {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}',
        "both a 'system' field and a system message",
    ),
    ('{"messages": "hello"}', "'messages' must be a list"),
]


@pytest.mark.parametrize("line,message", BAD_LINES, ids=[m for _, m in BAD_LINES])
def test_reader_errors_name_the_file_and_line(tmp_path, line, message):
    good = json.dumps({"prompt": "Hi", "response": "Yo"})
    path = write_lines(tmp_path / "bad.jsonl", [good, "", line, good])
    with pytest.raises(ValueError) as info:
        read_instruction_jsonl(path)
    text = str(info.value)
    assert text.startswith(f"{path}:3: "), text
    assert message in text and "\n" not in text


def test_reader_rejects_an_empty_file(tmp_path):
    path = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(ValueError, match="no conversations"):
        read_instruction_jsonl(path)


# ---------------------------------------------------------------------------------------------
# Template


def test_default_template_is_set_only_when_missing(llama_dir, gpt2_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    assert not tokenizer.chat_template and tokenizer.pad_token == "<pad>"
    vocab = len(tokenizer)
    assert ensure_chat_template(tokenizer) is True
    assert tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE
    assert tokenizer.pad_token == "<pad>" and len(tokenizer) == vocab  # nothing added
    assert ensure_chat_template(tokenizer) is False
    rendered = tokenizer.apply_chat_template(TWO_TURNS, tokenize=False)
    assert rendered == (
        "<s><|system|>\nBe terse.</s><|user|>\nRepeat the word apple.</s>"
        "<|assistant|>\napple apple</s><|user|>\nCapital of Peru?</s><|assistant|>\nLima.</s>"
    )
    prompt = tokenizer.apply_chat_template(
        TWO_TURNS[:2], tokenize=False, add_generation_prompt=True
    )
    assert rendered.startswith(prompt) and prompt.endswith("</s><|assistant|>\n")

    custom = AutoTokenizer.from_pretrained(llama_dir)
    custom.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert ensure_chat_template(custom) is False
    assert custom.chat_template.startswith("{% for m in messages %}")

    gpt2 = AutoTokenizer.from_pretrained(gpt2_dir)
    assert gpt2.pad_token is None
    assert ensure_chat_template(gpt2) is True
    assert gpt2.pad_token == gpt2.eos_token == "<|endoftext|>"
    assert gpt2.pad_token_id == gpt2.eos_token_id
    # pad = eos does not mask the replies' end-of-turn token
    encoded = encode_conversation(gpt2, TWO_TURNS[1:3], max_length=None)
    assert trained_pieces(gpt2, encoded) == ["apple apple<|endoftext|>"]
    short = encode_conversation(gpt2, [user("Hi"), assistant("apple")], max_length=None)
    padded = collate([encoded, short], gpt2.pad_token_id)
    assert padded["labels"][0].tolist() == encoded["labels"]
    assert padded["labels"][1].tolist()[-1] == -100 and short["labels"][-1] == gpt2.eos_token_id


# ---------------------------------------------------------------------------------------------
# Masking


def trained_pieces(tokenizer, encoded):
    """The decoded text of each contiguous run of trained tokens."""
    pieces, run = [], []
    for token, label in [*zip(encoded["input_ids"], encoded["labels"], strict=True), (0, -100)]:
        if label != -100:
            assert label == token
            run.append(token)
        elif run:
            pieces.append(tokenizer.decode(run, skip_special_tokens=False))
            run = []
    return pieces


def test_only_the_replies_and_their_end_of_turn_are_trained(tok):
    encoded = encode_conversation(tok, TWO_TURNS, max_length=256)
    ids, labels = encoded["input_ids"], encoded["labels"]
    assert tok.decode(ids, skip_special_tokens=False) == tok.apply_chat_template(
        TWO_TURNS, tokenize=False
    )
    assert encoded["attention_mask"] == [1] * len(ids)
    assert trained_pieces(tok, encoded) == ["apple apple</s>", "Lima.</s>"]
    # token by token: each token is trained exactly when it lies inside a reply
    text, position, expected = tok.decode(ids, skip_special_tokens=False), 0, []
    replies = [
        (text.index("apple apple</s>"), "apple apple</s>"),
        (text.index("Lima."), "Lima.</s>"),
    ]
    for token in ids:
        piece = tok.decode([token], skip_special_tokens=False)
        expected.append(any(start <= position < start + len(r) for start, r in replies))
        position += len(piece)
    assert [label != -100 for label in labels] == expected
    assert encoded["response_tokens"] == sum(expected) == 6
    assert encoded["truncated"] is False
    # the masked part is exactly the system and user text with every role marker
    masked = tok.decode([t for t, m in zip(ids, expected, strict=True) if not m])
    assert masked == text.replace("apple apple</s>", "").replace("Lima.</s>", "")


def test_masking_works_without_offsets(tok):
    class Slow:
        """The same tokenizer, posing as one without offset mappings."""

        is_fast = False

        def __init__(self, inner):
            self.inner = inner

        def __call__(self, text, **kwargs):
            assert "return_offsets_mapping" not in kwargs
            return self.inner(text, **kwargs)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    fast = encode_conversation(tok, TWO_TURNS, max_length=None)
    slow = encode_conversation(Slow(tok), TWO_TURNS, max_length=None)
    assert slow == fast


def test_masking_with_a_template_that_writes_the_last_turn_differently(tok):
    # Like Qwen3: only the final assistant turn gets an (empty) reasoning block, and a newline
    # follows every end-of-turn token.
    tok.chat_template = (
        "{% for m in messages %}{{ '<|' + m['role'] + '|>' }}"
        "{% if m['role'] == 'assistant' and loop.last %}{{ '<think></think>' }}{% endif %}"
        "{{ m['content'] + eos_token + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
    )
    encoded = encode_conversation(tok, TWO_TURNS, max_length=None)
    assert trained_pieces(tok, encoded) == ["apple apple</s>", "<think></think>Lima.</s>"]
    # the newline after the last </s> is not trained, so cutting it cuts no reply
    n = len(encoded["input_ids"])
    assert tok.decode(encoded["input_ids"][-1:]) == "\n" and encoded["labels"][-1] == -100
    cut = encode_conversation(tok, TWO_TURNS, max_length=n - 1)
    assert cut["truncated"] is False and cut["response_tokens"] == encoded["response_tokens"]


def test_truncation_flag(tok):
    full = encode_conversation(tok, TWO_TURNS, max_length=None)
    n = len(full["input_ids"])
    assert encode_conversation(tok, TWO_TURNS, max_length=n)["truncated"] is False
    cut = encode_conversation(tok, TWO_TURNS, max_length=n - 1)  # loses the final </s>
    assert cut["truncated"] is True and cut["response_tokens"] == 5
    assert len(cut["input_ids"]) == len(cut["labels"]) == len(cut["attention_mask"]) == n - 1
    first_reply_end = full["labels"].index(full["input_ids"][-1]) + 1  # the first trained </s>
    middle = encode_conversation(tok, TWO_TURNS, max_length=first_reply_end)
    assert middle["truncated"] is True and middle["response_tokens"] == 3
    prompt_only = encode_conversation(tok, TWO_TURNS[:3], max_length=5)
    assert prompt_only["truncated"] is True and prompt_only["response_tokens"] == 0
    assert set(prompt_only["labels"]) == {-100}


def test_masked_view_shows_the_prompt_as_masked(tok):
    encoded = encode_conversation(tok, TWO_TURNS, max_length=None)
    view = masked_view(tok, encoded, width=200)
    assert view.splitlines() == [
        "[masked: <s><|system|>⏎Be terse.</s><|user|>⏎Repeat the word apple.</s><|assistant|>⏎]",
        "apple apple</s>",
        "[masked: <|user|>⏎Capital of Peru?</s><|assistant|>⏎]",
        "Lima.</s>",
    ]
    # padding is not shown; a cut reply is flagged; long stretches are shortened and wrapped
    longer = {k: encoded[k] * 2 for k in ("input_ids", "attention_mask", "labels")}
    padded = collate([encoded, longer], tok.pad_token_id)
    first = {k: v[0].tolist() for k, v in padded.items()}
    assert masked_view(tok, first, width=200) == view
    cut = encode_conversation(tok, TWO_TURNS, max_length=32)  # the first reply loses its </s>
    short = masked_view(tok, cut, width=40)
    assert short.splitlines() == [
        "[masked: <s><|system|>⏎B…<|assistant|>⏎]",
        "apple apple",
        "[cut at max_length]",
    ]
    assert all(len(line) <= 40 for line in short.splitlines())


# ---------------------------------------------------------------------------------------------
# Profile


def test_profile_numbers_on_a_hand_made_set(tok):
    a = [user("apple river stone"), assistant("tiger")]  # 3 + 1 content tokens
    conversations = [
        a,
        list(a),  # exact duplicate
        [system("apple"), *a],  # not a duplicate
        [user("apple"), assistant("river stone cloud tiger lemon piano")],
        [
            user("apple"),
            assistant("river"),
            user("apple river stone cloud tiger lemon piano candle"),
            assistant("stone"),
        ],
    ]
    # template overhead: <s> 1; user and assistant turns 4 marker tokens + </s>; system 8 + </s>
    lengths = [15, 15, 25, 18, 32]
    assert [len(encode_conversation(tok, c, None)["input_ids"]) for c in conversations] == lengths
    profile = instruction_profile(tok, conversations, max_length=17)
    assert profile == {
        "rows": 5,
        "max_length": 17,
        "turns": {"median": 2, "p95": pytest.approx(3.6), "max": 4},
        "tokens_per_turn": {
            "system": {"median": 1, "p95": 1, "max": 1},
            "user": {"median": 3, "p95": pytest.approx(6.75), "max": 8},
            "assistant": {"median": 1, "p95": pytest.approx(4.75), "max": 6},
        },
        "tokens_per_example": {"median": 18, "p95": pytest.approx(30.6), "max": 32},
        # 25 (prompt alone is 23 tokens), 18 (its final </s>) and 32 are cut in a reply
        "truncated": 3,
        "truncated_share": pytest.approx(0.6),
        "zero_response": 1,
        "duplicates": 1,
    }
    json.dumps(profile)


# ---------------------------------------------------------------------------------------------
# Batches, loss, perplexity


def test_collate_pads_on_the_right():
    import torch

    rows = [
        {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7], "x": 1},
        {"input_ids": [1, 2, 3, 4, 5], "attention_mask": [1] * 5, "labels": [-100, -100, 3, 4, 5]},
    ]
    batch = collate(rows, pad_id=0)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert all(t.dtype == torch.long and t.shape == (2, 5) for t in batch.values())
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0, 0], [1, 2, 3, 4, 5]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, -100], [-100, -100, 3, 4, 5]]
    with pytest.raises(ValueError, match="pad id"):
        collate(rows, pad_id=None)


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(7.0)) == pytest.approx(7.0)
    assert perplexity(1e6) == math.exp(PERPLEXITY_LOSS_CAP) and math.isfinite(perplexity(1e9))
    assert math.isnan(perplexity(float("nan")))


def test_evaluate_loss_is_per_trained_token(llama_dir, tok):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(llama_dir, dtype=torch.float32)
    model.train()
    convs = [TWO_TURNS, TWO_TURNS[1:3], [user("Capital of Japan?"), assistant("Tokyo.")]]
    rows = [encode_conversation(tok, c, 64) for c in convs]
    losses = [evaluate_loss(model, rows, tok.pad_token_id, batch_size=b) for b in (1, 2, 8)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6) == pytest.approx(losses[2], rel=1e-6)
    assert model.training  # mode restored
    assert evaluate_loss(model, rows, tok.pad_token_id, 2) == losses[1]  # deterministic
    # reference: the model's own mean loss per row, weighted by the row's trained tokens
    model.eval()
    with torch.no_grad():
        per_row = [float(model(**collate([r], tok.pad_token_id)).loss) for r in rows]
    counts = [r["response_tokens"] for r in rows]
    weighted = sum(loss * n for loss, n in zip(per_row, counts, strict=True)) / sum(counts)
    assert losses[0] == pytest.approx(weighted, rel=1e-5)
    assert abs(weighted - sum(per_row) / len(per_row)) > 1e-4  # not a mean of means
    with pytest.raises(ValueError, match="no trained tokens"):
        evaluate_loss(model, [encode_conversation(tok, TWO_TURNS, 5)], tok.pad_token_id, 1)


# ---------------------------------------------------------------------------------------------
# LoRA targets


def test_lora_target_modules(llama_dir, gpt2_dir, tmp_path):
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from tiny import make_tiny_model
    from transformers import AutoModel, AutoModelForCausalLM

    llama = AutoModelForCausalLM.from_pretrained(llama_dir)
    assert lora_target_modules(llama) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    gpt2 = AutoModelForCausalLM.from_pretrained(gpt2_dir)
    assert lora_target_modules(gpt2) == ["c_attn", "c_proj"]
    bert = AutoModel.from_pretrained(make_tiny_model(tmp_path / "bert"))
    assert lora_target_modules(bert) == ["query", "key", "value"]
    wrapped = get_peft_model(
        llama, LoraConfig(task_type=TaskType.CAUSAL_LM, r=2, target_modules=["q_proj", "v_proj"])
    )
    assert lora_target_modules(wrapped) == ["q_proj", "k_proj", "v_proj", "o_proj"]

    class Attention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mix = torch.nn.Linear(4, 4)

    class Custom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attention = Attention()
            self.head = torch.nn.Linear(4, 2)

    assert lora_target_modules(Custom()) == ["mix"]  # fallback: Linear leaves under attention
    with pytest.raises(ValueError, match="no attention projection"):
        lora_target_modules(torch.nn.Sequential(torch.nn.Linear(4, 4)))


# ---------------------------------------------------------------------------------------------
# End to end: LoRA on the tiny Llama learns, touches only LoRA weights and repeats itself


def train_lora(llama_dir, tokenizer, train, seed, epochs=6, lr=1e-2, batch_size=8):
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(llama_dir, dtype=torch.float32)
    before = {id(p): p.detach().clone() for p in model.parameters()}
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM, r=8, lora_alpha=16, target_modules=lora_target_modules(model)
    )
    model = get_peft_model(model, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    rng = random.Random(seed)
    order = list(range(len(train)))
    losses = []
    model.train()
    for _ in range(epochs):
        rng.shuffle(order)
        for first in range(0, len(order), batch_size):
            batch = collate(
                [train[i] for i in order[first : first + batch_size]], tokenizer.pad_token_id
            )
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
    return model, before, losses


def as_conversations(rows):
    return [[user(r["prompt"]), assistant(r["response"])] for r in rows]


def test_lora_end_to_end(llama_dir, tok):
    import torch
    from transformers import AutoModelForCausalLM

    train_convs = as_conversations(instruction_rows(64, seed=0))
    valid_convs = as_conversations(instruction_rows(16, seed=1))
    train = [encode_conversation(tok, c, 64) for c in train_convs]
    valid = [encode_conversation(tok, c, 64) for c in valid_convs]
    pad = tok.pad_token_id

    base = AutoModelForCausalLM.from_pretrained(llama_dir, dtype=torch.float32)
    loss_before = evaluate_loss(base, valid, pad, batch_size=8)

    model, before, losses = train_lora(llama_dir, tok, train, seed=7)
    loss_after = evaluate_loss(model, valid, pad, batch_size=8)
    assert loss_after < loss_before - 1.0, (loss_before, loss_after)
    assert perplexity(loss_after) < perplexity(loss_before) / 2

    # only LoRA parameters changed, and they are exactly the trainable ones
    lora = {n for n, p in model.named_parameters() if "lora_" in n}
    assert lora and {n for n, p in model.named_parameters() if p.requires_grad} == lora
    for name, param in model.named_parameters():
        if id(param) in before:
            assert "lora_" not in name and torch.equal(param, before[id(param)]), name
        else:
            assert name in lora
    assert any(
        float(p.detach().abs().sum()) > 0 for n, p in model.named_parameters() if "lora_B" in n
    )

    # the same seed gives the same run, bit for bit
    again, _, losses_again = train_lora(llama_dir, tok, train, seed=7)
    assert losses_again == losses
    assert evaluate_loss(again, valid, pad, batch_size=8) == loss_after

    held_out = valid_convs[:3]
    side = generate_side_by_side(base, model, tok, held_out, max_new_tokens=8)
    assert len(side) == 3
    for row, conv in zip(side, held_out, strict=True):
        assert set(row) == {"prompt", "reference", "base", "tuned"}
        assert row["reference"] == conv[-1]["content"]
        assert row["prompt"].endswith(conv[0]["content"] + "</s><|assistant|>\n")
        assert isinstance(row["base"], str) and isinstance(row["tuned"], str) and row["tuned"]
        assert "</s>" not in row["tuned"] and "<s>" not in row["base"]
    # base=None (or the wrapped model itself) uses the tuned model with its adapter disabled
    assert generate_side_by_side(None, model, tok, held_out, max_new_tokens=8) == side
    assert generate_side_by_side(model.get_base_model(), model, tok, held_out, 8) == side
