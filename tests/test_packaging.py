"""Packaging (issue 13): the env presets are package data (one copy, inside the package), a
built wheel carries them and the bundled model, and build artefacts are ignored by git.
The end-to-end check - the wheel installed non-editable in a fresh venv, every id made,
reset and stepped from outside the repo - is a CI step (``.ci/run``, ``.ci/installed_envs.py``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import freeaction_gym
from freeaction_gym.envs.config import preset_path
from freeaction_gym.envs.registration import REAL_COUNTERPARTS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(freeaction_gym.__file__).resolve().parent


def test_presets_live_inside_the_package():
    for env_id in (*freeaction_gym.ENV_IDS, *REAL_COUNTERPARTS.values()):
        assert preset_path(env_id).resolve().is_relative_to(PACKAGE), env_id
    # the top-level envs_config/ (the project layout) is a link to the package's: one copy
    top = REPO / "envs_config"
    assert top.is_symlink() and top.resolve() == (PACKAGE / "envs_config").resolve()


def test_wheel_carries_presets_and_bundled_model(tmp_path):
    src = tmp_path / "src"  # build from a copy: an in-tree build writes build/ into the repo
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("freeaction_gym", "agents"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*cmd, "-w", str(tmp_path / "dist"), str(src)], check=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for env_id in freeaction_gym.ENV_IDS:
        assert f"freeaction_gym/envs_config/{env_id}.yaml" in names, env_id
    for f in ("config.json", "model.safetensors", "reset_bank.npz", "reward_head/config.json"):
        assert f"freeaction_gym/assets/metaworld_default/{f}" in names, f
    assert "freeaction_gym/agents/hyperparams/FreeActionMetaWorld-v0.yaml" in names
    assert "agents/train.py" in names  # python -m agents.train
    for f in ("index.html", "app.js", "style.css"):  # freeaction play --web, no CDN
        assert f"freeaction_gym/web/static/{f}" in names, f


def test_build_artefacts_are_ignored_by_git():
    paths = ["build/lib/freeaction_gym/__init__.py", "dist/freeaction_gym-0.1.0.whl"]
    out = subprocess.run(
        ["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert out.stdout.split() == paths
