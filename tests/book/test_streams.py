"""A cell's printed output is shown as the kernel wrote it (``_ext/streams.py``).

The kernel may flush a ``print``'s text and its newline in different chunks. myst-nb's
own merge strips each chunk on its own, so such a split showed a blank line that a build
without the split did not (chapter 3, one build in three). Here a stored notebook holds
the split, and the page built from it must show the text as printed.
"""

from __future__ import annotations

import html
import re
import sys

import nbformat

from tests.book.sphinx_project import ROOT, build

PRINTED = "ln 0.01 / ln 0.9 = 43.71, so 44 batches\nafter 43 batches: 0.01078\n"
#: the same text in the chunks a busy kernel once sent: the newline starts the second one
CHUNKS = ["ln 0.01 / ln 0.9 = 43.71, so 44 batches", "\nafter 43 batches: 0.01078\n"]


def stream(text: str, name: str = "stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_split_chunks_merge_to_the_printed_text():
    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        import streams
    finally:
        sys.path.remove(str(ROOT / "_ext"))
    from myst_nb.core.utils import coalesce_streams as myst_coalesce_streams

    outputs = [stream(c) for c in CHUNKS]
    assert myst_coalesce_streams([stream(c) for c in CHUNKS])[0]["text"] != PRINTED  # the defect
    (merged,) = streams.coalesce_streams(outputs)
    assert merged["text"] == PRINTED
    assert [o["text"] for o in outputs] == CHUNKS  # the notebook's own outputs are not changed
    # stderr still comes after stdout, and other outputs keep their place
    image = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"})
    mixed = [stream("warn", "stderr"), stream("a"), image, stream("\nb\n")]
    kinds = [(o["output_type"], o.get("name")) for o in streams.coalesce_streams(mixed)]
    assert kinds == [("stream", "stdout"), ("stream", "stderr"), ("display_data", None)]


def test_page_shows_split_output_as_printed(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(...)")
    cell.outputs = [stream(c) for c in CHUNKS]
    notebook.cells = [nbformat.v4.new_markdown_cell("# Split"), cell]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, source / "index.ipynb")
    warnings = build(
        source, tmp_path, ["myst_nb", "streams"], nb_execution_mode="off", nb_merge_streams=True
    )
    page = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    blocks = re.findall(r'class="output stream.*?<pre>(.*?)</pre>', page, re.S)
    shown = [html.unescape(re.sub(r"<[^>]+>", "", b)) for b in blocks]
    assert shown == [PRINTED], (shown, warnings)
