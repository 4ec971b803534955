"""The book's English messages as .pot files, one per page: what the Chinese edition translates.

``make po`` runs this, then ``sphinx-intl update`` (README, "中文版"); ``scripts/check_po.py``
runs it into a temporary folder to compare the .po files with the current source. It builds
with Sphinx's gettext builder through Jupyter Book's own configuration (``_config.yml``,
``_toc.yml``) with execution off: code and outputs are never translated, only the prose,
captions, alt text, exercises and solutions. A figure's caption and alt text live in its code
cell's metadata and reach the page only with the cell's image, so each such cell gets a
placeholder image for the extraction (the real build executes and draws it).

    python scripts/i18n_pot.py [OUTDIR]   (default: _build/gettext; the .pot files in OUTDIR/pot)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Sphinx settings for the extraction: one .pot per page, no line numbers (a paragraph moved
#: is not a change to translate), and no execution.
OVERRIDES = {
    "nb_execution_mode": "off",
    "gettext_compact": False,
    "gettext_location": False,
    "gettext_uuid": False,
    "project": "bnbook",
    # myst-nb keeps no output for a builder it has no priorities for: keep the images (alt)
    "nb_mime_priority_overrides": [("gettext", "image/png", 10)],
}


#: A 1×1 PNG: what a figure cell "draws" during the extraction.
PLACEHOLDER_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
    "AAAABJRU5ErkJggg=="
)


def _is_figure_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("mystnb", {})
    return cell.get("cell_type") == "code" and ("figure" in meta or "image" in meta)


def _placeholder_figures() -> None:
    """Make myst-nb's reader give every figure cell without outputs a placeholder image."""
    import dataclasses

    import myst_nb.sphinx_ as nb_sphinx
    import nbformat

    original = nb_sphinx.create_nb_reader
    if getattr(original, "bnbook_placeholders", False):
        return

    def create_nb_reader(*args, **kwargs):
        reader = original(*args, **kwargs)
        if reader is None:
            return None
        read = reader.read

        def read_with_figures(text):
            notebook = read(text)
            for cell in notebook.cells:
                if _is_figure_cell(cell) and not cell.get("outputs"):
                    output = {"output_type": "display_data", "metadata": {}}
                    output["data"] = {"image/png": PLACEHOLDER_PNG}  # no text: the image shows
                    cell["outputs"] = [nbformat.from_dict(output)]
            return notebook

        return dataclasses.replace(reader, read=read_with_figures)

    create_nb_reader.bnbook_placeholders = True
    nb_sphinx.create_nb_reader = create_nb_reader


def make_pot(outdir: Path, quiet: bool = True, silent: bool = False) -> int:
    """Write OUTDIR/pot/<docname>.pot for every page of the book; Sphinx's exit status.

    myst-nb writes the placeholder images to OUTDIR/jupyter_execute (next to pot/).
    """
    from jupyter_book.sphinx import build_sphinx

    outdir = Path(outdir).resolve() / "pot"
    _placeholder_figures()
    return build_sphinx(
        ROOT,
        outdir,
        noconfig=True,
        path_config=str(ROOT / "_config.yml"),
        confoverrides={
            **OVERRIDES,
            "external_toc_path": (ROOT / "_toc.yml").as_posix(),
            "latex_individualpages": False,
        },
        doctreedir=outdir / ".doctrees",
        builder="gettext",
        freshenv=True,
        quiet=quiet or silent,
        really_quiet=silent,  # no warnings: without execution, glued values are missing
        warningiserror=False,
    )


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "_build" / "gettext"
    sys.exit(make_pot(out, quiet=False))
