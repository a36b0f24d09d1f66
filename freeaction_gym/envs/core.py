"""Batched imagination engine: the one stepping path of every imagined environment.

:class:`ImaginationCore` holds, for N environments, the rolling context latents, the last
frames (for stacking), goal latents, task ids, step counters and displacements, and advances
all of them with ONE batched world-model call per step, returning one :class:`Transition`
(observations, rewards, terminated, truncated, infos). The single env, the Gymnasium vector
env, the stable-baselines3 VecEnv, ``evaluation.worlds.ImaginedWorld`` and
``evaluation.imagine`` are thin adapters over it: they never decide termination or infos.

Noise: ||a|| and tau are computed once per step here; env i draws its initial noise from its
own torch generator (seeded at reset from that env's numpy generator) and both go to
``WorldModel.predict``, which recomputes neither. So env i's noise does not depend on its
batch mates, and its frames equal those of a lone env seeded alike up to float rounding:
batched matrix products may round differently with the batch size on some CPUs (typically
<= 1 uint8 level on a few pixels per step, which an autoregressive rollout carries forward).

``info`` (arrays (N,)): ``action_norm``, ``tau``, ``guidance_weight``, ``success`` (reached
at this step), ``is_success`` (reached at any step of the episode so far: what SB3's
``EvalCallback`` reads at an episode's end), ``out_of_support``; with ``timing_in_info``
also ``step_time_ms``/``model_time_ms``/``decode_time_ms``; with a proprio model
(``conditioning: vap``, ``state_source: proprio``, ``proprio_obs``) also ``robot_state``
(N, 7), the integrated robot state after the step, and ``object_pos`` (N, 3) m, its object
columns (:mod:`~freeaction_gym.envs.prompting` draws the prompts the model is given); with
``success: state`` or ``reward: state`` also ``predicted_state`` (N, 7), the state after the
step that ``success`` (and the state reward) is judged on: the state probe's reading of the
step's last frame, or with ``state_source: proprio`` the proprio model's integrated state
(:class:`~freeaction_gym.rewards.state_success.StateSuccess`,
:mod:`~freeaction_gym.rewards.state_reward`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium.utils import seeding

from freeaction_gym.data.metaworld_env import OBJECT
from freeaction_gym.diffusion.truncation import truncated_initial_noise
from freeaction_gym.envs.bank import ResetBank
from freeaction_gym.envs.config import EnvConfig
from freeaction_gym.envs.prompting import PromptTracker, ProprioTracker, preset_camera
from freeaction_gym.envs.spaces import PROPRIO_DIM, action_space, observation_space
from freeaction_gym.envs.validation import (
    check_against_model,
    check_options_dict,
    frame_shape,
    latent_shape,
    proprio_reason,
)
from freeaction_gym.rewards import GoalLatentReward
from freeaction_gym.rewards.state_reward import state_reward
from freeaction_gym.world_model.model import WorldModel

RESET_OPTIONS = (
    "bank_index",
    "goal_frame",
    "goal_pos",
    "initial_frame",
    "initial_keypoints",
    "initial_state",
    "task",
)


@dataclass
class Transition:
    """One batched step. Inactive envs (``active=False``) get reward 0 and no flags."""

    obs: np.ndarray
    """(N, *observation shape) after the step."""
    reward: np.ndarray
    """float32 (N,)."""
    terminated: np.ndarray
    """bool (N,): success with ``terminate_on_success``, or left the ``support`` box."""
    truncated: np.ndarray
    """bool (N,): reached ``max_episode_steps`` and not terminated."""
    info: dict[str, np.ndarray]
    """Arrays (N, ...), keys in the module docstring."""
    frames: np.ndarray
    """uint8 (N, K, H, W, 3): every frame the step predicted (K = ``action_chunk``)."""

    def info_of(self, i: int) -> dict:
        """Env ``i``'s info with Python scalars (the single-env and SB3 form); per-env
        vectors (``robot_state``) stay arrays."""
        return {k: v[i].item() if v[i].ndim == 0 else v[i].copy() for k, v in self.info.items()}


class ImaginationCore:
    """State of N imagined episodes, their reset and their batched step."""

    def __init__(
        self,
        world: WorldModel,
        config: EnvConfig,
        bank: ResetBank | None,
        reward_fn,
        task_names: list[str],
        num_envs: int,
        proprio=None,
        state_success=None,
    ) -> None:
        """``proprio``: the :class:`~freeaction_gym.prompts.proprio.ProprioModel` of
        ``conditioning: vap`` or ``state_source: proprio``; ``state_success``: the
        :class:`~freeaction_gym.rewards.state_success.StateSuccess` of ``success: state``
        or ``reward: state`` (it replaces the reward function's success; the bank must hold
        ``goal_pos``). None otherwise."""
        self.sampling = check_against_model(config, world, bank, task_names, proprio)
        self.world, self.config, self.bank, self.reward_fn = world, config, bank, reward_fn
        self.state_success = state_success
        self.task_names, self.n, self.n_ctx = task_names, num_envs, world.num_context
        a = world.action_dim
        self.scale = torch.tensor(config.action_scale or [1.0] * a, dtype=torch.float32)
        self.offset = torch.tensor(config.action_offset or [0.0] * a, dtype=torch.float32)
        self.frame_shape = frame_shape(world)
        self.action_space = action_space(config, a)
        self.observation_space = observation_space(config, self.frame_shape, latent_shape(world))
        c, h, w = latent_shape(world)
        self.context = torch.zeros(num_envs, self.n_ctx, c, h, w)  # clean latents
        self.history = torch.zeros(num_envs, self.n_ctx - 1, a)  # actions between contexts
        self.frames = np.zeros((num_envs, config.frame_stack, *self.frame_shape), np.uint8)
        self.goal = torch.full((num_envs, c, h, w), float("nan"))
        self.goal_pos = torch.full((num_envs, 3), float("nan"))  # m, success: state
        self.predicted_state = np.full((num_envs, 7), np.nan, np.float32)
        self.initial_state = torch.full((num_envs, 7), float("nan"))  # m, reward: state
        self.task_id = np.zeros(num_envs, np.int64)
        self.steps = np.zeros(num_envs, np.int64)
        self.displacement = np.zeros((num_envs, a), np.float64)  # sum of env actions
        self.any_success = np.zeros(num_envs, bool)
        self.started = np.zeros(num_envs, bool)
        self.generators = [torch.Generator() for _ in range(num_envs)]
        self.rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]  # batched adapters
        self.timing: dict[str, float] = {}
        self.prompter: PromptTracker | None = None
        self.robot: ProprioTracker | None = None  # the integrated robot state
        if config.conditioning == "vap":
            camera = preset_camera(config.prompt_camera, *self.frame_shape[:2])
            self.prompter = PromptTracker(proprio, camera, num_envs, self.n_ctx)
            self.robot = self.prompter.robot
        elif proprio is not None:
            self.robot = ProprioTracker(proprio, num_envs)

    # -- reset ---------------------------------------------------------------------------
    def check_reset(self, options: dict | None) -> dict:
        """Validate reset ``options`` without touching any state; returns them as a dict.

        ``initial_frame``/``goal_frame`` uint8 (H, W, 3) start from your frames (a goal needs
        an initial frame; ``task`` must be one of :attr:`task_names`); otherwise a reset-bank
        entry is drawn (of ``task`` if given) or ``bank_index`` is taken."""
        options = check_options_dict(options)
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; known: {list(RESET_OPTIONS)}")
        self._check_robot_options(options)
        self._check_goal_pos(options)
        task = options.get("task")
        if "initial_frame" in options:
            self._check_frame(options["initial_frame"], "initial_frame")
            if options.get("goal_frame") is not None:
                self._check_frame(options["goal_frame"], "goal_frame")
            elif isinstance(self.reward_fn, GoalLatentReward):
                raise ValueError(
                    "reward='goal_latent' needs a goal: pass options={'initial_frame': ..., "
                    "'goal_frame': ...} (or use reward='none' / 'learned')"
                )
            if task is not None and task not in self.task_names:
                raise ValueError(f"reset option task={task!r}; this env's tasks: {self.task_names}")
            if "bank_index" in options:
                raise ValueError("reset option bank_index and initial_frame exclude each other")
            return options
        if "goal_frame" in options:
            raise ValueError(
                "reset option goal_frame needs initial_frame (a reset-bank start brings its goal)"
            )
        if self.bank is None:
            raise ValueError("no reset bank configured: pass options={'initial_frame': ...}")
        self.bank.indices(task)  # names the bank's tasks
        j = options.get("bank_index")
        if j is not None and (
            isinstance(j, bool)
            or not isinstance(j, int | np.integer)
            or not 0 <= j < len(self.bank)
        ):
            raise ValueError(f"reset option bank_index={j!r}: need 0 <= index < {len(self.bank)}")
        if j is not None:
            source = "reset option task" if task is not None else "env option task"
            self.bank.check_entry_task(int(j), task or self.config.task, source)
        return options

    def _check_robot_options(self, options: dict) -> None:
        """``initial_state`` (7,) / ``initial_keypoints`` (K, 3): the robot at a user-given
        ``initial_frame``, needed there by (and only accepted with) ``conditioning: vap`` or
        ``state_source: proprio``."""
        given = [k for k in ("initial_state", "initial_keypoints") if k in options]
        if self.robot is None:
            if given:
                raise ValueError(
                    f"reset option(s) {given} need env option conditioning='vap', "
                    "proprio_obs=True or state_source='proprio' (with success or reward "
                    "'state')"
                )
            return
        if "initial_frame" not in options:
            if given:
                raise ValueError(f"reset option(s) {given} need initial_frame (a bank entry "
                                 "brings its own robot state)")  # fmt: skip
            return
        shapes = {"initial_state": (7,), "initial_keypoints": (self.robot.num_keypoints, 3)}
        why = proprio_reason(self.config)
        for name, shape in shapes.items():
            value = options.get(name)
            if value is None or np.shape(value) != shape:
                raise ValueError(
                    f"{why} with initial_frame needs reset option {name} of shape "
                    f"{shape} (the robot in that frame), got "
                    f"{None if value is None else np.shape(value)}"
                )

    def _check_goal_pos(self, options: dict) -> None:
        """``goal_pos`` (3,) m: the goal position at a user-given ``initial_frame``, needed
        there by (and only accepted with) ``success: state`` / ``reward: state``."""
        if self.state_success is None:
            if "goal_pos" in options:
                raise ValueError(
                    "reset option goal_pos needs env option success='state' or reward='state'"
                )
            return
        if "initial_frame" not in options:
            if "goal_pos" in options:
                raise ValueError(
                    "reset option goal_pos needs initial_frame (a bank entry brings its own)"
                )
            return
        value = options.get("goal_pos")
        if value is None or np.shape(value) != (3,) or not np.isfinite(value).all():
            raise ValueError(
                "success/reward 'state' with initial_frame needs reset option goal_pos: the goal's "
                f"xyz (3,) in m (MetaWorld's _target_pos), got {value!r}"
            )

    @torch.inference_mode()
    def reset_env(
        self, i: int, rng: np.random.Generator | None = None, options: dict | None = None
    ) -> None:
        """Start env ``i`` (options as in :meth:`check_reset`) drawing the bank entry and the
        noise generator's seed from ``rng`` (default: the env's own :attr:`rngs` entry)."""
        options = self.check_reset(options)
        rng = self.rngs[i] if rng is None else rng
        task = options.get("task", self.config.task)
        if "initial_frame" in options:
            init, goal = options["initial_frame"], options.get("goal_frame")
            robot = options.get("initial_state"), options.get("initial_keypoints"), None, None
            goal_pos = options.get("goal_pos")
            state0 = options.get("initial_state")
        else:
            idx = self.bank.indices(task)
            j = int(options.get("bank_index", idx[rng.integers(len(idx))]))
            init, goal = self.bank.initial[j], self.bank.goal[j]
            task = task or str(self.bank.task[j])
            robot = self.bank.robot(j) if self.robot else None
            goal_pos = self.bank.goal_pos[j] if self.state_success is not None else None
            state0 = self.bank.state[j] if self.bank.state is not None else None
        if self.prompter is not None:
            self.prompter.reset(i, *robot)
        elif self.robot is not None:
            self.robot.reset(i, *robot)
        self.generators[i].manual_seed(int(rng.integers(2**63 - 1)))
        frames = torch.from_numpy(np.stack([init] + ([goal] if goal is not None else [])))
        z = self.world.encode(frames[None])[0]  # (1|2, C, h, w)
        self.context[i] = z[0].expand(self.n_ctx, *z.shape[1:])
        self.history[i] = 0
        self.frames[i] = init
        self.goal[i] = z[1] if goal is not None else float("nan")
        self.goal_pos[i] = (
            torch.as_tensor(np.asarray(goal_pos, np.float32))
            if goal_pos is not None
            else float("nan")
        )
        self.predicted_state[i] = np.nan
        self.initial_state[i] = self._initial_state(state0, init)
        self.task_id[i] = self.task_names.index(task) if task in self.task_names else 0
        self.steps[i], self.displacement[i], self.any_success[i] = 0, 0.0, False
        self.started[i] = True

    def _initial_state(self, state, frame: np.ndarray) -> torch.Tensor:
        """The episode's first robot state (7,) m for ``reward: state`` (push and pick-place
        score progress from it): the bank's or the user's, else the state probe's reading
        of the first frame; NaN when neither exists (or the reward does not need it)."""
        if self.config.reward != "state":
            return torch.full((7,), float("nan"))
        if state is not None:
            return torch.as_tensor(np.asarray(state, np.float32))
        probe = getattr(self.state_success, "probe", None)
        if probe is None:
            return torch.full((7,), float("nan"))
        return probe(torch.from_numpy(np.asarray(frame))[None])[0].float()

    def reset_envs(self, seeds: list[int | None], options: list[dict | None]) -> np.ndarray:
        """Reset every env: env i's generator is reseeded with ``seeds[i]`` unless it is None
        (then it continues), and it starts from ``options[i]``. All options are validated
        first, so a rejected call changes nothing. Returns the observations."""
        checked = [self.check_reset(o) for o in options]
        for i, (seed, opts) in enumerate(zip(seeds, checked, strict=True)):
            if seed is not None:
                self.rngs[i] = seeding.np_random(seed)[0]
            self.reset_env(i, self.rngs[i], opts)
        return self.observations()

    def _check_frame(self, frame, name: str) -> None:
        f = np.asarray(frame)
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[-1] != 3:
            raise ValueError(f"{name} must be a uint8 (H, W, 3) image, got {f.dtype} {f.shape}")
        if f.shape != self.frame_shape:
            raise ValueError(f"{name} has shape {f.shape}, the model expects {self.frame_shape}")

    def task_name(self, i: int) -> str:
        return self.task_names[self.task_id[i]] if self.task_names else ""

    def set_sampling(self, overrides: dict) -> None:
        """Change the sampler between steps: ``overrides`` (as the ``sampling`` env option,
        e.g. ``{"num_steps": 4, "guidance": {"mode": "action_scaled", "lam": 2.0}}``) merge
        key by key into the current option and apply from the next :meth:`step`. Checked
        as at make time (:func:`~freeaction_gym.envs.validation.check_sampling` and against
        the model); a rejected change raises ``ValueError`` and leaves the sampler as it was."""
        from dataclasses import replace

        from freeaction_gym.envs.config import _merge
        from freeaction_gym.envs.validation import _model_sampling, check_sampling

        merged = check_sampling(_merge(self.config.sampling, overrides))
        trial = replace(self.config, sampling=merged)  # re-validates the config copy
        self.sampling = _model_sampling(trial, self.world)
        self.config.sampling = merged

    # -- step ----------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> Transition:
        """Advance every active env by one chunk: actions float32 (N, K, A) in [-1, 1]
        (validated); ``active`` bool (N,) (default all) - inactive envs keep their state,
        their noise generators untouched."""
        if not self.started.all():
            raise RuntimeError("call reset() before step()")
        active = np.ones(self.n, bool) if active is None else np.asarray(active, bool)
        t0 = time.perf_counter()
        a = self.offset + self.scale * torch.from_numpy(np.asarray(actions, np.float32))
        full = torch.cat([self.history, a], dim=1)  # (N, n-1+K, A)
        norm = self.world.action_norm(a, self.sampling.norm)  # (N,)
        tau = self.sampling.truncation.tau(norm)  # (N,)
        prompts = None  # (N, n + K, H, W, 3) uint8: the robot drawn from the actions
        if self.prompter is not None:
            prompts = torch.from_numpy(self.prompter.step(a, active))
        elif self.robot is not None:
            self.robot.step(a, active)
        latents, info = self.world.predict(
            self.context,
            full,
            self.sampling,
            noise=self._noise(tau, active),
            action_norm=norm,
            prompts=prompts,
        )  # (N, K, C, h, w)
        t1 = time.perf_counter()
        frames = self.world.decode(latents).numpy()  # (N, K, H, W, 3)
        t2 = time.perf_counter()
        reward, success, states = self._reward(frames, latents, a)
        if states is not None:
            self.predicted_state[active] = states[active]
        keep = torch.from_numpy(active)
        self.context[keep] = torch.cat([self.context, latents], dim=1)[keep, -self.n_ctx :]
        if self.n_ctx > 1:
            self.history[keep] = full[keep, -(self.n_ctx - 1) :]
        stack = np.concatenate([self.frames, frames], axis=1)[:, -self.config.frame_stack :]
        self.frames[active] = stack[active]
        self.steps[active] += 1
        self.displacement[active] += np.asarray(actions, np.float64)[active].sum(axis=1)
        halt = np.zeros(self.n, bool)
        if self.config.support is not None:
            sup = self.config.support
            d = self.displacement
            halt = ((d < sup["low"]) | (d > sup["high"])).any(axis=1) & active
            reward[halt] -= sup["penalty"]
        success &= active
        self.any_success |= success
        terminated = (success & self.config.terminate_on_success) | halt
        truncated = active & (self.steps >= self.config.max_episode_steps) & ~terminated
        self.timing = {  # per env step of the whole batch, milliseconds
            "step_time_ms": (time.perf_counter() - t0) * 1000,
            "model_time_ms": (t1 - t0) * 1000,
            "decode_time_ms": (t2 - t1) * 1000,
        }
        out = {
            "action_norm": norm.numpy(),
            "tau": np.where(active, tau.numpy(), np.nan).astype(np.float32),
            "guidance_weight": info["guidance_weight"].numpy(),
            "success": success,
            "is_success": self.any_success.copy(),
            "out_of_support": halt,
        }
        if self.config.timing_in_info:
            out.update({k: np.full(self.n, v, np.float32) for k, v in self.timing.items()})
        if self.robot is not None:
            out["robot_state"] = self.robot.state  # (N, 7) m: the integrated state
            out["object_pos"] = out["robot_state"][:, OBJECT].copy()  # (N, 3) m
        if self.state_success is not None:
            out["predicted_state"] = self.predicted_state.copy()  # (N, 7)
        reward = np.where(active, reward, 0.0).astype(np.float32)
        return Transition(self.observations(), reward, terminated, truncated, out, frames)

    def _noise(self, tau: torch.Tensor, active: np.ndarray) -> torch.Tensor:
        """Initial noise (N, K, C, h, w): env i's from its own generator at ``tau[i]``;
        zeros (no draw) for inactive envs."""
        shape = (1, self.config.action_chunk, *self.context.shape[2:])
        return torch.cat(
            [
                truncated_initial_noise(shape, tau[i : i + 1], self.generators[i])
                if active[i]
                else torch.zeros(shape)
                for i in range(self.n)
            ]
        )

    def _reward(self, frames: np.ndarray, latents: torch.Tensor, actions: torch.Tensor):
        """Reward summed and success or-ed over the K predicted frames (``actions`` (N, K, A)
        in model units: the gripper effort of ``reward: state``): float32, bool (N,),
        and None or, with ``success``/``reward: state`` (whose rule on the state after each
        frame replaces the reward function's success), the last predicted states float32
        (N, 7): the probe's reading of the frame, or (``state_source: proprio``) the
        integrated state."""
        reward, success, states = np.zeros(self.n, np.float32), np.zeros(self.n, bool), None
        task = torch.from_numpy(self.task_id)
        for k in range(frames.shape[1]):
            frame = torch.from_numpy(frames[:, k])  # (N, H, W, 3)
            r, s = self.reward_fn(frame, latents[:, k], self.goal, task)
            if self.state_success is not None:
                given = None
                if self.config.state_source == "proprio":
                    given = torch.from_numpy(self.robot.chunk_states[:, k])
                s, st = self.state_success(frame, self.goal_pos, task, given)
                if self.config.reward == "state":
                    per_sim_step = state_reward(
                        st,
                        self.goal_pos,
                        self.task_names,
                        task,
                        self.initial_state,
                        actions[:, k, -1],
                    )
                    r = per_sim_step.numpy() * self.config.sim_steps_per_action
                states = st.numpy().astype(np.float32)  # (N, 7)
            reward += np.asarray(r, np.float32)
            success |= np.asarray(s, bool)
        return reward, success, states

    # -- observations --------------------------------------------------------------------
    def observation(self, i: int):
        """Env ``i``'s observation: the latent, the (stacked) frames uint8 (H, W, 3S), or
        (``proprio_obs``) a dict of those frames (``image``) and ``proprio`` float32 (4,)."""
        if self.config.observation == "latent":
            return self.context[i, -1].numpy().astype(np.float32)
        image = self._image(i)
        if self.config.proprio_obs:
            return {"image": image, "proprio": self.robot.state[i, :PROPRIO_DIM].copy()}
        return image

    def observations(self):
        """Every env's :meth:`observation`, batched (for ``proprio_obs`` a dict of batched
        ``image`` and ``proprio``)."""
        if self.config.observation == "latent" or not self.config.proprio_obs:
            return np.stack([self.observation(i) for i in range(self.n)])
        image = np.stack([self._image(i) for i in range(self.n)])
        return {"image": image, "proprio": self.robot.state[:, :PROPRIO_DIM].copy()}

    def _image(self, i: int) -> np.ndarray:
        f = self.frames[i]  # (S, H, W, 3)
        return np.concatenate(list(f), axis=-1) if f.shape[0] > 1 else f[0].copy()
