"""Fast imagination vs the naive path, in one process (issue 8).

Every row imagines the same held-out clips (N envs x T frames, one action per frame, each env
starting from its clip's true first frame) and reports speed AND fidelity of exactly those
frames against the ground truth. Rows add one optimisation at a time, from IRASim's naive
path to our default:

  naive         one env at a time, PNDM 50 steps (59 denoiser evaluations), the model's
                full window predicted per env step (actions padded by repeating the last,
                only the first frame kept), FreeAction CFG as two separate forward calls
  ...           + only the needed frame per call, + CFG batched (2B), + DDIM 10, + DDIM 2,
                + 8 envs in one call, + CFG off (the presets' default: CFG cost fidelity on
                our model), + 4 actions per env step (chunk 4)

then thread settings, torch.compile, inference_mode vs no_grad, env-count scaling, the cost
of CFG, the full gym vector env (reward head, bookkeeping) and a torch profile of the default.

    python experiments/bench_imagination.py --out outputs/bench_imagination.md
    python experiments/bench_imagination.py --quick
    python experiments/bench_imagination.py --compare old=bundled:metaworld_default \\
        new=checkpoints/metaworld_v2_hg --data data/metaworld_v2 --out outputs/bench_compare.md

``--compare NAME=MODEL ...`` times only the default row (8 envs) and the full gym vector env
for each model, alternating the models within every repetition so load drifts hit all alike.

Prompt models (``WorldModel.takes_prompts``, e.g. ``bundled:metaworld_vap``) pay, every env
step, for the prompts the ``vap`` env makes: the env's own
:class:`~freeaction_gym.envs.prompting.PromptTracker` integrates the proprio model
(``<model dir>/proprio``) under the step's actions from each clip's first robot state (the
data must store state and keypoints) and draws the arm's skeleton, inside every timed row;
the gym vector env column runs the ``FreeActionMetaWorldVAP-v0`` preset.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when OpenMP starts

import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from freeaction_gym.assets import resolve_model_path  # noqa: E402
from freeaction_gym.envs.prompting import PromptTracker  # noqa: E402
from freeaction_gym.evaluation import latent_l2, psnr_video  # noqa: E402
from freeaction_gym.evaluation.prompt_source import clip_camera, robot_start  # noqa: E402
from freeaction_gym.evaluation.rollout import Clips, collect_clips, encode_frames, max_chunk  # noqa: E402, E501
from freeaction_gym.prompts.camera import PinholeCamera  # noqa: E402
from freeaction_gym.prompts.proprio import ProprioModel  # noqa: E402
from freeaction_gym.utils.args import parse_args  # noqa: E402
from freeaction_gym.utils.threads import configure_threads  # noqa: E402
from freeaction_gym.world_model import SamplingConfig, WorldModel, load_world_model  # noqa: E402


@dataclass
class Args:
    """Benchmark imagined frames: naive IRASim-style path vs the optimised default."""

    model: str = "bundled:metaworld_default"
    """World model directory or bundled:<name>."""
    data: str = "data/metaworld_default"
    """Episode dataset root with held-out clips."""
    split: str = "test"
    """Split the clips come from."""
    num_envs: int = 8
    """Envs (clips) imagined side by side."""
    frames: int = 8
    """Imagined frames per env (one action each)."""
    repeats: int = 2
    """Timed repetitions of the fast rows (best of); the naive rows run once."""
    env_steps: int = 20
    """Timed steps of the full gym vector env (0 skips it; needs a model with reset bank)."""
    compile: bool = True
    """Also time torch.compile of the denoiser (skipped if it fails)."""
    out: str | None = None
    """Write the markdown report here (and .json beside it)."""
    quick: bool = False
    """2 envs x 2 frames, PNDM 10 instead of 50 (seconds; for the smoke test)."""
    compare: list[str] | None = None
    """NAME=MODEL pairs: time the default row and the gym vector env of each, side by side."""


@dataclass(frozen=True)
class Row:
    name: str
    scheduler: str = "ddim"
    steps: int = 2
    cfg: bool = False
    batch_cfg: bool = True
    batched_envs: bool = True
    full_window: bool = False
    chunk: int = 1
    threads: int | None = None
    compiled: bool = False
    grad_mode: str = "inference"  # inference | no_grad


@dataclass(frozen=True)
class RobotStart:
    """Where the prompt work of a prompt model starts: each clip's robot at its first frame."""

    proprio: ProprioModel
    camera: PinholeCamera
    """The dataset camera at the model's frame size."""
    state: np.ndarray
    """float32 (N, 7) robot state of each clip's first frame."""
    keypoints: np.ndarray
    """float32 (N, K, 3) its arm keypoints, world m."""

    def head(self, n: int) -> RobotStart:
        return replace(self, state=self.state[:n], keypoints=self.keypoints[:n])

    def trackers(self, groups: list[list[int]], history: torch.Tensor) -> list[PromptTracker]:
        """One env :class:`PromptTracker` per env group, reset at its clips' first frames and
        advanced through ``history`` (N, n - 1, A), the actions between the n context frames,
        so its context prompts are those of the n real context frames."""
        out = []
        for idx in groups:
            tracker = PromptTracker(self.proprio, self.camera, len(idx), history.shape[1] + 1)
            for j, i in enumerate(idx):
                tracker.reset(j, self.state[i], self.keypoints[i])
            if history.shape[1]:
                tracker.step(history[idx], np.ones(len(idx), bool))
            out.append(tracker)
        return out


