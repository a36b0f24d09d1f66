"""DynaConfig: the shipped YAML files load; bad options fail early, naming the option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from freeaction_gym.dyna.config import (
    AgentConfig,
    DynaConfig,
    changed_settings,
    check_same_run,
    config_from_dict,
    load_dyna_config,
)

REPO = Path(__file__).resolve().parents[2]


def test_shipped_configs_load():
    quick = load_dyna_config(REPO / "configs/dyna/quick.yaml")  # the base is generated
    assert quick.data.generate["tasks"] == ["reach-v3"] and quick.iterations == 2
    assert quick.world_model.init == "bundled:metaworld_default"
    reach = load_dyna_config(REPO / "configs/dyna/reach.yaml", check_paths=False)
    assert reach.task == "reach-v3" and reach.data.base_tasks == ["reach-v3"]
    assert reach.collect.episodes * reach.collect.steps * reach.iterations == 10_000
    mwk = load_dyna_config(REPO / "configs/dyna/metaworld_k.yaml", check_paths=False)
    per_iteration = mwk.collect.episodes * mwk.collect.steps  # the benchmark's budgets fit
    assert mwk.agent.algo == "drq" and 10_000 % per_iteration == 0 == 5_000 % per_iteration
    assert mwk.collect.steps == mwk.eval.steps == 40  # episodes as long as the evaluation's


def test_overrides_reach_nested_options(tmp_path):
    cfg = load_dyna_config(
        REPO / "configs/dyna/quick.yaml",
        ["collect.episodes=3", "agent.hp={ppo: {n_steps: 8}}", "world_model.max_minutes=0.5",
         "eval.imagined=false"],
    )  # fmt: skip
    assert cfg.collect.episodes == 3 and cfg.collect.steps == 20  # the rest stays
    assert cfg.agent.hp["ppo"] == {"n_steps": 8, "batch_size": 64, "n_epochs": 2}  # by key
    assert cfg.world_model.max_minutes == 0.5
    assert cfg.eval.imagined is False


def test_agent_hyperparameters_per_algorithm():
    """Shared keys apply to every algorithm, an algorithm's own section over them; the
    quick config switches to DrQ with one override."""
    hp = {"learning_rate": 1e-4, "batch_size": 8, "ppo": {"n_steps": 16},
          "drq": {"batch_size": 4, "replay_buffer_kwargs": {"pad": 2}}}  # fmt: skip
    ppo = config_from_dict({"agent": {"algo": "ppo", "hp": hp}}).agent
    drq = config_from_dict({"agent": {"algo": "drq", "hp": hp}}).agent
    assert ppo.hp_for_algo() == {"learning_rate": 1e-4, "batch_size": 8, "n_steps": 16}
    assert drq.hp_for_algo() == {
        "learning_rate": 1e-4, "batch_size": 4, "replay_buffer_kwargs": {"pad": 2}
    }  # fmt: skip
    quick = load_dyna_config(REPO / "configs/dyna/quick.yaml", ["agent.algo=drq"])
    assert "n_steps" not in quick.agent.hp_for_algo()  # PPO's section stays PPO's
    assert quick.agent.hp_for_algo()["learning_starts"] < quick.agent.timesteps


@pytest.mark.parametrize(
    "override, message",
    [
        ({"bogus": 1}, r"unknown dyna option\(s\) \['bogus'\]"),
        ({"collect": {"epsiodes": 3}}, r"\['collect.epsiodes'\]; allowed in collect"),
        ({"collect": {"episodes": 0}}, "collect.episodes must be >= 1, got 0"),
        ({"collect": {"episodes": "4"}}, "collect.episodes must be a whole number"),
        ({"collect": {"noise_sigma": -0.1}}, "collect.noise_sigma must be >= 0"),
        ({"iterations": 0}, "dyna option iterations must be >= 1"),
        ({"agent": {"algo": "dqn"}}, "agent.algo='dqn'; allowed: 'ppo', 'sac'"),
        ({"agent": {"support": "box"}}, "agent.support='box'"),
        ({"agent": {"hp": {"drq": 3}}}, "agent.hp.drq must be a mapping"),
        ({"agent": {"support_quantile": 0.5}}, r"agent.support_quantile must be in \[0, 0.5\)"),
        ({"world_model": {"ema_decay": 1.0}}, r"world_model.ema_decay must be in \[0, 1\)"),
        ({"reward": {"collected_share": 1.0}}, r"reward.collected_share must be in \[0, 1\)"),
        ({"world_model": {"max_minutes": 0}}, "world_model.max_minutes must be > 0"),
        ({"reward": {"mode": "probe"}}, "reward.mode='probe'; allowed: 'refit', 'keep', 'state'"),
        ({"reward": {"mode": "state", "imagined_episodes": 2}}, "needs reward.mode refit"),
        ({"agent": {"algo": "ppo", "real_replay": True}}, "real_replay .*off-policy"),
        ({"task": "door-open-v3", "reward": {"mode": "state"}}, r"not task 'door-open-v3'"),
        ({"eval": {"episodes": 0}}, "eval.episodes must be >= 1"),
        ({"data": {"base_train_episodes": 0}}, "data.base_train_episodes must be >= 1"),
        ({"eval": 3}, "dyna section eval must be a mapping"),
        # the imagined env's options, checked when the config loads (issue 38)
        (
            {"agent": {"env_kwargs": {"frame_skip": 4}}},
            r"dyna option agent\.env_kwargs: unknown env option\(s\) \['frame_skip'\]",
        ),
        (
            {"agent": {"env_kwargs": {"sampling": {"num_steps": 0}}}},
            r"agent\.env_kwargs: env option sampling\.num_steps must be >= 1",
        ),
        (
            {"agent": {"env_kwargs": {"sampling": {"guidance": {"lam": -1}}}}},
            r"agent\.env_kwargs: env option sampling\.guidance: lam must be in \[0, 10\]",
        ),
        (
            {"agent": {"env_kwargs": {"max_episode_steps": "ten"}}},
            "agent.env_kwargs: env option max_episode_steps must be a whole number",
        ),
    ],
)
def test_bad_options_name_the_option(override, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(override)


def test_bad_env_kwargs_fail_when_the_config_loads():
    """A run whose imagined env options are wrong stops when its config loads, before the
    first stage (collection), not at the agent stage after collection and fine-tuning."""
    with pytest.raises(ValueError, match=r"agent\.env_kwargs: unknown env option"):
        load_dyna_config(REPO / "configs/dyna/quick.yaml", ["agent.env_kwargs={frame_skp: 4}"])
    with pytest.raises(ValueError, match=r"agent\.env_kwargs: env option support\.penalty"):
        DynaConfig(agent=AgentConfig(env_kwargs={"support": {"low": [0], "high": [1],
                                                             "penalty": -1}}))  # fmt: skip


def test_missing_inputs_fail_before_any_work(tmp_path, base_root):
    cfg = REPO / "configs/dyna/quick.yaml"
    with pytest.raises(FileNotFoundError, match="data.base=.*no dataset there"):
        load_dyna_config(cfg, [f"data.base={tmp_path / 'none'}", "data.generate=null"])
    with pytest.raises(ValueError, match="data.generate: .*unexpected keyword"):
        load_dyna_config(cfg, ["data.generate={episodes: 3}"])
    with pytest.raises(ValueError, match="task=push-v3 is not a task of the base"):
        load_dyna_config(cfg, [f"data.base={base_root}", "task=push-v3"])
    with pytest.raises(FileNotFoundError, match="world_model.init=.*no world model there"):
        load_dyna_config(cfg, [f"world_model.init={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="world_model.train_config=.*file not found"):
        load_dyna_config(cfg, [f"world_model.train_config={tmp_path / 'x.yaml'}"])
    with pytest.raises(FileNotFoundError, match="reward.init=.*no reward head there"):
        load_dyna_config(cfg, [f"reward.init={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="dyna config not found"):
        load_dyna_config(tmp_path / "missing.yaml")


def test_a_resumed_run_must_keep_its_settings():
    saved = yaml.safe_load(yaml.safe_dump(DynaConfig().to_dict()))  # as config.yaml holds it
    check_same_run(saved, config_from_dict({"iterations": 50, "progress": False}))
    with pytest.raises(ValueError, match=r"different settings \(collect.episodes, seed\)"):
        check_same_run(saved, config_from_dict({"seed": 1, "collect": {"episodes": 3}}))
    json.dumps(saved)  # the saved config is plain data


def test_an_option_added_since_the_run_was_saved_counts_at_its_default():
    """A run saved before ``reward.imagined_episodes`` and ``agent.start_stride`` existed
    resumes unchanged; setting them is a change (a branch says from what)."""
    saved = yaml.safe_load(yaml.safe_dump(DynaConfig().to_dict()))
    del saved["reward"]["imagined_episodes"], saved["agent"]["start_stride"]
    check_same_run(saved, config_from_dict({}))
    assert changed_settings(saved, config_from_dict({})) == []
    changed = config_from_dict({"agent": {"start_stride": 5}})
    assert changed_settings(saved, changed) == ["agent.start_stride"]
