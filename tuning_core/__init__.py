"""tunesmith's headless core: load, profile, probe, plan, recommend, train, evaluate, export.

Every stage is a plain function over plain, JSON-serialisable values. Nothing here knows about
the terminal, the conversation or any language model, and importing this package loads
neither torch, transformers nor textual: the modules that train import them inside functions.
"""

import os

# tunesmith works offline by default: a hub name that is not cached fails at once with a clear
# message instead of retrying for a minute. huggingface_hub reads this when it is imported.
# (The exported train.py does not set it, so a bundle can download its model elsewhere.)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tuning_core.errors import (
    DatasetError,
    ExportError,
    ModelError,
    PlanError,
    RunError,
    SessionError,
    TuningError,
)

__version__ = "0.1.0"

__all__ = [
    "DatasetError",
    "ExportError",
    "ModelError",
    "PlanError",
    "RunError",
    "SessionError",
    "TuningError",
    "__version__",
]
