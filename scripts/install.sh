#!/usr/bin/env bash
# Create .venv and install tunesmith into it, torch first.
#
#   scripts/install.sh          the app and its libraries
#   scripts/install.sh test     ... plus pytest and ruff
#
# torch is pinned (torch==2.13.0). Without an NVIDIA GPU we take the CPU build: from a local
# wheel folder when pip is configured with one (find-links), else from PyTorch's CPU index,
# so that no multi-GB CUDA build is downloaded. With a GPU, pip's default (CUDA) build.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
EXTRAS=${1:-}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "tunesmith: NVIDIA GPU found, installing torch==$TORCH_VERSION (CUDA build)"
    "${PIP[@]}" install "torch==$TORCH_VERSION"
  elif "${PIP[@]}" install --no-index --no-deps "torch==$TORCH_VERSION+cpu" 2>/dev/null; then
    echo "tunesmith: no GPU, installed torch==$TORCH_VERSION+cpu from the local wheel folder"
    "${PIP[@]}" install "torch==$TORCH_VERSION+cpu"  # its dependencies
  else
    echo "tunesmith: no GPU, installing torch==$TORCH_VERSION CPU build"
    "${PIP[@]}" install "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu \
      --extra-index-url https://pypi.org/simple
  fi
fi

if [ "$EXTRAS" = "test" ]; then
  "${PIP[@]}" install -e ".[test]"
else
  "${PIP[@]}" install -e .
fi
