"""How far does the proprioceptive dynamics model drift over 40 actions? (issue 15, item 2)

Every episode of a split is rolled out open loop from its first frame (the reset state an
imagined episode starts from) with its real actions; errors at steps 1/5/10/20/40 against
the recorded states and keypoints, mean and 95% t-interval over episodes. Rows: each model
given, and two baselines that need no training - "hold" (nothing moves: a zero-initialised
ProprioModel) and "mocap rule" (the hand is MetaWorld's mocap target plus the rest offset,
everything else held). Also the prompt a model's keypoints draw: IoU of its gripper region
with the one drawn from the true keypoints.

    python experiments/proprio_error.py --models runs/proprio runs/proprio_no_mocap \\
        runs/proprio_markov --data data/metaworld_v2 data/metaworld_fresh

Writes ``--out``/proprio_error.json and ``--out``/proprio_rollout.png (true vs integrated
prompts of one episode per task of the first dataset, first model).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from freeaction_gym.data.metaworld_gen import config_from_meta  # noqa: E402
from freeaction_gym.evaluation.paired_stats import mean_ci  # noqa: E402
from freeaction_gym.prompts.alignment import iou  # noqa: E402
from freeaction_gym.prompts.camera import PinholeCamera  # noqa: E402
from freeaction_gym.prompts.proprio import (  # noqa: E402
    ERROR_STEPS,
    HAND,
    ProprioModel,
    integrate,
    mocap_track,
    pose_errors,
    rollout,
    split_pose,
)
from freeaction_gym.prompts.skeleton import gripper_region, render_prompts  # noqa: E402
from freeaction_gym.training.train_proprio import load_pose_episodes  # noqa: E402
from freeaction_gym.utils.args import parse_args  # noqa: E402


@dataclass
class Args:
    """Open-loop error of proprioceptive dynamics models (and baselines) over 40 actions."""

    models: list[str] = field(default_factory=lambda: ["runs/proprio"])
    """Model directories (ProprioModel.save_pretrained)."""
    data: list[str] = field(default_factory=lambda: ["data/metaworld_v2"])
    """Dataset roots to score (each one's ``split``)."""
    split: str = "test"
    out: str = "docs/figures/prompts"
    """Output directory (proprio_error.json, proprio_rollout.png)."""
    mid_starts: list[int] = field(default_factory=list)
    """Also start each model at these frames mid-episode - from an arm at rest, and with the
    arm's motion there (the previous frame's pose and the exact mocap target: what a strided
    reset bank stores) - and score the hand over the next ``MID_HORIZON`` actions."""


MID_HORIZON = 10
MID_STEPS = (1, 5, 10)


def mocap_rule(model: ProprioModel, states: np.ndarray, keypoints: np.ndarray, actions: np.ndarray):
    """Baseline: hand = mocap target + rest offset, everything else held at frame 0."""
    s = np.repeat(states[:, :1], actions.shape[1] + 1, axis=1).copy()  # (E, T + 1, 7)
    k = np.repeat(keypoints[:, :1], actions.shape[1] + 1, axis=1)
    for e in range(len(states)):
        pose = torch.cat([torch.as_tensor(states[e]), torch.as_tensor(keypoints[e]).flatten(1)], 1)
        track = mocap_track(model, pose, torch.as_tensor(actions[e]))  # (T + 1, 3)
        s[e, :, HAND] = (track + model.rest_offset).numpy()
    return s, k


def score(
    name: str,
    pred: tuple[np.ndarray, np.ndarray],
    true: tuple[np.ndarray, np.ndarray],
    camera: PinholeCamera,
) -> dict:
    errs = pose_errors(*pred, *true, camera=camera)
    steps = [k for k in ERROR_STEPS if k < true[0].shape[1]]
    region_p = gripper_region(pred[1][:, steps].reshape(-1, *pred[1].shape[2:]), camera)
    region_t = gripper_region(true[1][:, steps].reshape(-1, *true[1].shape[2:]), camera)
    errs["prompt_gripper_iou"] = iou(region_p, region_t).reshape(len(pred[0]), len(steps))
    row = {}
    for key, e in errs.items():
        cols = e if key == "prompt_gripper_iou" else e[:, steps]
        row[key] = {
            str(k): dict(zip(("mean", "lo", "hi"), mean_ci(cols[:, i]), strict=True))
            for i, k in enumerate(steps)
        }
    print(
        f"{name:>22}: hand cm "
        + "  ".join(f"{row['hand_cm'][str(k)]['mean']:.2f}" for k in steps)
        + " | kp px "
        + "  ".join(f"{row['keypoints_px'][str(k)]['mean']:.2f}" for k in steps)
    )
    return row


@torch.inference_mode()
def mid_start_errors(
    model: ProprioModel, pose: np.ndarray, actions: np.ndarray, start: int
) -> dict[str, dict]:
    """Hand error (cm, mean and 95% t-interval over episodes) ``MID_STEPS`` actions after
    frame ``start`` of every episode (poses (E, T + 1, P), actions (E, T, 4)), the model
    started there at rest and with the arm's motion."""
    pose_t, act_t = torch.as_tensor(pose), torch.as_tensor(actions)
    state, kp = split_pose(pose_t[:, start])
    inits = {"rest": model.initial_state(state, kp)}
    if start > 0:
        track = torch.stack([mocap_track(model, p, a) for p, a in zip(pose_t, act_t, strict=True)])
        previous = split_pose(pose_t[:, start - 1])
        inits["motion"] = model.initial_state(state, kp, previous, track[:, start])
    window = act_t[:, start : start + MID_HORIZON]
    true = pose_t[:, start : start + MID_HORIZON + 1, HAND]
    out = {}
    for how, s0 in inits.items():
        hand = rollout(model, s0, window)[:, :, HAND]  # (E, H + 1, 3)
        cm = (hand - true).norm(dim=-1).numpy() * 100
        out[how] = {
            str(k): dict(zip(("mean", "lo", "hi"), mean_ci(cm[:, k]), strict=True))
            for k in MID_STEPS
        }
    return out


def main(args: Args) -> dict:
    torch.set_num_threads(1)
    models = {m: ProprioModel.from_pretrained(m) for m in args.models}
    first = next(iter(models.values()))
    results: dict = {"args": asdict(args), "steps": list(ERROR_STEPS), "data": {}}
    figure = None
    for root in args.data:
        meta = config_from_meta(root)
        camera = PinholeCamera.from_preset(meta.camera, meta.resolution)
        data = load_pose_episodes(root, args.split)
        t = min(len(a) for a in data.actions)
        pose = torch.stack([p[: t + 1] for p in data.poses]).numpy()  # (E, T + 1, P)
        states, keypoints = split_pose(pose)
        actions = torch.stack([a[:t] for a in data.actions]).numpy()  # (E, T, 4)
        true = (states, keypoints)
        print(f"{root} {args.split}: {len(states)} episodes of {t} actions")
        rows = {
            "hold": score(
                "hold",
                (np.repeat(states[:, :1], t + 1, 1), np.repeat(keypoints[:, :1], t + 1, 1)),
                true,
                camera,
            ),
            "mocap rule": score(
                "mocap rule", mocap_rule(first, states, keypoints, actions), true, camera
            ),
        }
        for name, model in models.items():
            pred = integrate(model, states[:, 0], keypoints[:, 0], actions)
            rows[name] = score(name, pred, true, camera)
            if figure is None:
                tasks = [p.stem.rsplit("_", 1)[0] for p in data.paths]
                picks = [tasks.index(task) for task in dict.fromkeys(tasks)]
                figure = rollout_figure(pred[1][picks], keypoints[picks], camera)
        mids = {}
        for name, model in models.items():
            for start in args.mid_starts:
                if start + MID_HORIZON > t:
                    raise ValueError(f"--mid-starts {start}: episodes have only {t} actions")
                e = mid_start_errors(model, pose, actions, start)
                mids.setdefault(name, {})[str(start)] = e
                print(
                    f"{name} from frame {start}: hand cm after {list(MID_STEPS)} actions - "
                    + " | ".join(
                        f"{how} " + " ".join(f"{v[str(k)]['mean']:.2f}" for k in MID_STEPS)
                        for how, v in e.items()
                    )
                )
        if mids:
            rows["mid_starts"] = mids
        results["data"][root] = rows
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if figure is not None:
        import imageio.v2 as iio

        iio.imwrite(out / "proprio_rollout.png", figure)
    (out / "proprio_error.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def rollout_figure(
    pred_kp: np.ndarray, true_kp: np.ndarray, camera: PinholeCamera, scale: int = 3
) -> np.ndarray:
    """Rows: per episode, prompts from true keypoints then from integrated ones, at steps
    0/10/20/40 (columns), the integrated prompt blended over the true one in the 2nd row."""
    steps = [k for k in (0, 10, 20, 40) if k < true_kp.shape[1]]
    rows = []
    for e in range(len(pred_kp)):
        true = render_prompts(true_kp[e, steps], camera)
        pred = render_prompts(pred_kp[e, steps], camera)
        both = np.maximum(pred, (true * 0.35).astype(np.uint8))
        for row in (true, both):
            tiles = [np.pad(f, ((1, 1), (1, 1), (0, 0)), constant_values=255) for f in row]
            rows.append(np.concatenate(tiles, 1))
    grid = np.concatenate(rows, 0)
    return grid.repeat(scale, 0).repeat(scale, 1)


if __name__ == "__main__":
    main(parse_args(Args))
