"""The headless modules stay light: no torch, transformers or textual on their import path."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "textual", "datasets", "peft")


@pytest.mark.parametrize(
    "module,forbidden",
    [
        ("tuning_core", HEAVY),
        ("tuning_core.data", ("torch", "transformers", "textual")),
        ("tuning_core.profile", HEAVY),
        ("tuning_core.recommend", HEAVY),
        ("tuning_core.runs", HEAVY),
        ("tuning_core.export", HEAVY),
        ("tuning_core.quality", (*HEAVY, "sklearn")),
        ("tuning_core.baseline", (*HEAVY, "sklearn")),
        ("tuning_core.loaders", ("torch", "transformers", "textual")),
        ("tuning_core.forecast", HEAVY),
        ("assistant.dataview", ("torch", "transformers", "datasets", "peft")),
        ("knowledge", HEAVY),
        ("assistant.planner", HEAVY),
        ("assistant.conversation", HEAVY),
        ("assistant.cli", HEAVY),
        # the LLM front end and the MCP server load langchain / mcp only when used
        ("assistant.llm", (*HEAVY, "langchain", "langchain_core")),
        ("assistant.tools", (*HEAVY, "langchain_core")),
        ("assistant.mcp_server", (*HEAVY, "mcp", "langchain_core")),
        ("assistant.app", ("torch", "transformers", "datasets", "peft")),
    ],
)
def test_import_does_not_load_heavy_libraries(module, forbidden):
    code = (
        f"import sys, {module}; "
        f"bad = [m for m in {forbidden!r} if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, f"{module} imported {out.stdout.strip()} {out.stderr[-500:]}"
