"""Dataclass -> argparse for experiment scripts, and the checks CLIs run before writing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from freeaction_gym.utils.args import (
    field_docs,
    make_output_dir,
    parse_args,
    require_at_least,
    require_path,
)
from freeaction_gym.utils.errors import UserError


@dataclass
class Example:
    """An example."""

    name: str = "a"
    """The name."""
    count: int = 3
    """How many,
    over two lines."""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    modes: list[Literal["x", "y"]] = field(default_factory=lambda: ["x"])
    scheduler: Literal["ddim", "pndm"] = "ddim"
    limit: float | None = None
    quick: bool = False


def test_defaults_and_values():
    assert parse_args(Example, []) == Example()
    got = parse_args(
        Example,
        "--name b --count 5 --seeds 3 4 5 --modes y x --scheduler pndm --limit 0.5 --quick".split(),
    )
    assert got == Example("b", 5, [3, 4, 5], ["y", "x"], "pndm", 0.5, True)
    assert parse_args(Example, ["--no-quick"]).quick is False


def test_rejects_bad_choice(capsys):
    with pytest.raises(SystemExit):
        parse_args(Example, ["--scheduler", "euler"])
    with pytest.raises(SystemExit):
        parse_args(Example, ["--modes", "z"])


def test_help_is_the_field_docstring():
    assert field_docs(Example) == {"name": "The name.", "count": "How many, over two lines."}


@dataclass
class _Base:
    data: str = "a"
    """Where the data is."""
    steps: int = 3
    """How many steps."""


@dataclass
class _Child(_Base):
    data: str = "b"
    """The child's data."""
    extra: bool = False
    """Only the child has it."""


def test_inherited_fields_keep_their_docs_and_subclass_overrides():
    docs = field_docs(_Child)
    assert docs == {"data": "The child's data.", "steps": "How many steps.",
                    "extra": "Only the child has it."}  # fmt: skip
    args = parse_args(_Child, ["--steps", "5", "--extra"])
    assert (args.data, args.steps, args.extra) == ("b", 5, True)


def test_checks_name_the_option(tmp_path):
    require_at_least(1, steps=1, episodes=None)  # None: unset, a default applies
    with pytest.raises(UserError, match="^--num-envs must be >= 1, got 0$"):
        require_at_least(1, steps=3, num_envs=0)
    f = tmp_path / "f.txt"
    f.write_text("")
    assert require_path(f, "--data", "file") == f
    with pytest.raises(UserError, match=f"--data {tmp_path}: not a file"):
        require_path(tmp_path, "--data", "file")
    with pytest.raises(UserError, match=f"--model {f}: not a directory"):
        require_path(f, "--model", "dir")
    with pytest.raises(UserError, match="--config .*nope: no such file or directory"):
        require_path(tmp_path / "nope", "--config")
    assert make_output_dir(tmp_path / "a" / "b").is_dir()
    with pytest.raises(UserError, match=f"--out {f}/x: cannot create the folder"):
        make_output_dir(f / "x")
