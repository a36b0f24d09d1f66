"""README.md's examples run as written, from a fresh directory (issue 38, item 13).

Every ```python block runs alone in a subprocess whose cwd is an empty temporary directory,
so a path that only resolves from the repository root fails here as it would for a user
elsewhere; the subprocess imports this checkout's package. Shell blocks are split into
commands (``\\`` continuations joined, comments dropped); each command must be listed in
``RUN_COMMANDS`` (run it, in the default suite or behind the ``slow`` marker) or in
``SKIP_COMMANDS`` (with the reason), so a command added to the README without a decision
fails :func:`test_every_readme_command_is_classified`. A command runs from an empty
directory too, with the README's repository paths (``experiments/*.py``, ``configs/...``)
made absolute: outputs and defaults must not depend on the cwd.

Python blocks listed in ``SKIP_PYTHON``, ``SLOW_PYTHON`` or ``REPO_CWD_PYTHON`` (the one
block that names a directory of the checkout on purpose) are matched by a piece of their
code. Blocks that load ``WorldModel.from_pretrained("bundled:...")`` run only where that
method resolves bundled names (``bundled_from_pretrained``); elsewhere they are skipped
with that reason, never failed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TIMEOUT_S = 300

SKIP_PYTHON = {  # a piece of the block's code -> why it does not run here
    'load_irasim_checkpoint("0300000.pt")': "needs a released IRASim checkpoint you download",
    'gym.make("FreeActionRT1-v0"': "needs your IRASim checkpoint, the SDXL VAE and a reset bank",
}
SLOW_PYTHON = {  # a piece of the block's code -> why it is behind the slow marker
    "expert_plans(real, scenes": "real simulator and imagination, two policies (~30 CPU s)",
    "generate_dataset(": "renders a tiny MetaWorld dataset first (~12 CPU s with the rest)",
}
REPO_CWD_PYTHON = {  # a piece of the block's code -> why it runs from the repository root
    'model="checkpoints/metaworld_v1"': "names checkpoints/metaworld_v1, a directory of the "
    "checkout (the README says so), not package data",
}

RUN_COMMANDS = {  # command as the README writes it -> "default" or "slow"
    "python experiments/freeaction_tables.py --table 1 --quick": "slow",  # ~16 CPU s
    "python experiments/pad_truncation.py --quick": "slow",  # ~35 CPU s
    'freeaction play --keys "wwwwddddrrg"': "slow",  # 11 imagined steps, an mp4
}
LONG = "long-running (minutes to hours), not a smoke test"
NEEDS_DATA = "needs a generated dataset or trained run that a fresh clone does not have"
SKIP_COMMANDS = {  # a command's start -> why the test does not run it
    "freeaction play --keys episode.json": "needs an episode saved by the browser page",
    "freeaction play --web": "serves a page until stopped (tests/web/ drive it)",
    "freeaction play": "interactive: reads key presses until q",
    "bash scripts/setup.sh": "creates a virtual environment and installs packages (and the "
    "demo after it: a few minutes)",
    "freeaction data metaworld": "data generation (~29 min for the README's dataset)",
    "freeaction train": LONG,
    "freeaction bundle": "needs a trained model and its dataset",
    "python experiments/ablate_world_model.py": LONG,
    "python experiments/freeaction_tables.py --table 1 --model": "needs IRASim data you bring",
    "python experiments/freeaction_tables.py --table": NEEDS_DATA + " (data/metaworld_default)",
    "freeaction train-probe": LONG,
    "python experiments/world_model_fidelity.py": NEEDS_DATA,
    "python experiments/bench_imagination.py": LONG,
    "python experiments/bench_drq_update.py": "a benchmark (~1 min of full CPU)",
    "python -m agents.train": LONG,
    "python -m agents.evaluate": NEEDS_DATA,
    "python experiments/policy_eval_study.py": LONG,
    "python experiments/imagination_agent.py": LONG,
    "python experiments/policy_eval_subset.py": NEEDS_DATA,
    "python experiments/video_strip.py": NEEDS_DATA,
    "freeaction dyna --config configs/dyna/quick.yaml": "~1 min of training (tests/dyna/)",
    "freeaction dyna": LONG,
    "python experiments/dyna_frames.py": NEEDS_DATA,
    "python experiments/dyna_compare.py": NEEDS_DATA,
    "python experiments/metaworld_k.py": "~1 min even --quick (tests/dyna/test_metaworld_k.py)",
    "freeaction pad-train": LONG,
    "python experiments/pad_truncation.py --policy": NEEDS_DATA,
    "python experiments/prompt_study.py": LONG,
    "python experiments/prompt_alignment.py": NEEDS_DATA,
    "python experiments/proprio_error.py": NEEDS_DATA,
}


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    section: str  # the nearest heading above it

    @property
    def name(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def readme_blocks(text: str | None = None) -> list[Block]:
    """Fenced code blocks of the README, in order."""
    lines = (README.read_text() if text is None else text).splitlines()
    blocks, section, i = [], "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif line.startswith("```"):
            lang, start, body = line[3:].strip(), i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append(Block(lang, "\n".join(body) + "\n", start, section))
        i += 1
    return blocks


def shell_commands(block: Block) -> list[str]:
    """The commands of a shell block: continuations joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", " ", block.code)
    commands = []
    for line in joined.splitlines():
        command = line.split(" #", 1)[0].strip()
        if command and not command.startswith("#"):
            commands.append(" ".join(command.split()))
    return commands


