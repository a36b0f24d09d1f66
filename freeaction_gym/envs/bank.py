"""Reset bank: real initial frames (and goal frames) an imagined episode starts from.

Stored as ``.npz``: ``initial`` uint8 (N, H, W, 3), ``goal`` uint8 (N, H, W, 3) (the last
frame of the same held-out episode, or a frame just after its first success), ``task``
str (N,), ``episode`` str (N,) (source file), and, when known, ``layout`` / ``layout_seed``
int (N,): the scene is layout ``layout`` of ``metaworld.MT1(task, seed=layout_seed)``, so the
real simulator can start from the same scene (-1 when unknown, e.g. IRASim datasets), and,
when the dataset stores them, ``state`` float32 (N, 7) and ``keypoints`` float32 (N, K, 3):
the robot's state and arm keypoints at the initial frame (``metaworld_gen.STATE_NAMES`` /
``KEYPOINT_BODIES``), which visual-action-prompt envs integrate their proprioceptive model
from (``conditioning: vap``), and ``goal_pos`` float32 (N, 3): each scene's goal position
(m, MetaWorld's ``_target_pos``), which ``success: state`` measures the predicted object or
hand against (:meth:`ResetBank.with_goal_pos` computes it from the layouts when a bank lacks
it), and with the robot ``prev_state`` (N, 7) / ``prev_keypoints`` (N, K, 3) one frame
earlier and ``mocap`` (N, 3), MetaWorld's mocap target (m): how the arm moves at the frame,
for proprio trackers started mid-episode (``ResetBank.robot``). Banks built before they
were stored load without them. Every float array must be finite: a bank holding NaN/inf is
refused when it is made or loaded, naming the file and the array.
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

FLOAT_FIELDS = (
    ("state", 2),
    ("keypoints", 3),
    ("goal_pos", 2),
    ("prev_state", 2),
    ("prev_keypoints", 3),
    ("mocap", 2),
)
"""Optional float32 arrays of a bank and their dimensions."""


@dataclass(frozen=True)
class ResetBank:
    initial: np.ndarray  # (N, H, W, 3) uint8
    goal: np.ndarray  # (N, H, W, 3) uint8
    task: np.ndarray  # (N,) str
    episode: np.ndarray  # (N,) str
    layout: np.ndarray | None = None  # (N,) int, -1 = unknown (filled in __post_init__)
    layout_seed: np.ndarray | None = None  # (N,) int, -1 = unknown
    state: np.ndarray | None = None  # (N, 7) float32 robot state at the initial frame
    keypoints: np.ndarray | None = None  # (N, K, 3) float32 arm keypoints (m) there
    goal_pos: np.ndarray | None = None  # (N, 3) float32 goal position (m) of each scene
    prev_state: np.ndarray | None = None  # (N, 7) float32 robot state one frame earlier
    prev_keypoints: np.ndarray | None = None  # (N, K, 3) float32 keypoints one frame earlier
    mocap: np.ndarray | None = None  # (N, 3) float32 MetaWorld's mocap target (m) at the frame

    def __post_init__(self) -> None:
        n = len(self.initial)
        for name, ndim in FLOAT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, np.float32)
                if value.ndim != ndim or len(value) != n:
                    raise ValueError(f"reset bank {name} must have {ndim} dims and {n} rows")
                if name in ("goal_pos", "mocap") and value.shape[1] != 3:
                    raise ValueError(f"reset bank {name} must be (N, 3), got {value.shape}")
                bad = np.flatnonzero(~np.isfinite(value).reshape(n, -1).all(axis=1))
                if bad.size:  # e.g. a NaN state would make every proprio observation NaN
                    raise ValueError(
                        f"reset bank array {name!r} holds non-finite values (NaN/inf) in "
                        f"{bad.size} of {n} entries (first: {bad[:5].tolist()})"
                    )
                object.__setattr__(self, name, value)
        for name in ("layout", "layout_seed"):
            value = getattr(self, name)
            value = np.full(n, -1, np.int64) if value is None else np.asarray(value, np.int64)
            if value.shape != (n,):
                raise ValueError(f"reset bank {name} must have shape ({n},), got {value.shape}")
            object.__setattr__(self, name, value)  # frozen dataclass
        if self.initial.ndim != 4 or self.initial.shape[-1] != 3 or self.initial.dtype != np.uint8:
            raise ValueError(
                f"reset bank frames must be uint8 (N, H, W, 3), got {self.initial.shape}"
            )
        if self.goal.shape != self.initial.shape:
            raise ValueError("reset bank goal frames must match the initial frames' shape")
        if len(self.initial) == 0:
            raise ValueError("reset bank is empty")

    def __len__(self) -> int:
        return len(self.initial)

    @property
    def tasks(self) -> list[str]:
        return sorted(set(self.task.tolist()))

    @property
    def has_layouts(self) -> bool:
        """Every entry names its MetaWorld scene (``layout`` and ``layout_seed`` >= 0)."""
        return bool(np.all(self.layout >= 0) and np.all(self.layout_seed >= 0))

    @property
    def has_robot_state(self) -> bool:
        """Every entry stores its initial robot ``state`` and ``keypoints``."""
        return self.state is not None and self.keypoints is not None

    @property
    def has_motion(self) -> bool:
        """Every entry also stores how its robot moves there (``prev_state``,
        ``prev_keypoints``, ``mocap``), for starts mid-episode."""
        return self.has_robot_state and all(
            getattr(self, k) is not None for k in ("prev_state", "prev_keypoints", "mocap")
        )

    def robot(self, j: int) -> tuple:
        """Entry ``j``'s robot for a proprio tracker: ``(state, keypoints, previous, mocap)``
        (previous = (prev_state, prev_keypoints); both None without motion: at rest)."""
        if not self.has_motion:
            return self.state[j], self.keypoints[j], None, None
        return (
            self.state[j],
            self.keypoints[j],
            (self.prev_state[j], self.prev_keypoints[j]),
            self.mocap[j],
        )

    def with_goal_pos(self) -> ResetBank:
        """This bank with ``goal_pos``: as stored, or computed from the layouts through
        MetaWorld (the scenes the real env starts from:
        :func:`freeaction_gym.data.metaworld_env.goal_positions`; needs the ``metaworld``
        extra). ``ValueError`` when the bank has neither."""
        if self.goal_pos is not None:
            return self
        if not self.has_layouts:
            raise ValueError(
                "this reset bank stores no goal_pos and does not name MetaWorld layouts "
                "(layout/layout_seed), so goal positions are unknown; rebuild it from a "
                "MetaWorld dataset with `freeaction bank --data <root> --split test --out "
                "bank.npz`, or reset with options={'initial_frame': ..., 'goal_pos': [x, y, z]}"
            )
        from freeaction_gym.data.metaworld_env import goal_positions

        return replace(self, goal_pos=goal_positions(self.task, self.layout_seed, self.layout))

    def indices(self, task: str | None) -> np.ndarray:
        """Entries of ``task`` (all when None); error naming the known tasks otherwise."""
        if task is None:
            return np.arange(len(self))
        idx = np.flatnonzero(self.task == task)
        if idx.size == 0:
            raise ValueError(f"reset bank has no entry for task {task!r}; it has {self.tasks}")
        return idx

    def check_entry_task(self, j: int, task: str | None, source: str) -> None:
        """``ValueError`` unless entry ``j`` is a scene of ``task`` (None: any task);
        ``source`` names where ``task`` came from (e.g. ``"reset option task"``). A bank
        entry is one scene of one task: starting it under another task's label would make
        an env report (and score) the wrong task."""
        if task is None or str(self.task[j]) == task:
            return
        idx = np.flatnonzero(self.task == task).tolist()
        shown = f"{idx[:8]}{' ...' if len(idx) > 8 else ''}" if idx else "none"
        raise ValueError(
            f"reset option bank_index={j} is a {str(self.task[j])!r} scene, but the task is "
            f"{task!r} ({source}): pick a {task!r} entry (bank indices {shown}) or leave "
            "bank_index out to draw one"
        )

    @classmethod
    def load(cls, path: str | Path) -> ResetBank:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"reset bank not found: {path}. Build one from a dataset with "
                "`freeaction bank --data <root> --split test --out bank.npz` or pass "
                "options={'initial_frame': ...} to reset()."
            )
        try:
            if not zipfile.is_zipfile(path):  # np.load would blame "pickled data"
                raise ValueError("not an .npz (zip) archive")
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in ("initial", "goal", "task", "episode") if k not in z.files]
                if missing:
                    raise ValueError(f"lacks the array(s) {missing}")
                names = ("layout", "layout_seed") + tuple(k for k, _ in FLOAT_FIELDS)
                optional = {k: z[k] for k in names if k in z.files}
                arrays = [z["initial"], z["goal"], z["task"].astype(str), z["episode"].astype(str)]
            return cls(*arrays, **optional)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            what = "is broken" if "non-finite" in str(err) else "is not a readable reset-bank .npz"
            raise ValueError(
                f"reset bank {path} {what} ({err}); build one with "
                "`freeaction bank --data <root> --split test --out bank.npz`"
            ) from err

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        robot = {"state": self.state, "keypoints": self.keypoints} if self.has_robot_state else {}
        if self.goal_pos is not None:
            robot["goal_pos"] = self.goal_pos
        if self.has_motion:
            robot.update(
                prev_state=self.prev_state, prev_keypoints=self.prev_keypoints, mocap=self.mocap
            )
        np.savez_compressed(
            tmp,
            initial=self.initial,
            goal=self.goal,
            task=self.task.astype("U"),
            episode=self.episode.astype("U"),
            layout=self.layout,
            layout_seed=self.layout_seed,
            **robot,
        )
        tmp.replace(path)

    @classmethod
    def from_dataset(
        cls,
        root: str | Path,
        split: str = "test",
        tasks: list[str] | None = None,
        goal: str = "first_success",
        stride: int | None = None,
    ) -> ResetBank:
        """One entry per episode: frame 0 and a goal frame (``first_success``: the frame
        after the first successful action, else the last frame; ``last``: the last frame).
        ``goal_pos`` comes from the episodes when each stores it, else from the layouts
        through MetaWorld when it is installed (:meth:`with_goal_pos`).

        With ``stride`` k, every episode gives an entry at frames 0, k, 2k, ... before its
        last action (named ``{file}@{t}`` for t > 0), with the robot state there and the
        episode's goal: starts along visited trajectories, for short imagined rollouts
        branched from real states (MBPO-style). With the robot known, each entry also stores
        its motion (``prev_state``/``prev_keypoints`` one frame earlier - frame 0's own at
        t = 0 - and MetaWorld's mocap target there, from the episode's actions by
        :func:`~freeaction_gym.prompts.proprio.mocap_track`), so a proprio tracker started
        mid-episode continues the moving arm instead of one at rest."""
        if stride is not None and stride < 1:
            raise ValueError(
                f"reset bank stride must be >= 1 (or None: frame 0 only), got {stride}"
            )
        from freeaction_gym.data.episodes import list_episodes, load_episode

        init, goals, task, names, layout, layout_seed = [], [], [], [], [], []
        state, keypoints, goal_pos, prev_state, prev_keypoints, mocap = [], [], [], [], [], []
        for p in list_episodes(root, split, tasks):
            ep = load_episode(p, load_depth=False)
            k = len(ep.rgb) - 1
            if goal == "first_success" and np.any(ep.success):
                k = int(np.argmax(ep.success)) + 1
            track = None
            if ep.state is not None and ep.keypoints is not None:
                track = _mocap_track(ep.state, ep.keypoints, ep.action)  # (T + 1, 3)
            for t in range(0, max(len(ep.rgb) - 1, 1), stride) if stride else (0,):
                init.append(ep.rgb[t])
                goals.append(ep.rgb[k])
                task.append(str(ep.task))
                names.append(p.name if t == 0 else f"{p.name}@{t}")
                layout.append(ep.layout)
                layout_seed.append(int(ep.info.get("layout_seed", -1)))
                if track is not None:
                    state.append(ep.state[t])
                    keypoints.append(ep.keypoints[t])
                    prev_state.append(ep.state[max(t - 1, 0)])
                    prev_keypoints.append(ep.keypoints[max(t - 1, 0)])
                    mocap.append(track[t])
                if ep.goal_pos is not None:
                    goal_pos.append(ep.goal_pos)
        robot = len(state) == len(init) and bool(init)  # every episode knows its robot
        bank = cls(
            np.stack(init),
            np.stack(goals),
            np.array(task),
            np.array(names),
            np.array(layout),
            np.array(layout_seed),
            np.stack(state) if robot else None,
            np.stack(keypoints) if robot else None,
            np.stack(goal_pos) if len(goal_pos) == len(init) else None,
            np.stack(prev_state) if robot else None,
            np.stack(prev_keypoints) if robot else None,
            np.stack(mocap) if robot else None,
        )
        if bank.goal_pos is None and bank.has_layouts:
            try:
                bank = bank.with_goal_pos()
            except (ImportError, ValueError):  # no metaworld, or not its tasks: envs try later
                pass
        return bank

    @classmethod
    def from_irasim(
        cls, root: str | Path, split: str = "test", dataset: str = "rt1", limit: int | None = None
    ) -> ResetBank:
        """First and last frame of each episode of an IRASim-layout dataset."""
        from freeaction_gym.data.irasim_layout import IRASimClipDataset, read_video_frames

        ds = IRASimClipDataset(root, split, dataset=dataset, clip_len=2)
        init, goals, names = [], [], []
        for ep in ds.episodes[:limit]:
            f = read_video_frames(ep.video, [0, ep.num_frames - 1], ep.annotation)
            init.append(f[0])
            goals.append(f[1])
            names.append(ep.episode_id)
        return cls(
            np.stack(init), np.stack(goals), np.array([dataset] * len(init)), np.array(names)
        )


@functools.cache
def _mocap_rule(num_keypoints: int):
    """A ProprioModel used only for MetaWorld's mocap rule and constants (built once)."""
    from freeaction_gym.prompts.proprio import ProprioConfig, ProprioModel

    return ProprioModel(ProprioConfig(num_keypoints=num_keypoints, hidden=1, depth=1))


