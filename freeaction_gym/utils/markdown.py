"""Write generated results into hand-written markdown between marker comments."""

from __future__ import annotations

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
