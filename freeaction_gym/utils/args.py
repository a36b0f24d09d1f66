"""Command-line parsing for experiment scripts: a ``@dataclass`` of arguments -> argparse.

CleanRL-style scripts declare their arguments once, as dataclass fields with a docstring
each; :func:`parse_args` turns the fields into ``--kebab-case`` options whose help text is
that docstring. Supported field types: ``str``, ``int``, ``float``, ``bool``
(``--flag/--no-flag``), ``Literal[...]`` (choices), ``list[T]`` (one or more values) and
``T | None``.

Checks that run before a command writes anything (each raises
:class:`~freeaction_gym.utils.errors.UserError` naming the option):
:func:`require_at_least` (counts and sizes), :func:`require_path` (inputs) and
:func:`make_output_dir` (the output folder, made only once the inputs are valid).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import textwrap
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from freeaction_gym.utils.errors import UserError

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal right below a field) of a dataclass and of
    the dataclasses it inherits from (a subclass's docstring wins)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if "__dataclass_fields__" in vars(klass):
            docs |= _own_field_docs(klass)
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    """The field docstrings written in ``cls``'s own class body."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):  # no source (e.g. defined in a REPL)
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _option(tp: Any) -> dict[str, Any]:
    """argparse keyword arguments for a field type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return _option(inner)
    if origin is Literal:
        return {"choices": list(args), "type": type(args[0])}
    if origin is list:
        return {"nargs": "+", **_option(args[0])}
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    return {"type": tp}


def parse_args(cls: type[T], argv: list[str] | None = None) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into an instance of dataclass ``cls``."""
    parser = argparse.ArgumentParser(
        description=(cls.__doc__ or "").strip() or None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in fields(cls):  # type: ignore[arg-type]
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=default,
            help=docs.get(f.name, " ").replace("%", "%%"),  # argparse formats help with %
            **_option(hints[f.name]),
        )
    return cls(**vars(parser.parse_args(argv)))


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b": {"c": "x"}}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"expected key=value, got {item!r}")
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return out


def require_at_least(minimum: float, **options: float | None) -> None:
    """A :class:`UserError` naming the first option (keyword ``num_envs`` -> ``--num-envs``)
    whose value is below ``minimum``; ``None`` (unset: a default applies) passes."""
    for name, value in options.items():
        if value is not None and value < minimum:
            raise UserError(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")


def require_path(path: str | Path, option: str, kind: Literal["file", "dir"] | None = None) -> Path:
    """``path`` as a ``Path`` if it exists (and is a ``kind``, when given), else a
    :class:`UserError` naming ``option`` and ``path``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{option} {path}: no such file or directory")
    if kind == "file" and not path.is_file():
        raise UserError(f"{option} {path}: not a file")
    if kind == "dir" and not path.is_dir():
        raise UserError(f"{option} {path}: not a directory")
    return path


def make_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Create the output folder ``path`` (and its parents; fine if it exists); a folder that
    cannot be made is a :class:`UserError` naming ``option``. Call it once the inputs are
    checked, so a rejected command leaves no empty folder behind."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{option} {path}: cannot create the folder ({err.strerror})") from err
    return path