def robot_start_for(world: WorldModel, model: str, args: Args, clips: Clips) -> RobotStart | None:
    """The :class:`RobotStart` of ``clips`` if ``world`` takes prompts (its proprio model is
    ``<model dir>/proprio``), else None."""
    if not world.takes_prompts:
        return None
    path = resolve_model_path(model) / "proprio"
    if not path.is_dir():
        raise SystemExit(f"prompt model {model} has no proprio model at {path}")
    proprio = ProprioModel.from_pretrained(path)
    try:
        state, keypoints = robot_start(args.data, args.split, clips, proprio.config.num_keypoints)
    except ValueError as err:
        raise SystemExit(f"prompt model {model}: {err}") from err
    return RobotStart(proprio, clip_camera(args.data, clips), state, keypoints)


class PeakRSS:
    """Peak resident memory (MiB) above the level at entry, sampled every 2 ms."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())
        self.mib = (self.peak - self.base) / 2**20


def sampling_for(world: WorldModel, row: Row, k: int) -> SamplingConfig:
    mode = "action_scaled" if row.cfg else "none"
    return world.default_sampling(
        k, scheduler=row.scheduler, num_steps=row.steps, guidance={"mode": mode},
        batch_cfg=row.batch_cfg,
    )  # fmt: skip


def env_groups(row: Row, n_env: int) -> list[list[int]]:
    """The envs imagined together: all at once, or one at a time."""
    return [list(range(n_env))] if row.batched_envs else [[i] for i in range(n_env)]


def imagine(
    world: WorldModel,
    row: Row,
    ctx: torch.Tensor,
    actions: torch.Tensor,
    seed: int,
    trackers: list[PromptTracker] | None = None,
):
    """Latents (N, n + T, C, h, w) of every env's imagined frames under ``row``: ctx (N, n,
    C, h, w) the n = ``world.num_context`` real context latents, actions (N, n - 1 + T, A)
    every transition after the first context frame (``WorldModel.predict``'s convention).
    Prompt models need ``trackers``, one per :func:`env_groups` group
    (:meth:`RobotStart.trackers`), which make each step's prompts as the ``vap`` env does."""
    n = world.num_context
    n_env, t_len = actions.shape[0], actions.shape[1] - (n - 1)
    window = max_chunk(world)
    groups = env_groups(row, n_env)
    out = torch.empty(n_env, n + t_len, *ctx.shape[2:])
    grad = torch.inference_mode() if row.grad_mode == "inference" else torch.no_grad()
    with grad:
        for gi, idx in enumerate(groups):
            g = torch.Generator().manual_seed(seed + idx[0])
            cur = ctx[idx, :n]
            out[idx, :n] = cur
            for s in range(0, t_len, row.chunk):
                acts = actions[idx, s : s + n - 1 + row.chunk]
                k = acts.shape[1] - (n - 1)
                prompts = None  # (B, n + k, H, W, 3) uint8: the env's per-step prompt work
                if trackers is not None:
                    active = np.ones(len(idx), bool)
                    prompts = torch.from_numpy(trackers[gi].step(acts[:, n - 1 :], active))
                if row.full_window and k < window:  # IRASim pads to its clip length
                    acts = torch.cat([acts, acts[:, -1:].expand(-1, window - k, -1)], 1)
                    if prompts is not None:  # the padded frames keep the last pose
                        pad = prompts[:, -1:].expand(-1, window - k, -1, -1, -1)
                        prompts = torch.cat([prompts, pad], 1)
                cfg = sampling_for(world, row, acts.shape[1] - n + 1)
                z, _ = world.predict(cur, acts, cfg, g, prompts=prompts)
                z = z[:, :k]
                out[idx, n + s : n + s + k] = z
                cur = torch.cat([cur, z], 1)[:, -n:]
    return out


def time_row(world, row, ctx, actions, truth, true_z, repeats, start=None) -> dict:
    """Best of ``repeats`` timings of :func:`imagine`; ``start``: the :class:`RobotStart` of a
    prompt model (its trackers are made before the clock starts, their steps are timed)."""
    if row.threads is not None:
        prev = torch.get_num_threads()
        torch.set_num_threads(row.threads)
    try:
        n = world.num_context
        history = actions[:, : n - 1]
        warm = replace(row, scheduler="ddim", steps=2)
        trackers = start.trackers([[0]], history) if start else None
        imagine(world, warm, ctx[:1], actions[:1, :n], 0, trackers)
        best, mem = float("inf"), 0.0
        for _ in range(repeats):
            trackers = start.trackers(env_groups(row, len(ctx)), history) if start else None
            with PeakRSS() as peak:
                t0 = time.perf_counter()
                z = imagine(world, row, ctx, actions, 0, trackers)
                dt = time.perf_counter() - t0
            best, mem = min(best, dt), max(mem, peak.mib)
    finally:
        if row.threads is not None:
            torch.set_num_threads(prev)
    n = world.num_context
    frames = actions.shape[0] * (actions.shape[1] - (n - 1))
    video = world.decode(z).numpy()
    return {
        "row": row.name,
        "config": asdict(row),
        "prompt_work": start is not None,
        "seconds": best,
        "frames_per_s": frames / best,
        "env_steps_per_s": frames / row.chunk / best,
        "ms_per_frame": 1000 * best / frames,
        "peak_mib": mem,
        "latent_l2": float(latent_l2(z, true_z, skip_first=n).mean()),
        "psnr": float(np.minimum(psnr_video(video, truth, skip_first=n), 100).mean()),
    }


def env_throughput(model: str, num_envs: int, steps: int, prompts: bool = False) -> float:
    """Env steps/s of the full gym vector env with ``model`` (preset defaults: learned reward
    head); with ``prompts`` the ``vap`` preset, which integrates the proprio model and draws
    the prompts every step."""
    import gymnasium as gym

    import freeaction_gym  # noqa: F401

    env_id = "FreeActionMetaWorldVAP-v0" if prompts else "FreeActionMetaWorld-v0"
    venv = gym.make_vec(env_id, num_envs=num_envs, model=model)
    venv.reset(seed=0)
    acts = np.random.default_rng(0).uniform(-1, 1, (steps + 2, num_envs, 4)).astype(np.float32)
    for a in acts[:2]:
        venv.step(a)
    t0 = time.perf_counter()
    for a in acts[2:]:
        venv.step(a)
    dt = time.perf_counter() - t0
    venv.close()
    return num_envs * steps / dt


def profile_default(world, ctx, actions, start=None) -> str:
    from torch.profiler import ProfilerActivity, profile

    row = Row("default")
    n = world.num_context
    trackers = start.trackers(env_groups(row, len(ctx)), actions[:, : n - 1]) if start else None
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        imagine(world, row, ctx, actions[:, : n + 3], 0, trackers)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)


