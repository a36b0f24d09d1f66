"""User errors on the command line (issue 38): one line on stderr naming the option or
path, exit status 2, no traceback and no output folder left behind; ``--debug`` /
``FREEACTION_DEBUG=1`` bring the traceback back.

Every ``freeaction`` subcommand (taken from the argparse parser, so a new one must join
:data:`MISSING_INPUT`) and ``python -m agents.train`` / ``agents.evaluate`` run in-process
with a missing input; then bad numbers (``--timesteps -5`` used to save an untrained
model), files that are no policy, bad config options, an unknown command and the PAD
hint's command name; two smoke cases run as real processes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import agents.evaluate
import agents.train
from freeaction_gym import cli
from freeaction_gym.pad.io import load_pad

REPO = Path(__file__).resolve().parents[1]

MISSING_INPUT = {
    # command -> its argv with the missing input MISSING and the output folder OUT
    "train": ["--config", "MISSING", "loop.output=OUT"],
    "dyna": ["--config", "MISSING", "output=OUT"],
    "data": ["metaworld", "MISSING", "--stats-only"],  # the root is the input here
    "bundle": ["--model", "MISSING", "--out", "OUT"],
    "demo": ["--model", "MISSING", "--out", "OUT"],
    "play": ["--model", "MISSING", "--keys", "w", "--out", "OUT"],
    "bank": ["--data", "MISSING", "--out", "OUT/bank.npz"],
    "imagine": ["--data", "MISSING", "--out", "OUT"],
    "train-reward": ["--data", "MISSING", "--out", "OUT"],
    "train-probe": ["--data", "MISSING", "--out", "OUT"],
    "train-idm": ["--data", "MISSING", "--out", "OUT"],
    "train-proprio": ["--data", "MISSING", "--out", "OUT"],
    "pad-train": ["--data", "MISSING", "--out", "OUT"],
}
SCRIPTS = {
    "agents.train": (agents.train.main, ["--hyperparams", "MISSING", "--out", "OUT"]),
    "agents.train --init-from": (agents.train.main, ["--init-from", "MISSING", "--out", "OUT"]),
    "agents.train --prefill": (
        agents.train.main,
        ["--algo", "sac", "--prefill", "MISSING", "--out", "OUT"],
    ),
    "agents.evaluate": (agents.evaluate.main, ["--policy", "MISSING", "--out", "OUT/r.json"]),
}


def subcommands() -> list[str]:
    """The ``freeaction`` subcommands, as the argparse parser knows them."""
    (sub,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(sub.choices)


def run(main, argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``main(argv)`` in this process."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, *names: str) -> None:
    assert code == 2, (code, err)
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in out + err
    for name in names:
        assert name in err, (name, err)


def fill(argv: list[str], missing: Path, out: Path) -> list[str]:
    return [a.replace("MISSING", str(missing)).replace("OUT", str(out)) for a in argv]


def test_every_subcommand_is_covered():
    assert subcommands() == sorted(cli.COMMANDS) == sorted(MISSING_INPUT)


@pytest.mark.parametrize("command", sorted(MISSING_INPUT))
def test_subcommand_with_a_missing_input(command, tmp_path, capsys):
    missing, out = tmp_path / f"no_such_{command}", tmp_path / "out"
    code, stdout, err = run(
        cli.main, [command, *fill(MISSING_INPUT[command], missing, out)], capsys
    )
    assert_one_line_error(code, stdout, err, str(missing))
    assert not out.exists() and not missing.exists()


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_with_a_missing_input(script, tmp_path, capsys):
    main, argv = SCRIPTS[script]
    missing, out = tmp_path / "no_such_input", tmp_path / "out"
    code, stdout, err = run(main, fill(argv, missing, out), capsys)
    assert_one_line_error(code, stdout, err, str(missing))
    assert not out.exists()


BAD_NUMBERS = {
    # script -> (main, argv, the option the message names)
    "agents.train --timesteps -5": (agents.train.main, ["--timesteps", "-5"], "--timesteps"),
    "agents.train --timesteps 0": (agents.train.main, ["--timesteps", "0"], "--timesteps"),
    "agents.train --num-envs 0": (agents.train.main, ["--num-envs", "0"], "--num-envs"),
    "agents.train --eval-episodes 0": (
        agents.train.main,
        ["--eval-episodes", "0"],
        "--eval-episodes",
    ),
    "agents.train --eval-freq -1": (agents.train.main, ["--eval-freq", "-1"], "--eval-freq"),
    "agents.evaluate --episodes 0": (agents.evaluate.main, ["--episodes", "0"], "--episodes"),
    "agents.evaluate --num-envs 0": (agents.evaluate.main, ["--num-envs", "0"], "--num-envs"),
    "agents.evaluate --policy expert:abc": (
        agents.evaluate.main,
        ["--policy", "expert:abc"],
        "expert:abc",
    ),
    "agents.evaluate --policy expert:-1": (
        agents.evaluate.main,
        ["--policy", "expert:-1"],
        "expert:-1",
    ),
    "demo --episodes 0": (cli.main, ["demo", "--episodes", "0"], "--episodes"),
    "demo --steps -1": (cli.main, ["demo", "--steps", "-1"], "--steps"),
    "demo --agent-steps -1": (cli.main, ["demo", "--agent-steps", "-1"], "--agent-steps"),
}


@pytest.mark.parametrize("case", sorted(BAD_NUMBERS))
def test_bad_numbers_are_one_line(case, tmp_path, capsys):
    main, argv, option = BAD_NUMBERS[case]
    out = tmp_path / "out"
    out_arg = str(out / "r.json") if main is agents.evaluate.main else str(out)
    code, stdout, err = run(main, [*argv, "--out", out_arg], capsys)
    assert_one_line_error(code, stdout, err, option)
    assert not out.exists()  # agents.train --timesteps -5 used to save an untrained model


@pytest.mark.parametrize("content", ["garbage", "zip without data"])
def test_a_file_that_is_no_policy_is_one_line(content, tmp_path, capsys):
    policy = tmp_path / "policy.zip"
    if content == "garbage":
        policy.write_bytes(b"this is not a zip archive")
    else:
        with zipfile.ZipFile(policy, "w") as z:
            z.writestr("other.txt", "hello")
    code, stdout, err = run(agents.evaluate.main, ["--policy", str(policy)], capsys)
    assert_one_line_error(code, stdout, err, str(policy))


@pytest.mark.parametrize("command", ["train", "dyna"])
def test_a_bad_config_option_is_one_line(command, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("bogus_option: 1\n")
    code, stdout, err = run(cli.main, [command, "--config", str(config)], capsys)
    assert_one_line_error(code, stdout, err, str(config), "bogus_option")


def test_unknown_command_lists_the_commands(capsys):
    code, stdout, err = run(cli.main, ["bogus"], capsys)
    assert_one_line_error(code, stdout, err, "'bogus'", "unknown command", *cli.COMMANDS)


def test_help_lists_the_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS) and "--debug" in out


def test_debug_flag_and_env_var_show_the_traceback(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "no_such.yaml"
    with pytest.raises(FileNotFoundError, match="no_such.yaml"):
        cli.main(["train", "--config", str(missing), "--debug"])
    monkeypatch.setenv("FREEACTION_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="no_such.yaml"):
        cli.main(["train", "--config", str(missing)])
    with pytest.raises(ValueError, match="--timesteps must be >= 1"):
        agents.train.main(["--timesteps", "-5"])


def test_unwritable_output_folder_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = blocker / "demo"  # a folder under a file cannot be made (as /proc/x)
    code, stdout, err = run(cli.main, ["demo", "--out", str(out), "--agent-steps", "0"], capsys)
    assert_one_line_error(code, stdout, err, str(out), "--out")


def test_pad_hint_names_a_real_command(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_pad(tmp_path)
    hint = re.search(r"`freeaction ([\w-]+)", str(info.value))
    assert hint and hint.group(1) == "pad-train" and hint.group(1) in cli.COMMANDS


@pytest.mark.parametrize(
    "argv",
    [["-m", "freeaction_gym.cli", "bogus"], ["-m", "agents.train", "--timesteps", "-5"]],
    ids=["freeaction-bogus", "agents.train-timesteps"],
)
def test_smoke_as_a_process(argv, tmp_path):
    r = subprocess.run(
        [sys.executable, *argv, "--out", str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("error: "), r.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_env_option_is_one_line(tmp_path, capsys):
    """``agents.train --env-kwargs`` with an option the env refuses at make time."""
    out = tmp_path / "out"
    argv = ["--env", "FreeActionMetaWorldReach-v0", "--env-kwargs", "max_episode_steps=0",
            "--timesteps", "8", "--out", str(out)]  # fmt: skip
    code, stdout, err = run(agents.train.main, argv, capsys)
    assert_one_line_error(code, stdout, err, "--env-kwargs", "max_episode_steps")