def _mocap_track(state: np.ndarray, keypoints: np.ndarray, action: np.ndarray) -> np.ndarray:
    """float32 (T + 1, 3): MetaWorld's mocap target at each frame of an episode that starts
    at rest (MetaWorld's constants: :class:`~freeaction_gym.prompts.proprio.ProprioConfig`)."""
    import torch

    from freeaction_gym.prompts.proprio import mocap_track, pose_of

    rule = _mocap_rule(int(keypoints.shape[1]))
    with torch.inference_mode():
        pose = pose_of(np.array(state[:1]), np.array(keypoints[:1]))  # writable copies
        track = mocap_track(rule, pose, torch.tensor(action[:, :4], dtype=torch.float32))
    return track.numpy().astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """``freeaction bank``: build a reset bank .npz from a dataset split."""
    import argparse

    p = argparse.ArgumentParser(prog="freeaction bank", description=main.__doc__)
    p.add_argument("--data", required=True, help="dataset root (MetaWorld format or IRASim layout)")
    p.add_argument("--split", default="test")
    p.add_argument("--format", default="metaworld", choices=["metaworld", "irasim"])
    p.add_argument("--irasim-dataset", default="rt1", choices=["rt1", "bridge", "languagetable"])
    p.add_argument("--limit", type=int, default=None, help="at most this many episodes (irasim)")
    p.add_argument("--out", required=True, help="output .npz")
    a = p.parse_args(argv)
    if a.format == "irasim":
        bank = ResetBank.from_irasim(a.data, a.split, a.irasim_dataset, a.limit)
    else:
        bank = ResetBank.from_dataset(a.data, a.split)
    bank.save(a.out)
    print(f"reset bank of {len(bank)} entries written to {a.out}")
    return 0
