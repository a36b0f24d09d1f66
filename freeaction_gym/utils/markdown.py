"""Write generated results into hand-written markdown between marker comments."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path


def update_block(path: str | Path, key: str, text: str) -> None:
    """Replace the text between ``<!-- key:begin -->`` and ``<!-- key:end -->`` in ``path``
    (appending a new block at the end if the markers are absent; creating the file)."""
    path = Path(path)
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    doc = path.read_text() if path.is_file() else ""
    block = f"{begin}\n{text.strip()}\n{end}"
    if begin in doc and end in doc:
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc)


def doc_figures_dir(doc: str | Path, name: str, override: str | Path | None = None) -> Path:
    """Where a study's figures go next to a document: ``override``, else
    ``<doc's folder>/figures/<name>`` (e.g. docs/figures/prompt_study)."""
    return Path(override) if override else Path(doc).parent / "figures" / name


def copy_for_doc(files: Mapping[str, str | Path], dest: str | Path) -> list[Path]:
    """Copy ``{file name in dest: source}`` into ``dest`` (created) and return the copies in
    order. Study outputs live in uncommitted run folders, so a committed document must link
    copies; a source that already is its copy is left alone."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for name, src in files.items():
        copy = dest / name
        if not copy.exists() or not copy.samefile(src):
            shutil.copyfile(src, copy)
        copies.append(copy)
    return copies


def image_links(doc: str | Path, images: Iterable[str | Path]) -> list[str]:
    """``![alt](path)`` per image, the path relative to ``doc``'s folder (so the links work
    wherever the repository is checked out) and the alt text the file's stem with spaces
    for underscores."""
    base = Path(doc).resolve().parent
    links = []
    for p in map(Path, images):
        rel = Path(os.path.relpath(p.resolve(), base)).as_posix()
        links.append(f"![{p.stem.replace('_', ' ')}]({rel})")
    return links
