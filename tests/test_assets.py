"""Bundled asset paths (freeaction_gym/assets.py): ``bundled:<name>`` and
``bundled:<name>/<relative path>`` resolve inside the package's assets directory, and a
wrong name or sub-path fails naming the problem and listing the bundled models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import freeaction_gym
from freeaction_gym.assets import BUNDLED, bundled_dir, resolve_asset_path, resolve_model_path

ASSETS = Path(freeaction_gym.__file__).resolve().parent / "assets"
NAMES = re.escape(str(list(BUNDLED)))


def test_bundled_name_and_sub_paths_resolve_inside_the_assets():
    assert resolve_asset_path("bundled:metaworld_vap") == ASSETS / "metaworld_vap"
    head = resolve_asset_path("bundled:metaworld_default/reward_head")
    assert head == ASSETS / "metaworld_default" / "reward_head" and head.is_dir()
    bank = resolve_asset_path("bundled:metaworld_default/reset_bank.npz")
    assert bank == bundled_dir() / "reset_bank.npz" and bank.is_file()
    nested = resolve_asset_path("bundled:metaworld_vap/proprio/config.json")
    assert nested == ASSETS / "metaworld_vap" / "proprio" / "config.json" and nested.is_file()
    assert resolve_model_path is resolve_asset_path  # one set of rules for every path option


def test_plain_paths_pass_through(tmp_path):
    assert resolve_asset_path(tmp_path / "nothing.npz") == tmp_path / "nothing.npz"
    assert resolve_asset_path("~/bank.npz") == Path.home() / "bank.npz"


@pytest.mark.parametrize("spec", ["bundled:metaworld_nope", "bundled:metaworld_nope/reward_head"])
def test_unknown_bundle_name_lists_the_bundled_models(spec):
    with pytest.raises(ValueError, match=rf"unknown bundled model 'metaworld_nope'.*{NAMES}"):
        resolve_asset_path(spec)


def test_missing_sub_path_names_it_and_lists_the_bundled_models():
    spec = "bundled:metaworld_vap/reward_head"  # the vap bundle uses the default's head
    with pytest.raises(FileNotFoundError) as err:
        resolve_asset_path(spec)
    msg = str(err.value)
    assert f"{spec!r}" in msg and "has no 'reward_head'" in msg and str(list(BUNDLED)) in msg
    assert "proprio/" in msg  # what the bundle does hold


@pytest.mark.parametrize("sub", ["../metaworld_default/reset_bank.npz", "/etc/passwd"])
def test_sub_path_must_stay_inside_the_bundle(sub):
    with pytest.raises(ValueError, match="must stay inside the bundle"):
        resolve_asset_path(f"bundled:metaworld_vap/{sub}")
