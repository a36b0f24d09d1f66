"""Dataclass -> argparse for experiment scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from freeaction_gym.utils.args import field_docs, parse_args


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
