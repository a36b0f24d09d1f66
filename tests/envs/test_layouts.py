"""Train and test layouts (freeaction_gym/envs/layouts.py). References are independent of
the code under test: episodes written by the dataset generator (first frame, robot state),
the real env stepping the scripted expert (goal frame), and the goal positions MetaWorld
itself places in each scene (disjointness without the banks' layout labels)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("metaworld")

from freeaction_gym.data.episodes import list_episodes, load_episode  # noqa: E402
from freeaction_gym.data.metaworld_gen import MetaWorldDataConfig, generate_dataset  # noqa: E402
from freeaction_gym.data.metaworld_policies import scripted_action  # noqa: E402
from freeaction_gym.envs.bank import ResetBank  # noqa: E402
from freeaction_gym.envs.layouts import (  # noqa: E402
    check_disjoint,
    layout_env_kwargs,
    render_layout_bank,
    scene_keys,
)
from freeaction_gym.envs.real_metaworld import RealMetaWorldEnv  # noqa: E402

REAL_REACH = "FreeActionRealMetaWorldReach-v0"
HW = 32


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """reach-v3 at 32x32: train layouts 0-2 of MT1 seed 0, test layouts 0-1 of seed 1000."""
    root = tmp_path_factory.mktemp("layouts_data")
    cfg = MetaWorldDataConfig(
        tasks=["reach-v3"], train_episodes=3, val_episodes=0, test_episodes=2, frames=3,
        resolution=HW, depth=False,
    )  # fmt: skip
    generate_dataset(root, cfg, num_workers=1, progress=False, log=lambda _: None)
    return root


def goal_positions(bank_path, data) -> np.ndarray:
    """(N, 3) the goal MetaWorld places in each scene of the bank (read after reset)."""
    env = RealMetaWorldEnv(reset_bank=str(bank_path), data=str(data))
    try:
        out = []
        for j in range(len(ResetBank.load(bank_path))):
            env.reset(seed=0, options={"bank_index": j})
            out.append(np.array(env._sim._target_pos, np.float64))
        return np.stack(out)
    finally:
        env.close()


def test_rendered_bank_matches_the_dataset_and_the_expert(dataset, tmp_path):
    bank = render_layout_bank(["reach-v3"], layout_seed=0, layouts=[0, 1, 2], resolution=HW)
    assert list(bank.layout) == [0, 1, 2] and set(bank.layout_seed) == {0}
    assert bank.has_layouts and bank.has_robot_state
    for ep_path in list_episodes(dataset, "train"):  # the generator's episodes of the scenes
        ep = load_episode(ep_path, load_depth=False)
        j = int(np.flatnonzero(bank.layout == ep.layout)[0])
        assert int(ep.info["layout_seed"]) == 0
        assert np.abs(bank.initial[j].astype(int) - ep.rgb[0].astype(int)).max() <= 2
        np.testing.assert_allclose(bank.state[j], ep.state[0], atol=1e-5)
        np.testing.assert_allclose(bank.keypoints[j], ep.keypoints[0], atol=1e-5)

    path = tmp_path / "rendered.npz"
    bank.save(path)
    env = RealMetaWorldEnv(reset_bank=str(path), data=str(dataset), max_episode_steps=150)
    try:  # the goal: the frame after the expert's first successful action, in the real env
        experts: dict = {}
        for j in range(len(bank)):
            obs, _ = env.reset(seed=0, options={"bank_index": j})
            np.testing.assert_array_equal(obs, bank.initial[j])
            for _ in range(150):
                obs, _, _, _, info = env.step(scripted_action("reach-v3", env.state, experts))
                if info["success"]:
                    break
            assert info["success"]
            np.testing.assert_array_equal(obs, bank.goal[j])
    finally:
        env.close()


def test_train_and_test_layouts_are_disjoint(dataset, tmp_path):
    base = {"data": str(dataset)}
    rendered = layout_env_kwargs(REAL_REACH, base, "train", tmp_path / "rendered.npz")
    from_data = layout_env_kwargs(REAL_REACH, {}, "train", tmp_path / "train.npz", dataset)
    test = layout_env_kwargs(REAL_REACH, {}, "test", tmp_path / "test.npz", dataset)
    assert rendered.record["entries"] == 50 and rendered.record["layout_seeds"] == [0]
    assert from_data.record["source"] == f"train split of {dataset}"
    assert from_data.env_kwargs["data"] == str(dataset)  # rendered as the dataset was
    assert test.record["layout_seeds"] == [1000] and test.record["entries"] == 2
    # checked against the env's own held-out bank (the bundled one: test layouts of 1000)
    assert rendered.record["checked_disjoint"] and from_data.record["checked_disjoint"]
    for train in (rendered, from_data):
        assert not scene_keys(train.bank) & scene_keys(test.bank)
        check_disjoint(train.bank, test.bank)

    # independently of the banks' labels: no training scene puts the goal where a test
    # scene does (and the same comparison does find the test scenes in themselves)
    test_goals = goal_positions(tmp_path / "test.npz", dataset)
    for path in ("rendered.npz", "train.npz"):
        goals = goal_positions(tmp_path / path, dataset)
        dist = np.linalg.norm(goals[:, None] - test_goals[None], axis=-1)
        assert dist.min() > 1e-3, path
    assert np.linalg.norm(test_goals[:, None] - test_goals[None], axis=-1).diagonal().max() == 0
    with pytest.raises(ValueError, match="shares 2 scene"):
        check_disjoint(test.bank, test.bank)

    # a real env built with the training options starts only from train scenes
    env = RealMetaWorldEnv(**rendered.env_kwargs)
    held_out = {(s, lay) for _, s, lay in scene_keys(test.bank)}
    try:
        for seed in range(30):
            info = env.reset(seed=seed)[1]
            assert info["layout_seed"] == 0 and (0, info["layout"]) not in held_out
    finally:
        env.close()


def test_bad_layout_choices_fail_naming_the_problem(dataset, tmp_path):
    test = layout_env_kwargs(REAL_REACH, {}, "test", tmp_path / "test.npz", dataset)
    with pytest.raises(ValueError, match="shares 2 scene"):  # the bundled bank holds them
        layout_env_kwargs(REAL_REACH, {"reset_bank": str(tmp_path / "test.npz")}, "train", "x")
    assert test.env_kwargs["reset_bank"] == str(tmp_path / "test.npz")
    with pytest.raises(ValueError, match="32x32 frames but the env shows 64x64"):
        layout_env_kwargs("FreeActionMetaWorldReach-v0", {}, "train", tmp_path / "a.npz", dataset)
    with pytest.raises(ValueError, match="IRASim ids have no MetaWorld layouts"):
        layout_env_kwargs("FreeActionRT1-v0", {}, "train", tmp_path / "b.npz")
    with pytest.raises(ValueError, match="layouts must be 'train' or 'test'"):
        layout_env_kwargs(REAL_REACH, {}, "val", tmp_path / "c.npz")