def readme_commands() -> list[tuple[str, Block]]:
    return [(c, b) for b in readme_blocks() if b.lang in ("bash", "sh") for c in shell_commands(b)]


def skip_reason(command: str) -> str | None:
    starts = [s for s in SKIP_COMMANDS if command.startswith(s)]
    return SKIP_COMMANDS[max(starts, key=len)] if starts else None


def subprocess_env() -> dict[str, str]:
    """This checkout's package first on the path, one thread, headless MuJoCo."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env |= {"FREEACTION_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "MUJOCO_GL": "osmesa"}
    env |= {"PYOPENGL_PLATFORM": "osmesa", "MPLBACKEND": "Agg"}
    return env


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=TIMEOUT_S
    )


def as_argv(command: str) -> list[str]:
    """The README command for this interpreter: ``python`` is this one, ``freeaction`` its
    CLI module; arguments naming a file of the checkout become absolute paths."""
    argv = shlex.split(command)
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0] == "freeaction":
        argv[:1] = [sys.executable, "-m", "freeaction_gym.cli"]
    return [str(REPO / a) if "/" in a and (REPO / a).is_file() else a for a in argv]


@pytest.fixture(scope="session")
def bundled_from_pretrained() -> bool:
    """Whether ``WorldModel.from_pretrained`` takes ``bundled:<name>`` (another change)."""
    from freeaction_gym.world_model import WorldModel

    try:
        WorldModel.from_pretrained("bundled:metaworld_default")
    except (OSError, ValueError, RuntimeError):  # RuntimeError: CheckpointError
        return False
    return True


def _marked(block: Block):
    if skip := next((r for k, r in SKIP_PYTHON.items() if k in block.code), None):
        return pytest.param(block, id=block.name, marks=pytest.mark.skip(reason=skip))
    slow = any(k in block.code for k in SLOW_PYTHON)
    return pytest.param(block, id=block.name, marks=[pytest.mark.slow] if slow else [])


PYTHON_BLOCKS = [b for b in readme_blocks() if b.lang == "python"]


@pytest.mark.parametrize("block", [_marked(b) for b in PYTHON_BLOCKS])
def test_python_snippet_runs_from_a_fresh_directory(block, tmp_path, request):
    if 'WorldModel.from_pretrained("bundled:' in block.code and not request.getfixturevalue(
        "bundled_from_pretrained"
    ):
        pytest.skip("WorldModel.from_pretrained does not take bundled:<name> in this checkout")
    (tmp_path / "snippet.py").write_text(block.code)
    cwd = REPO if any(k in block.code for k in REPO_CWD_PYTHON) else tmp_path
    proc = run([sys.executable, str(tmp_path / "snippet.py")], cwd)
    assert proc.returncode == 0, f"{block.name} failed:\n{block.code}\n{proc.stderr[-4000:]}"


def _command_param(command: str, block: Block):
    marks = [pytest.mark.slow] if RUN_COMMANDS[command] == "slow" else []
    return pytest.param(command, id=f"{block.name}: {command}", marks=marks)


@pytest.mark.parametrize(
    "command", [_command_param(c, b) for c, b in readme_commands() if c in RUN_COMMANDS]
)
def test_command_runs_from_a_fresh_directory(command, tmp_path):
    proc = run(as_argv(command), tmp_path)
    assert proc.returncode == 0, f"`{command}` failed:\n{proc.stderr[-4000:]}"


def test_every_readme_command_is_classified():
    commands = readme_commands()
    assert commands, "no shell commands found in README.md"
    unknown = [
        f"{b.name}: {c}" for c, b in commands if c not in RUN_COMMANDS and not skip_reason(c)
    ]
    assert not unknown, "add these to RUN_COMMANDS or SKIP_COMMANDS:\n" + "\n".join(unknown)
    listed = {c for c, _ in commands}
    assert not set(RUN_COMMANDS) - listed, "RUN_COMMANDS names commands the README lacks"
    assert set(RUN_COMMANDS.values()) <= {"default", "slow"}


def test_every_skip_and_slow_entry_matches_a_block():
    """Entries for blocks the README no longer has would hide nothing: keep the lists true."""
    codes = [b.code for b in PYTHON_BLOCKS]
    listed = [*SKIP_PYTHON, *SLOW_PYTHON, *REPO_CWD_PYTHON]
    stale = [k for k in listed if not any(k in c for c in codes)]
    assert not stale, f"no README python block contains {stale}"
    commands = [c for c, _ in readme_commands()]
    stale = [s for s in SKIP_COMMANDS if not any(c.startswith(s) for c in commands)]
    assert not stale, f"no README command starts with {stale}"


def test_block_parsing():
    text = "# A\n```python\nx = 1\n```\n## B\n```bash\nfoo --a \\\n    --b  # c\n# d\n\nbar\n```\n"
    python, bash = readme_blocks(text)
    assert (python.lang, python.code, python.line, python.section) == ("python", "x = 1\n", 2, "A")
    assert bash.section == "B" and shell_commands(bash) == ["foo --a --b", "bar"]
