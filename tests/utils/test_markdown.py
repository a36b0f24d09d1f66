"""Doc blocks and their figures: copies next to the document, links relative to it that
resolve to those copies (not into the uncommitted study output)."""

from __future__ import annotations

import re
from pathlib import Path

from freeaction_gym.utils.markdown import copy_for_doc, doc_figures_dir, image_links, update_block

IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def block_image_targets(doc: Path, key: str) -> list[Path]:
    """Files the image links of ``doc``'s ``key`` block point to (relative to the doc)."""
    text = doc.read_text()
    block = text.split(f"<!-- {key}:begin -->", 1)[1].split(f"<!-- {key}:end -->", 1)[0]
    return [doc.parent / link for link in IMAGE_LINK.findall(block)]


def test_doc_figures_are_copied_and_linked_relative_to_the_doc(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths, as the scripts get them from the CLI
    runs = Path("runs/study")
    (runs / "figures").mkdir(parents=True)
    (runs / "scores").mkdir()
    sources = {"gripper_vs_step.png": runs / "figures" / "gripper_vs_step.png",
               "strip_in-domain_true.png": runs / "scores" / "strip_test.png"}  # fmt: skip
    for i, p in enumerate(sources.values()):
        p.write_bytes(bytes([i]) * 10)
    doc = Path("docs/RESULTS.md")
    doc.parent.mkdir()
    doc.write_text("# R\n\n<!-- study:begin -->\nold\n<!-- study:end -->\n")

    dest = doc_figures_dir(doc, "study")
    assert dest == Path("docs/figures/study")
    copies = copy_for_doc(sources, dest)
    assert copies == [dest / name for name in sources]
    for name, src in sources.items():
        assert (dest / name).read_bytes() == src.read_bytes()
    links = image_links(doc, copies)
    assert links == ["![gripper vs step](figures/study/gripper_vs_step.png)",
                     "![strip in-domain true](figures/study/strip_in-domain_true.png)"]  # fmt: skip
    update_block(doc, "study", "table\n\n" + "\n".join(links))

    targets = block_image_targets(doc, "study")
    assert len(targets) == 2
    for t in targets:  # every link resolves, to a copy inside docs/
        assert t.is_file() and t.resolve().is_relative_to(doc.parent.resolve()), t

    # copying onto itself (--out already next to the doc) keeps the files; --doc-figures wins
    assert copy_for_doc({"gripper_vs_step.png": copies[0]}, dest) == [copies[0]]
    assert copies[0].read_bytes() == bytes([0]) * 10
    assert doc_figures_dir(doc, "study", "elsewhere/figs") == Path("elsewhere/figs")
