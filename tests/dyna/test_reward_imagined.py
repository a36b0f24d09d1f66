"""``reward.imagined_episodes``: the refit also reads an imagined copy of the newest
collected episodes (then the base's) and of the val/test episodes, replayed through the
iteration's world model, with the real labels."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from freeaction_gym.data.episodes import list_episodes, load_episode
from freeaction_gym.dyna.dataset import LoopDataset
from freeaction_gym.dyna.reward import imagined_copy, refit_reward_head, replay_choice

TASK = "reach-v3"


@pytest.fixture()
def loop_dataset(base_root, tmp_path):
    """The tiny base linked, plus two 'collected' episodes of iterations 0 and 1 (copies of
    base episodes, so their labels are known)."""
    ds = LoopDataset.create(tmp_path / "data", base_root, [TASK])
    base = list_episodes(base_root, "train", [TASK])
    shutil.copyfile(base[0], ds.collected_path(TASK, 0, 0))
    shutil.copyfile(base[1], ds.collected_path(TASK, 1, 0))
    return ds


def test_replay_choice_takes_the_newest_collected_first(loop_dataset):
    chosen = replay_choice(loop_dataset, TASK, 3)
    names = [p.name for p in chosen["train"]]
    assert names == ["reach-v3_200000.npz", "reach-v3_100000.npz", "reach-v3_00000.npz"]
    assert len(replay_choice(loop_dataset, TASK, 100)["train"]) == 2 + 3  # all there are
    assert [len(chosen[s]) for s in ("val", "test")] == [1, 2]


def test_imagined_copy_keeps_real_labels_on_imagined_frames(tiny, loop_dataset, tmp_path):
    env = {"model": str(tiny.world_dir), "task": TASK, "sampling": tiny.fast,
           "max_episode_steps": 3, "reset_bank": "ignored.npz"}  # fmt: skip
    info = imagined_copy(loop_dataset, TASK, 2, env, tmp_path / "reward", seed=0, max_actions=5)
    root = tmp_path / "reward" / "imagined"
    assert info["out"] == str(root) and info["episodes"] == {"train": 2, "val": 1, "test": 2}
    copies = [load_episode(p, load_depth=False) for p in list_episodes(root, "train")]
    chosen = {p.name: p for p in replay_choice(loop_dataset, TASK, 2)["train"]}
    assert sorted(str(c.info["source"]) for c in copies) == sorted(chosen)
    sources = [load_episode(chosen[str(c.info["source"])], load_depth=False) for c in copies]
    for copy, src in zip(copies, sources, strict=True):
        assert copy.num_actions == 5  # max_actions, not the env's 3-step episodes
        np.testing.assert_array_equal(copy.rgb[0], src.rgb[0])  # the real first frame
        np.testing.assert_array_equal(copy.reward, src.reward[:5])
        np.testing.assert_array_equal(copy.success, src.success[:5])
        assert not np.array_equal(copy.rgb[1:], src.rgb[1:6])  # frames 1.. are imagined
    assert len(list_episodes(root, "val")) == 1 and len(list_episodes(root, "test")) == 2

    head = refit_reward_head_small(tiny, [loop_dataset.root, root], tmp_path / "head")
    assert head["steps"] == 4


def refit_reward_head_small(tiny, roots, out):
    from freeaction_gym.dyna.config import RewardConfig

    cfg = RewardConfig(steps=4, batch_size=8, eval_every=4)
    return refit_reward_head(cfg, tiny.reward_head, roots, out, seed=0)


def test_negative_imagined_episodes_are_refused(tmp_path):
    from freeaction_gym.dyna.config import config_from_dict

    with pytest.raises(ValueError, match="reward.imagined_episodes must be >= 0"):
        config_from_dict({"output": str(tmp_path), "reward": {"imagined_episodes": -1}})


def test_collected_share_oversamples_the_agents_episodes_in_the_refit(tiny, loop_dataset, tmp_path):
    """``reward.collected_share``: the refit's batches draw the collected episodes' frames
    with that probability (the head's trainer records the pattern; the frames it matches
    are exactly the two collected episodes')."""
    import json

    from freeaction_gym.dyna.config import RewardConfig
    from freeaction_gym.dyna.dataset import COLLECTED_PATTERN
    from freeaction_gym.training.train_reward_head import FrameSampler, load_frame_set

    cfg = RewardConfig(steps=4, batch_size=8, eval_every=4, collected_share=0.5)
    refit_reward_head(cfg, tiny.reward_head, loop_dataset.root, tmp_path / "head", seed=0)
    args = json.loads((tmp_path / "head" / "metrics.json").read_text())["args"]
    assert args["oversample_pattern"] == COLLECTED_PATTERN and args["oversample_share"] == 0.5
    train = load_frame_set(loop_dataset.root, "train", [TASK])
    sampler = FrameSampler(train.stems, COLLECTED_PATTERN, 0.5)
    collected = sum(load_episode(p, load_depth=False).num_actions
                    for p in loop_dataset.collected())  # fmt: skip
    assert sampler.matches == collected and sampler.pools is not None

    uniform = RewardConfig(steps=4, batch_size=8, eval_every=4)
    refit_reward_head(uniform, tiny.reward_head, loop_dataset.root, tmp_path / "u", seed=0)
    args = json.loads((tmp_path / "u" / "metrics.json").read_text())["args"]
    assert args["oversample_pattern"] is None and args["oversample_share"] == 0.0
