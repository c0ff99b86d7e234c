"""tunesmith's headless core: load, profile, probe, plan, recommend, train, evaluate, export.

Every stage is a plain function over plain, JSON-serialisable values. Nothing here knows about
the terminal, the conversation or any language model, and importing this package loads
neither torch, transformers nor textual: the modules that train import them inside functions.
"""

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
