"""Visual action prompts in the training data path (seed 004): prompt videos rendered once
per episode from the stored keypoints and cached beside the pixel cache, windows cut in step
with the frames, and a prompt model trained (warm-started from a prompt-less one) end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeaction_gym.data.episodes import list_episodes, load_episode
from freeaction_gym.prompts import skeleton
from freeaction_gym.prompts.camera import PinholeCamera
from freeaction_gym.prompts.skeleton import render_prompts
from freeaction_gym.training.data import EpisodeBank, episode_prompts

RESOLUTION = 32  # as tests/training/conftest.py generates


def reference_prompts(path) -> np.ndarray:
    """The episode's skeletons drawn here through the generator's default camera preset."""
    ep = load_episode(path, load_depth=False)
    return render_prompts(ep.keypoints, PinholeCamera.from_preset("workspace", RESOLUTION))


def test_episode_prompts_render_the_keypoints_and_round_trip_the_cache(
    metaworld_root, tmp_path, monkeypatch
):
    paths = list_episodes(metaworld_root, "train")
    cache = tmp_path / "cache_train_prompts.pt"
    prompts = episode_prompts(metaworld_root, paths, cache)
    assert cache.is_file() and len(prompts) == len(paths)
    for p, path in zip(prompts, paths, strict=True):
        assert p.dtype == torch.uint8 and p.shape == (9, RESOLUTION, RESOLUTION, 3)
        np.testing.assert_array_equal(p.numpy(), reference_prompts(path))
        assert p.numpy().max() > 0  # the arm is in view

    calls = []
    original = skeleton.render_prompts  # imported lazily by data.py: patched where it lives

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(skeleton, "render_prompts", counting)
    again = episode_prompts(metaworld_root, paths, cache)  # from the cache: nothing drawn
    assert not calls
    for a, b in zip(again, prompts, strict=True):
        assert torch.equal(a, b)
    fewer = episode_prompts(metaworld_root, paths[:2], cache)  # another file list: redrawn
    assert len(calls) == 2 and len(fewer) == 2


def test_bank_cuts_prompt_windows_with_the_frames(metaworld_root, tmp_path):
    plain = EpisodeBank.from_metaworld(metaworld_root, "train", None)
    bank = EpisodeBank.from_metaworld(
        metaworld_root, "train", None, prompts=True, prompt_cache=tmp_path / "p.pt"
    )
    clips = bank.sample_clips(4, 3, np.random.default_rng(5))
    z, a = plain.sample(4, 3, np.random.default_rng(5))  # the same draws
    assert torch.equal(clips.latents, z) and torch.equal(clips.actions, a)
    assert clips.prompts.shape == (4, 3, 3, RESOLUTION, RESOLUTION)
    assert plain.sample_clips(4, 3, np.random.default_rng(5)).prompts is None

    one = bank.clips([1], [4], 3)  # episode 1, frames 4..6
    ref = reference_prompts(list_episodes(metaworld_root, "train")[1])[4:7]
    want = torch.from_numpy(ref).permute(0, 3, 1, 2).float() / 127.5 - 1  # the pixels' range
    assert torch.equal(one.prompts[0], want)
    fixed = bank.fixed_clips(2, 3, seed=7)
    assert torch.equal(fixed.prompts, bank.fixed_clips(2, 3, seed=7).prompts)


def test_prompt_model_trains_from_a_prompt_less_one(metaworld_root, tmp_path):
    from test_train_dit import dit_config as run_config

    from freeaction_gym.training.config import config_from_dict
    from freeaction_gym.training.train_dit import train_dit
    from freeaction_gym.world_model import WorldModel

    plain = run_config(metaworld_root, tmp_path / "plain", steps=1)
    plain["loop"]["eval_every"] = 0
    plain_dir = train_dit(config_from_dict(plain))
    run = run_config(metaworld_root, tmp_path / "vap", steps=2)
    run["model"] |= {"prompt": "both", "controlnet_depth": 2}
    run["loop"] |= {"init_from": str(plain_dir), "eval_every": 2}
    model_dir = train_dit(config_from_dict(run))
    world = WorldModel.from_pretrained(model_dir)
    assert world.dit.config.prompt == "both" and world.takes_prompts
    assert (tmp_path / "vap" / "eval.jsonl").is_file()
    cache = metaworld_root / ".cache"
    assert (cache / "cache_train_prompts.pt").is_file()
    assert (cache / "cache_val_prompts.pt").is_file()


def test_episodes_without_keypoints_are_named(metaworld_root, tmp_path):
    src = list_episodes(metaworld_root, "train")[0]
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files if k != "keypoints"}
    bad = tmp_path / src.name
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="stores no keypoints"):
        episode_prompts(metaworld_root, [bad])