def ladder(pndm_steps: int) -> list[Row]:
    naive = Row("naive (IRASim-style)", "pndm", pndm_steps, True, False, False, True)
    r1 = replace(naive, name="+ predict only the needed frame", full_window=False)
    r2 = replace(r1, name="+ CFG batched into one 2B call", batch_cfg=True)
    r3 = replace(r2, name="+ DDIM 10 steps", scheduler="ddim", steps=10)
    r4 = replace(r3, name="+ DDIM 2 steps", steps=2)
    r5 = replace(r4, name="+ all envs in one call", batched_envs=True)
    r6 = replace(r5, name="+ CFG off = **default**", cfg=False)
    r7 = replace(r6, name="+ 4 actions per env step (chunk 4)", chunk=4)
    return [naive, r1, r2, r3, r4, r5, r6, r7]


def fmt_rows(rows: list[dict], ref: dict) -> list[str]:
    lines = [
        "| configuration | frames/s | ms/frame | x naive | peak MiB | Latent L2 | PSNR |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['row']} | {r['frames_per_s']:.2f} | {r['ms_per_frame']:.1f} | "
            f"{r['frames_per_s'] / ref['frames_per_s']:.1f}x | {r['peak_mib']:.0f} | "
            f"{r['latent_l2']:.4f} | {r['psnr']:.2f} |"
        )
    return lines


