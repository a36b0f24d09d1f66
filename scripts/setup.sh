#!/usr/bin/env bash
# Install freeaction-gym into ./.venv with the CPU build of torch and headless MuJoCo.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# MuJoCo renders headless through OSMesa (EGL fails on CPU-only machines).
if ! ldconfig -p 2>/dev/null | grep -q libOSMesa; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y -q libosmesa6 >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q libosmesa6 >/dev/null; }
  else
    echo "warning: install the OSMesa library (Debian: libosmesa6) for MetaWorld rendering" >&2
  fi
fi

# freeaction play --web's browser test drives headless Chromium (skipped where it is absent).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium chromium-driver >/dev/null; } \
      || echo "warning: chromium not installed; the play --web browser test will skip" >&2
  else
    echo "warning: install chromium and chromedriver for the play --web browser test" >&2
  fi
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first and pinned: a bare 'torch' requirement would pull a multi-GB CUDA build.
# Set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu on machines without a local wheel.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if ! .venv/bin/pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
      > .venv/pip-torch.log 2>&1; then
    grep -v "^WARNING: Location" .venv/pip-torch.log >&2; exit 1
  fi
fi
if ! .venv/bin/pip install -q -e ".[dev,metaworld,agents,web]" > .venv/pip-install.log 2>&1; then
  grep -v "^WARNING: Location" .venv/pip-install.log >&2; exit 1
fi
.venv/bin/python -c "import freeaction_gym, torch; print('freeaction-gym', freeaction_gym.__version__, '| torch', torch.__version__)"
