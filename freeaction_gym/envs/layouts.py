"""Train and test layouts: which MetaWorld scenes an agent's episodes start from.

A scene is layout ``l`` of ``metaworld.MT1(task, seed=s)``. Datasets split scenes by seed
(``MetaWorldDataConfig.layout_seeds``: train 0 and the seeds after it, val 500, test 1000),
and the envs' own reset banks (the preset's ``reset_bank``, else the model's
``reset_bank.npz``: for the bundled presets ``metaworld_default``'s) hold the *test* split's
scenes, which every evaluation starts from. An agent trained on the env's own bank
would therefore be scored on the scenes it trained on. :func:`layout_env_kwargs` makes the
choice explicit for each env an agent trains or is evaluated in:

* ``train`` - a reset bank of train scenes: the train split of a dataset (``data``), or,
  without one, every layout of the train MT1 seed rendered from the simulator
  (:func:`render_layout_bank`). It is checked to share no scene with the env's own
  (held-out) bank. A ``reset_bank`` env option is used as given, with the same check.
* ``test`` - the env's own bank (the held-out test scenes), a dataset's test split
  (``data``), or a ``reset_bank`` env option.

Only MetaWorld world models and the real simulator know layouts; IRASim ids train on a
``reset_bank`` made from their train split (``freeaction bank --format irasim --split
train``), and other envs are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from freeaction_gym.assets import resolve_asset_path
from freeaction_gym.envs.bank import ResetBank

LayoutSplit = Literal["train", "test"]
TRAIN_LAYOUT_SEED = 0  # MetaWorldDataConfig.layout_seeds["train"]
LAYOUTS_PER_SEED = 50  # metaworld.MT1(task, seed).train_tasks
METAWORLD_TASKS = ("reach-v3", "push-v3", "pick-place-v3")


def scene_keys(bank: ResetBank) -> set[tuple[str, int, int]]:
    """``(task, layout_seed, layout)`` of every entry that names its MetaWorld scene."""
    known = (bank.layout >= 0) & (bank.layout_seed >= 0)
    columns = (bank.task[known], bank.layout_seed[known], bank.layout[known])
    return {(str(t), int(s), int(lay)) for t, s, lay in zip(*columns, strict=True)}


def check_disjoint(
    train: ResetBank, held_out: ResetBank, train_name: str = "train", held_name: str = "test"
) -> bool:
    """Raise ``ValueError`` if a scene is in both banks (naming a few); returns whether the
    check could compare anything (both banks name scenes)."""
    a, b = scene_keys(train), scene_keys(held_out)
    shared = sorted(a & b)
    if shared:
        raise ValueError(
            f"the {train_name} reset bank shares {len(shared)} scene(s) with the held-out "
            f"{held_name} bank, e.g. (task, layout_seed, layout) = {shared[:3]}: an agent "
            "would be evaluated on scenes it trained on"
        )
    return bool(a) and bool(b)


def render_layout_bank(
    tasks: Sequence[str],
    layout_seed: int = TRAIN_LAYOUT_SEED,
    layouts: Sequence[int] = range(LAYOUTS_PER_SEED),
    resolution: int = 64,
    camera: str = "workspace",
    action_repeat: int = 4,
    max_actions: int = 150,
) -> ResetBank:
    """A reset bank of MetaWorld scenes rendered from the simulator, one entry per (task,
    layout): ``initial`` the first frame (what a dataset episode of that scene starts with),
    ``goal`` the frame after MetaWorld's scripted expert (no noise) first succeeds, as
    :meth:`ResetBank.from_dataset` picks it (the last frame if it has not succeeded after
    ``max_actions`` actions of ``action_repeat`` simulator steps), the initial robot
    ``state``/``keypoints`` and the scene's ``goal_pos`` (MetaWorld's ``_target_pos``)."""
    from freeaction_gym.data.metaworld_env import make_metaworld_env, robot_state, set_layout
    from freeaction_gym.data.metaworld_policies import scripted_action

    init, goal, task_col, names, layout_col, state, keypoints = [], [], [], [], [], [], []
    goal_pos = []
    experts: dict[str, Any] = {}
    for task in tasks:
        env, render = make_metaworld_env(task, layout_seed, 0, camera, resolution, depth=False)
        env.max_path_length = max(env.max_path_length, max_actions * action_repeat + 1)
        try:
            for lay in layouts:
                set_layout(env, task, layout_seed, lay)
                obs, _ = env.reset()
                goal_pos.append(np.asarray(env._target_pos, np.float32))
                init.append(render()[0])
                s, kp = robot_state(env, obs)
                state.append(s)
                keypoints.append(kp)
                for _ in range(max_actions):
                    action = scripted_action(task, obs, experts)
                    success = False
                    for _ in range(action_repeat):
                        obs, _, _, _, info = env.step(action)
                        success |= bool(info["success"])
                    if success:
                        break
                goal.append(render()[0])
                task_col.append(task)
                names.append(f"{task}_seed{layout_seed}_layout{lay}")
                layout_col.append(lay)
        finally:
            render.close()
            env.close()
    return ResetBank(
        np.stack(init),
        np.stack(goal),
        np.array(task_col),
        np.array(names),
        np.array(layout_col),
        np.full(len(init), layout_seed),
        np.stack(state),
        np.stack(keypoints),
        np.stack(goal_pos),
    )


@dataclass
class EnvScenes:
    """What an env id with given options starts from, before any layout choice."""

    kind: Literal["metaworld", "irasim", "other"]
    tasks: list[str] = field(default_factory=list)
    """The tasks its episodes may be of."""
    resolution: int | None = None
    """Frame size (H = W) a bank for it must have."""
    own_bank: ResetBank | None = None
    """Its bank without a caller's ``reset_bank`` option: the preset's ``reset_bank`` (as
    ``FreeActionMetaWorldVAP-v0``'s ``bundled:metaworld_default/reset_bank.npz``), else the
    model directory's (the presets': held-out test scenes)."""


def env_scenes(env_id: str, env_kwargs: dict[str, Any]) -> EnvScenes:
    """:class:`EnvScenes` of a registered id with ``env_kwargs`` (their ``reset_bank`` ignored;
    the preset's is the env's own)."""
    import gymnasium as gym

    import freeaction_gym  # noqa: F401  (registers the ids)
    from freeaction_gym.envs.registration import ENTRY, REAL_ENTRY

    spec = gym.spec(env_id)
    kwargs = {k: v for k, v in env_kwargs.items() if k != "reset_bank"}
    if spec.entry_point == REAL_ENTRY:
        from freeaction_gym.envs.real_metaworld import default_bank, make_real_env_config

        cfg = make_real_env_config(spec.kwargs.get("mirror"), **kwargs)
        bank = default_bank(cfg)
        bank = bank if bank is not None and bank.has_layouts else None  # as the env does
        tasks = [cfg.task] if cfg.task else (bank.tasks if bank is not None else list(cfg.tasks))
        return EnvScenes("metaworld", tasks, int(cfg.resolution), bank)
    if spec.entry_point != ENTRY:
        return EnvScenes("other")
    from freeaction_gym.envs.config import make_env_config
    from freeaction_gym.envs.factory import load_bank

    cfg = make_env_config(spec.kwargs.get("preset"), **kwargs)
    if cfg.model_format == "irasim":
        return EnvScenes("irasim")
    bank = load_bank(cfg)
    tasks = [cfg.task] if cfg.task else (bank.tasks if bank is not None else list(METAWORLD_TASKS))
    return EnvScenes("metaworld", tasks, _model_resolution(cfg.model, bank), bank)


def _model_resolution(model: str, bank: ResetBank | None) -> int | None:
    """Frame size of a pixel-space world model (its bank's, else its config's)."""
    if bank is not None:
        return int(bank.initial.shape[1])
    import json

    from freeaction_gym.assets import resolve_model_path

    try:
        meta = json.loads((resolve_model_path(model) / "config.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    if meta.get("codec", "pixel") != "pixel":
        return None
    return int(meta["config"]["input_size"][0])


@dataclass
class Layouts:
    """The outcome of :func:`layout_env_kwargs`."""

    env_kwargs: dict[str, Any]
    """The env options to use (``reset_bank`` set where a bank was chosen or made)."""
    bank: ResetBank | None
    """The bank the env will start from (None: an env without one)."""
    record: dict[str, Any]
    """JSON-able description: ``split``, ``source``, ``reset_bank``, ``entries``,
    ``layout_seeds``, ``checked_disjoint``."""


def layout_env_kwargs(
    env_id: str,
    env_kwargs: dict[str, Any],
    split: LayoutSplit,
    bank_path: str | Path,
    data: str | Path | None = None,
) -> Layouts:
    """Env options that start ``env_id``'s episodes from ``split`` scenes (module docstring);
    a bank made here is written to ``bank_path`` (reused if it is there already)."""
    if split not in ("train", "test"):
        raise ValueError(f"layouts must be 'train' or 'test', got {split!r}")
    kwargs = dict(env_kwargs)
    if data is not None and env_id_is_real(env_id) and "data" not in kwargs:
        kwargs["data"] = str(data)  # render as the dataset did (camera, resolution, repeat)
    scenes = env_scenes(env_id, kwargs)
    explicit = kwargs.get("reset_bank")
    if scenes.kind == "other":
        return Layouts(kwargs, None, {"split": split, "source": "not a MetaWorld env"})
    if explicit:
        bank, source = ResetBank.load(resolve_asset_path(explicit)), "reset_bank option"
    elif split == "test" and data is None:
        if scenes.kind == "irasim":
            return Layouts(kwargs, None, {"split": split, "source": "the env's own bank"})
        bank, source = scenes.own_bank, "the env's own bank"
    elif scenes.kind == "irasim":
        raise ValueError(
            f"{env_id}: IRASim ids have no MetaWorld layouts; pass a reset_bank env option "
            "(`freeaction bank --format irasim --split train`) or layouts=test"
        )
    else:
        bank, source = _made_bank(scenes, split, Path(bank_path), data)
        kwargs["reset_bank"] = str(bank_path)
    checked = False
    if split == "train" and bank is not None and scenes.own_bank is not None:
        checked = check_disjoint(bank, scenes.own_bank, "train", f"{env_id} (its own)")
    record = {
        "split": split,
        "source": source,
        "reset_bank": kwargs.get("reset_bank"),
        "entries": None if bank is None else len(bank),
        "layout_seeds": None if bank is None else sorted(set(bank.layout_seed.tolist())),
        "checked_disjoint": checked,
    }
    return Layouts(kwargs, bank, record)


def env_id_is_real(env_id: str) -> bool:
    import gymnasium as gym

    from freeaction_gym.envs.registration import REAL_ENTRY

    return gym.spec(env_id).entry_point == REAL_ENTRY


def _made_bank(
    scenes: EnvScenes, split: LayoutSplit, path: Path, data: str | Path | None
) -> tuple[ResetBank, str]:
    """A ``split`` bank for ``scenes`` (from ``data``'s split, else rendered train layouts),
    cached at ``path``."""
    if data is not None:
        source = f"{split} split of {data}"
    else:
        source = f"layouts 0-{LAYOUTS_PER_SEED - 1} of MT1 seed {TRAIN_LAYOUT_SEED}, rendered"
    if path.is_file():
        bank = ResetBank.load(path)
    else:
        if data is not None:
            bank = ResetBank.from_dataset(data, split, scenes.tasks)
        else:
            bank = render_layout_bank(scenes.tasks, resolution=scenes.resolution or 64)
        bank.save(path)
    missing = sorted(set(scenes.tasks) - set(bank.tasks))
    if missing:
        raise ValueError(f"{source} has no scene of the task(s) {missing} ({path})")
    r = scenes.resolution
    if r is not None and bank.initial.shape[1:3] != (r, r):
        raise ValueError(
            f"{source} has {bank.initial.shape[1]}x{bank.initial.shape[2]} frames but the "
            f"env shows {r}x{r} frames ({path}): use a dataset at the env's resolution"
        )
    return bank, source