def report(lines: list[str], payload: dict, out: str | None) -> None:
    """Print the markdown report; with ``out`` also write it and ``payload`` as .json."""
    md = "\n".join(lines) + "\n"
    print(md)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(md)
        path.with_suffix(".json").write_text(json.dumps(payload, indent=1))


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    out = {}
    for item in pairs:
        name, sep, model = item.partition("=")
        if not sep or not name or not model:
            raise SystemExit(f"--compare takes NAME=MODEL pairs, got {item!r}")
        out[name] = model
    return out


def compare_models(args: Args, threads: int) -> None:
    """Default row + gym vector env of every model of ``--compare``, in one process."""
    models = parse_pairs(args.compare)
    worlds = {name: load_world_model(m) for name, m in models.items()}
    inputs = {}  # name -> (clips, true latents, RobotStart | None)
    for name, world in worlds.items():
        n = world.num_context
        clips = collect_clips(args.data, args.split, args.frames + n, args.num_envs, seed=0)
        start = robot_start_for(world, models[name], args, clips)
        inputs[name] = clips, encode_frames(world, clips.frames), start
    rows = {name: [] for name in models}
    t_start = time.time()
    for _ in tqdm(range(args.repeats), desc="compare"):
        for name, world in worlds.items():
            n = world.num_context
            clips, true_z, start = inputs[name]
            row = Row(f"{name}: default, {args.num_envs} envs")
            rows[name].append(time_row(world, row, true_z[:, :n], clips.actions, clips.frames,
                                       true_z, 1, start))  # fmt: skip
    best = {n: max(r, key=lambda x: x["frames_per_s"]) for n, r in rows.items()}
    env_rates = {}
    if args.env_steps > 0:
        env_rates = {
            name: env_throughput(m, args.num_envs, args.env_steps, worlds[name].takes_prompts)
            for name, m in models.items()
        }
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    minutes = (time.time() - t_start) / 60
    ref = next(iter(best.values()))
    lines = [
        f"Command: `{command}` ({minutes:.1f} min, {threads} torch threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, torch {torch.__version__}). "
        f"{args.num_envs} held-out `{args.split}` clips x {args.frames} imagined frames, default "
        f"sampler of each model; best of {args.repeats} alternating repetitions. Prompt models "
        "include the env's per-step prompt work (proprio integration + skeleton drawing).",
        "",
        "| model | prompts | frames/s | ms/frame | vs first | gym vector env steps/s | "
        "Latent L2 | PSNR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in best.items():
        rate = f"{env_rates[name]:.1f}" if name in env_rates else "skipped"
        prompts = "integrated per step" if r["prompt_work"] else "-"
        lines.append(
            f"| {name} ({models[name]}) | {prompts} | {r['frames_per_s']:.2f} | "
            f"{r['ms_per_frame']:.1f} | "
            f"{r['frames_per_s'] / ref['frames_per_s']:.2f}x | {rate} | {r['latent_l2']:.4f} | "
            f"{r['psnr']:.2f} |"
        )
    payload = {"command": command, "models": models, "best": best, "all": rows,
               "env_steps_per_s": env_rates}  # fmt: skip
    report(lines, payload, args.out)


def main() -> None:
    args = parse_args(Args)
    pndm = 50
    if args.quick:
        args.num_envs, args.frames, args.repeats, pndm, args.compile = 2, 2, 1, 10, False
        args.env_steps = min(args.env_steps, 4)
    threads = configure_threads()
    if args.compare:
        compare_models(args, threads)
        return
    world = load_world_model(args.model)
    n = world.num_context
    clips = collect_clips(args.data, args.split, args.frames + n, args.num_envs, seed=0)
    true_z = encode_frames(world, clips.frames)
    ctx, actions = true_z[:, :n], clips.actions
    start = robot_start_for(world, args.model, args, clips)
    t_start = time.time()
    results = []
    rows = ladder(pndm)
    for row in tqdm(rows, desc="ladder"):
        reps = 1 if row.steps > 10 else args.repeats
        results.append(time_row(world, row, ctx, actions, clips.frames, true_z, reps, start))
    naive, default = results[0], results[6]
    default_row = rows[6]
    extra = [
        replace(default_row, name="default, 1 thread", threads=1),
        replace(
            default_row, name="default, no_grad instead of inference_mode", grad_mode="no_grad"
        ),
        replace(default_row, name="default + CFG (batched, first half of steps)", cfg=True),
        replace(default_row, name="DDIM 10, CFG off", steps=10),
        replace(default_row, name="DDIM 10 + CFG (batched)", steps=10, cfg=True),
        replace(default_row, name="DDIM 10 + CFG (two calls)", steps=10, cfg=True, batch_cfg=False),
    ]
    extra_res = [
        time_row(world, r, ctx, actions, clips.frames, true_z, args.repeats, start)
        for r in tqdm(extra, desc="extras")
    ]
    compile_note = "not run"
    if args.compile:
        eager = world.dit
        try:
            world.dit = torch.compile(eager, dynamic=False)
            r = time_row(world, replace(default_row, name="default + torch.compile"), ctx, actions,
                         clips.frames, true_z, args.repeats, start)  # fmt: skip
            extra_res.append(r)
            compile_note = f"{r['frames_per_s'] / default['frames_per_s']:.2f}x the eager default"
        except Exception as e:  # noqa: BLE001 - report why compile is unavailable
            compile_note = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        finally:
            world.dit = eager
    scaling = []
    for n in sorted({1, 2, 4, args.num_envs}):
        if n > args.num_envs:
            continue
        r = time_row(world, replace(default_row, name=f"default, {n} envs"), ctx[:n],
                     actions[:n], clips.frames[:n], true_z[:n], args.repeats,
                     start.head(n) if start else None)  # fmt: skip
        scaling.append(r)
    env_rates = {}
    if args.env_steps > 0:
        env_rates = {
            n: env_throughput(args.model, n, args.env_steps, world.takes_prompts)
            for n in (1, args.num_envs)
        }
    prof = profile_default(world, ctx, actions, start)
    minutes = (time.time() - t_start) / 60

    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = [
        f"Command: `{command}` ({minutes:.1f} min, {threads} torch threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, torch {torch.__version__}). "
        f"{args.num_envs} held-out `{args.split}` clips x {args.frames} imagined frames, one "
        "action per frame; fidelity of exactly the timed frames (those after the context) vs "
        "ground truth."
        + (
            " Every row includes the env's per-step prompt work (proprio integration + skeleton "
            "drawing)."
            if start
            else ""
        ),
        "",
        "**Ladder: naive -> default** (each row adds one change to the row above)",
        "",
        *fmt_rows(results, naive),
        "",
        "**Single optimisations around the default**",
        "",
        *fmt_rows(extra_res, naive),
        "",
        f"torch.compile: {compile_note}.",
        "",
        "**Scaling with batched envs** (default settings)",
        "",
        "| envs | frames/s | vs 1 env | per-env efficiency |",
        "|---|---|---|---|",
    ]
    one = scaling[0]["frames_per_s"]
    for r, n in zip(scaling, sorted({1, 2, 4, args.num_envs}), strict=False):
        ratio = r["frames_per_s"] / one
        lines.append(f"| {n} | {r['frames_per_s']:.2f} | {ratio:.2f}x | {ratio / n:.2f} |")
    cfg_cost = default["frames_per_s"] / extra_res[2]["frames_per_s"]
    cfg10 = extra_res[3]["frames_per_s"] / extra_res[4]["frames_per_s"]
    cfg10_split = extra_res[3]["frames_per_s"] / extra_res[5]["frames_per_s"]
    lines += [
        "",
        f"CFG cost (time per frame with / without): {cfg_cost:.2f}x at DDIM 2, {cfg10:.2f}x at "
        f"DDIM 10 batched, {cfg10_split:.2f}x at DDIM 10 as two calls.",
        f"Default vs naive: {default['frames_per_s'] / naive['frames_per_s']:.0f}x the frames/s, "
        f"Latent L2 {default['latent_l2']:.4f} vs {naive['latent_l2']:.4f}, PSNR "
        f"{default['psnr']:.2f} vs {naive['psnr']:.2f} dB.",
        "",
        f"**Full gym vector env** (`gym.make_vec('FreeActionMetaWorld{'VAP' if start else ''}-v0')`"
        ", preset defaults, learned reward head): "
        + (", ".join(f"{n} envs {v:.1f} env steps/s" for n, v in env_rates.items()) or "skipped")
        + f" (imagination alone at {args.num_envs} envs: {default['frames_per_s']:.1f} frames/s).",
        "",
        "**Profile of the default** (4 frames x all envs, torch.profiler, self CPU time)",
        "",
        "```",
        prof.strip(),
        "```",
    ]
    payload = {"command": command, "ladder": results, "extras": extra_res, "scaling": scaling,
               "env_steps_per_s": env_rates, "compile": compile_note}  # fmt: skip
    report(lines, payload, args.out)


if __name__ == "__main__":
    main()
