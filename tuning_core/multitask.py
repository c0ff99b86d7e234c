"""Several label sets on one encoder: a head per auxiliary task beside the model's own.

The main task keeps the model's own output layer, so the saved model is an ordinary
sequence classifier for it. Each auxiliary task (another label column of the same texts, or
another labelled file of the same kind of text) gets a linear head over the same features the
main output layer reads: a forward hook on that layer keeps its input. Training batches mix
rows of every task; each row's `task_ids` says whose labels it carries (0: the main task),
and the loss is the main task's cross-entropy plus `weight` times each auxiliary task's, each
a mean over that task's rows in the batch.

Standalone like `recipe.py` (torch is imported inside functions), so that an exported bundle
ships it beside `train.py`.
"""

from __future__ import annotations

import contextlib

HEADS = "auxiliary_heads"  # the attribute (and state-dict prefix) of the heads on the model
MAIN = 0  # task id of the main task's rows


def attach_heads(model, output_layer, sizes: list[int], std: float = 0.02):
    """Add a linear head per auxiliary task (`sizes`: its number of classes) reading what
    `output_layer` reads; returns the heads. New weights draw from the global torch stream
    (seeded by the Trainer before the model is built), as the main output layer's did."""
    import torch

    heads = torch.nn.ModuleList(
        torch.nn.Linear(output_layer.in_features, n, dtype=output_layer.weight.dtype) for n in sizes
    )
    for head in heads:
        torch.nn.init.normal_(head.weight, std=std)
        torch.nn.init.zeros_(head.bias)
    heads.features = None  # the output layer's input in the last forward pass

    def keep(module, args):
        heads.features = args[0]

    output_layer.register_forward_pre_hook(keep)
    setattr(model, HEADS, heads)
    return heads


def heads_of(model):
    """The auxiliary heads on `model` (through a peft wrapper too), or None."""
    for module in model.modules():
        if hasattr(module, HEADS):
            return getattr(module, HEADS)
    return None


def task_loss(
    logits,
    features,
    heads,
    labels,
    task_ids,
    weights: list[float],
    class_weights=None,
    label_smoothing: float = 0.0,
):
    """The weighted sum of each task's mean cross-entropy over its rows in the batch (a task
    without rows here adds nothing). Class weights and label smoothing apply to the main task."""
    import torch

    total = logits.new_zeros((), dtype=torch.float32)
    for task, weight in enumerate(weights):
        rows = task_ids == task
        if not bool(rows.any()):
            continue
        scores = logits[rows] if task == MAIN else heads[task - 1](features[rows])
        loss = torch.nn.functional.cross_entropy(
            scores.float(),
            labels[rows],
            weight=class_weights if task == MAIN else None,
            label_smoothing=label_smoothing if task == MAIN else 0.0,
        )
        total = total + weight * loss
    return total


def predict_head(model, heads, task: int, dataset, collator, batch_size: int) -> list[list[float]]:
    """Each row's class probabilities from auxiliary head `task` (1-based), in row order."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    rows = [dataset[i] for i in range(len(dataset))]
    out: list[list[float]] = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = collator(
                [
                    {k: v for k, v in row.items() if k not in ("labels", "task_ids")}
                    for row in rows[start : start + batch_size]
                ]
            )
            model(**{k: v.to(device) for k, v in batch.items()})
            logits = heads[task - 1](heads.features).float()
            out.extend(torch.softmax(logits, dim=-1).tolist())
    return out


@contextlib.contextmanager
def without_heads(model):
    """`model` with its auxiliary heads taken off (to save it as a plain classifier), yielding
    the heads' state dict; they are put back afterwards."""
    owner = next((m for m in model.modules() if hasattr(m, HEADS)), None)
    if owner is None:
        yield {}
        return
    heads = getattr(owner, HEADS)
    delattr(owner, HEADS)
    try:
        yield {k: v.detach().cpu().contiguous() for k, v in heads.state_dict().items()}
    finally:
        setattr(owner, HEADS, heads)


def drop_held_out(
    texts: list[str], labels: list[str], held_out: set[str]
) -> tuple[list[str], list[str], int]:
    """An auxiliary task's training rows without the texts the main task validates or tests
    on (training on them, even with other labels, would leak into the main task's scores);
    returns the kept texts and labels and how many rows were dropped."""
    keep = [i for i, t in enumerate(texts) if t not in held_out]
    return [texts[i] for i in keep], [labels[i] for i in keep], len(texts) - len(keep)
