"""Downloadable notebooks that run anywhere, and the Colab and Binder buttons that open them.

A local Sphinx extension (``_config.yml``, ``sphinx: local_extensions``). The ``.ipynb`` that
each chapter page offers for download (sphinx-book-theme copies the executed chapter to
``_sources/``) is rewritten so that it needs nothing but Jupyter and the package index:

1. **The book's packages inside.** At the start of the build the two wheels are built from
   the checkout (``bnbook-bnlib``, import ``bnlib``, from the root ``pyproject.toml``; the
   book's package ``bnbook`` from ``book/``), reproducibly (``SOURCE_DATE_EPOCH``), into
   ``_build/wheels/``. A first code cell (``_ext/notebook_setup.py``, with a Markdown cell
   before it saying what it does) carries them base64-encoded and installs them, with
   PyTorch's pinned CPU build where there is no torch, and whatever else the chapter imports
   that the environment lacks, pinned as in ``requirements.txt``. Embedded, they work the
   same in a downloaded file, on Colab and on Binder: no path, repository or site to reach.
2. **Plain Markdown.** MyST-only markup becomes what the page shows (``_ext/myst_markdown.py``):
   glued values as text, glued figures as images, cross-references as text linked to the
   page on the book's site (``html.baseurl`` of ``_config.yml``), solutions as folded
   ``<details>`` blocks.
3. **The live notebook only.** Cells tagged ``page-only`` (the static explorers, frames for
   a page without a kernel, and their note) are dropped with their widgets; the live
   explorer after each stays. Cells hidden on the page stay, folded (Jupyter's
   ``source_hidden``/``outputs_hidden``), so the notebook reads like the page.
4. **Launch buttons.** Colab and Binder cannot open the MyST ``.md`` sources, so their
   buttons open these notebooks on the ``notebooks`` branch that ``.github/workflows/book.yml``
   publishes. Until the repository is published (``bnbook_repository_published: false`` in
   ``_config.yml``), the launch menu says so and offers the download instead.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.directives.code import LiteralIncludeReader
from sphinx.errors import ExtensionError
from sphinx.util import docname_join

sys.path.insert(0, str(Path(__file__).parent))
from myst_markdown import Converted, UnknownMarkup, to_markdown  # noqa: E402

NOTEBOOKS_BRANCH = "notebooks"
SETUP_TEMPLATE = Path(__file__).with_name("notebook_setup.py")
#: The two distributions: (the folder of its pyproject.toml, the files the wheel is built from,
#: the package it installs).
DISTRIBUTIONS = {
    "bnbook-bnlib": ("", ("pyproject.toml", "LICENSE", "bnlib"), "bnlib"),
    "bnbook": ("book", ("pyproject.toml", "bnbook"), "bnbook"),
}
#: What importing a package brings in (their wheels' dependencies, in import names).
DEPENDS = {
    "bnbook": {"bnlib", "torch", "numpy", "matplotlib", "ipywidgets", "sklearn"},
    "bnlib": {"numpy"},
}
#: Import name → distribution, for what a chapter may import beyond bnlib and bnbook (torch
#: is installed apart, from PyPI's CPU index). The version comes from requirements.txt.
IMPORTS = {
    "numpy": "numpy",
    "matplotlib": "matplotlib",
    "ipywidgets": "ipywidgets",
    "sklearn": "scikit-learn",
    "keras": "keras",
    "myst_nb": "myst-nb",
    "IPython": "ipython",
    "PIL": "pillow",
    "scipy": "scipy",
    "yaml": "pyyaml",
}
PAGE_ONLY = "page-only"
#: Tags that hide part of a cell on the page → what Jupyter folds.
FOLDED = {
    "remove-cell": ("source_hidden", "outputs_hidden"),
    "hide-cell": ("source_hidden", "outputs_hidden"),
    "remove-input": ("source_hidden",),
    "hide-input": ("source_hidden",),
    "remove-output": ("outputs_hidden",),
    "hide-output": ("outputs_hidden",),
}
SETUP_NOTE = """\
**Set-up.** This notebook is a chapter of *{title}* ({site}). Run the next cell first: it
installs what the chapter needs where it is missing (the book's library `bnlib` and its
package `bnbook`, which travel inside this notebook, and PyTorch's CPU build), then says
*Set-up done*; in a clone of the book after `make setup` it installs nothing. Its code is
folded: click the dots to read it."""
SETUP_ID = "bnbook-setup"


# ------------------------------------------------------------------------------- wheels


def build_wheels(app: Sphinx) -> None:
    """Both wheels into ``_build/wheels/``, the same bytes on every build of the same tree."""
    root, out = Path(app.confdir), Path(app.outdir).parent / "wheels"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}  # 1980-01-01, zip's first date
    for name, (folder, files, _) in DISTRIBUTIONS.items():
        with tempfile.TemporaryDirectory(prefix="bnbook-wheel-") as tmp:
            for file in files:  # a copy, so that setuptools leaves no build/ in the tree
                source = root / folder / file
                if source.is_dir():
                    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
                    shutil.copytree(source, Path(tmp) / file, ignore=ignore)
                else:
                    shutil.copy2(source, Path(tmp) / file)
            command = [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                str(out),
                tmp,
            ]
            run = subprocess.run(command, capture_output=True, text=True, env=env)
            if run.returncode != 0:
                raise ExtensionError(
                    f"downloads: could not build the wheel of {name}:\n{run.stdout}{run.stderr}"
                )
    app.bnbook_wheels = {p.name: p for p in sorted(out.glob("*.whl"))}


# --------------------------------------------------------------------- what a page knows


class PageKnowledge:
    """The :class:`myst_markdown.Book` of one page, from Sphinx's environment."""

    def __init__(self, app: Sphinx, docname: str) -> None:
        self.app, self.env, self.docname = app, app.env, docname
        self.base_url = site_url(app)
        glue = Path(app.outdir).parent / "jupyter_execute" / f"{docname}.glue.json"
        self.glue = json.loads(glue.read_text("utf-8")) if glue.exists() else {}

    def url(self, docname: str, anchor: str = "") -> str:
        return f"{self.base_url}{docname}.html" + (f"#{anchor}" if anchor else "")

    def glued(self, key: str) -> dict:
        if key not in self.glue:
            raise UnknownMarkup(f"{self.docname}: no glued value {key!r}")
        return self.glue[key]["data"]

    def doc(self, target: str) -> tuple[str, str]:
        docname = docname_join(self.docname, target.removesuffix(".md"))
        if docname not in self.env.titles:
            raise UnknownMarkup(f"{self.docname}: no page {target!r}")
        return self.env.titles[docname].astext(), self.url(docname)

    def label(self, label: str) -> tuple[str, str, str]:
        std = self.env.get_domain("std")
        if label in std.labels:
            return std.labels[label]
        if label in std.anonlabels:
            docname, anchor = std.anonlabels[label]
            return docname, anchor, ""
        raise UnknownMarkup(f"{self.docname}: no label {label!r}")

    def ref(self, label: str) -> tuple[str, str]:
        docname, anchor, title = self.label(label)
        return title, self.url(docname, anchor)

    def number(self, label: str) -> tuple[str, str]:
        docname, anchor, _ = self.label(label)
        numbers = self.env.toc_fignumbers.get(docname, {})
        for kind, ids in numbers.items():
            if anchor in ids:
                text = ".".join(map(str, ids[anchor]))
                return self.app.config.numfig_format[kind] % text, self.url(docname, anchor)
        section = self.env.toc_secnumbers.get(docname, {}).get(f"#{anchor}")
        if section:
            text = ".".join(map(str, section))
            return self.app.config.numfig_format["section"] % text, self.url(docname, anchor)
        raise UnknownMarkup(f"{self.docname}: {label!r} has no number")

    def link(self, target: str) -> str:
        path, _, anchor = target.partition("#")
        if not path.endswith((".md", ".ipynb")):
            return target
        docname = docname_join(self.docname, path.rsplit(".", 1)[0])
        return self.url(docname, anchor)

    def include(self, argument: str, options: dict[str, str]) -> str:
        source = Path(self.app.srcdir) / self.docname
        filename = (source.parent / argument).resolve()
        text, _ = LiteralIncludeReader(str(filename), options, self.app.config).read()
        return text


def site_url(app: Sphinx) -> str:
    url = app.config.html_baseurl
    if not url:
        raise ExtensionError("downloads: set the book's address as html: baseurl in _config.yml")
    return url.rstrip("/") + "/"


# --------------------------------------------------------------------- the notebook


def requirement_pins(app: Sphinx) -> dict[str, str]:
    """Distribution (lower case) → ``name==version``, from requirements.txt."""
    lines = (Path(app.confdir) / "requirements.txt").read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in lines]
    return {pin.split("==")[0].lower(): pin for pin in pins if "==" in pin}


def imported_modules(cells: list[dict]) -> set[str]:
    """The top-level modules the code cells import, or look up (``find_spec("keras")``:
    chapter 7 reads Keras's source without importing it)."""
    pattern = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", re.MULTILINE)
    looked_up = re.compile(r"find_spec\(\s*[\"']([A-Za-z_]\w*)")
    code = "\n".join(cell_source(cell) for cell in cells if cell["cell_type"] == "code")
    return set(pattern.findall(code)) | set(looked_up.findall(code))


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def setup_cells(app: Sphinx, modules: set[str], title: str) -> list[dict]:
    """The Markdown note and the set-up cell, filled in for a chapter importing ``modules``."""
    modules = set(modules)
    for package, needs in DEPENDS.items():  # what the wheels need comes pinned too
        if package in modules:
            modules |= needs
    pins = requirement_pins(app)
    requirements = {m: pins[d] for m, d in IMPORTS.items() if m in modules and d in pins}
    torch = pins["torch"] if "torch" in modules else ""
    wheels = {
        name: path
        for name, path in app.bnbook_wheels.items()
        if any(
            name.startswith(d.replace("-", "_") + "-") and DISTRIBUTIONS[d][2] in modules
            for d in DISTRIBUTIONS
        )
    }
    versions = {
        name: wheel_version(wheels, name)
        for name in DISTRIBUTIONS
        if DISTRIBUTIONS[name][2] in modules
    }
    encoded = {name: base64.b64encode(path.read_bytes()).decode() for name, path in wheels.items()}
    template = SETUP_TEMPLATE.read_text("utf-8")
    start = template.index('"""', template.index('"""') + 3) + 3  # after the module docstring
    code = template[: template.index("\n")] + template[start:]
    replacements = {
        "TORCH = ": json.dumps(torch),
        "REQUIREMENTS = ": json.dumps(requirements),
        "PACKAGES = ": json.dumps(versions),
        "WHEELS = ": json.dumps(encoded),
    }
    lines = code.strip("\n").split("\n")
    for index, line in enumerate(lines):
        for prefix, value in replacements.items():
            if line.startswith(prefix):
                lines[index] = prefix + value
    note = SETUP_NOTE.format(title=app.config.project, site=site_url(app))
    return [
        {"cell_type": "markdown", "id": f"{SETUP_ID}-note", "metadata": {}, "source": note},
        {
            "cell_type": "code",
            "execution_count": None,
            "id": SETUP_ID,
            "metadata": {
                "cellView": "form",
                "jupyter": {"source_hidden": True},
                "tags": ["remove-cell"],
            },
            "outputs": [],
            "source": "\n".join(lines) + "\n",
        },
    ]


def wheel_version(wheels: dict[str, Path], distribution: str) -> str:
    prefix = distribution.replace("-", "_") + "-"
    name = next(n for n in wheels if n.startswith(prefix))
    return name[len(prefix) :].split("-")[0]


def fold(cell: dict) -> None:
    """Fold in Jupyter what the page hides (the tags stay, for the page's own build)."""
    tags = cell.get("metadata", {}).get("tags", [])
    folded = {flag for tag in tags for flag in FOLDED.get(tag, ())}
    if cell["cell_type"] != "code":
        folded.discard("outputs_hidden")
    if folded:
        jupyter = cell["metadata"].setdefault("jupyter", {})
        jupyter.update({flag: True for flag in sorted(folded)})


def referenced_widgets(cells: list[dict], state: dict) -> set[str]:
    """Widget models shown by the cells' outputs, and every model those refer to."""
    text = json.dumps([cell.get("outputs", []) for cell in cells])
    todo = set(re.findall(r'"model_id": "([0-9a-f]+)"', text)) & set(state)
    seen: set[str] = set()
    while todo:
        model = todo.pop()
        seen.add(model)
        todo |= set(re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[model]))) - seen
    return seen


def runnable_notebook(app: Sphinx, docname: str, notebook: dict) -> dict:
    """The executed chapter as a notebook that runs anywhere (module docstring)."""
    knowledge = PageKnowledge(app, docname)
    cells = []
    for cell in notebook["cells"]:
        if PAGE_ONLY in cell.get("metadata", {}).get("tags", []):
            continue
        if cell["cell_type"] == "markdown":
            try:
                converted: Converted = to_markdown(cell_source(cell), knowledge)
            except UnknownMarkup as exc:
                raise ExtensionError(f"downloads: {docname}: {exc}") from exc
            if not converted.text.strip():
                continue  # e.g. a solution's end
            cell["source"] = converted.text
            if converted.attachments:
                cell["attachments"] = converted.attachments
        fold(cell)
        cells.append(cell)
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"
    title = app.env.titles[docname].astext()
    notebook["cells"] = [*setup_cells(app, imported_modules(cells), title), *cells]
    widgets = notebook.get("metadata", {}).get("widgets", {})
    key = "application/vnd.jupyter.widget-state+json"
    if key in widgets:
        state = widgets[key]["state"]
        keep = referenced_widgets(cells, state)
        widgets[key]["state"] = {k: v for k, v in state.items() if k in keep}
    return notebook


def rewrite_download(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Give the page's downloadable notebook its set-up cell and plain Markdown."""
    if not context.get("ipynb_source"):  # set by sphinx-book-theme for executed .md pages
        return
    path = Path(app.outdir) / "_sources" / context["ipynb_source"]
    notebook = json.loads(path.read_text(encoding="utf-8"))
    if notebook["cells"] and notebook["cells"][0].get("id") == f"{SETUP_ID}-note":
        return
    notebook = runnable_notebook(app, pagename, notebook)
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# ------------------------------------------------------------------- launch buttons


def repository(app: Sphinx) -> tuple[str, str]:
    """``(url, branch)`` from ``html_theme_options`` (Jupyter Book fills it from _config.yml)."""
    options = app.config.html_theme_options
    return options.get("repository_url", "").rstrip("/"), options.get("repository_branch", "main")


def launch_links(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Colab and Binder open the published notebooks; until then, the menu says so."""
    if not context.get("ipynb_source"):
        return
    _, branch = repository(app)
    source_md = f"/blob/{branch}/{pagename}.md"
    for group in context.get("header_buttons", []):
        buttons = group.get("buttons", []) if isinstance(group, dict) else []
        launchers = [b for b in buttons if b.get("text") in ("Colab", "Binder")]
        for button in launchers:
            url = button.get("url", "")
            if button["text"] == "Colab" and source_md in url:
                button["url"] = url.replace(source_md, f"/blob/{NOTEBOOKS_BRANCH}/{pagename}.ipynb")
            elif button["text"] == "Binder" and "urlpath=" in url:
                base, _, path = url.partition("?urlpath=")
                base = base.rsplit("/", 1)[0] + f"/{NOTEBOOKS_BRANCH}"
                button["url"] = f"{base}?urlpath={path.removesuffix('.md')}.ipynb"
        if launchers and not app.config.bnbook_repository_published:
            download = f"{context['pathto']('_sources', 1)}/{context['ipynb_source']}"
            buttons.append(
                {
                    "type": "link",
                    "text": "Colab and Binder work once the book's repository is published; "
                    "until then, download the notebook (.ipynb) and open it in Jupyter",
                    "tooltip": "Download this chapter as a notebook that runs anywhere",
                    "icon": "fas fa-download",
                    "url": download,
                }
            )


def setup(app: Sphinx) -> dict:
    app.add_config_value("bnbook_repository_published", False, "html")
    app.connect("builder-inited", build_wheels)
    # after sphinx-book-theme (priority 501 and default) has built buttons and copied notebooks
    app.connect("html-page-context", rewrite_download, priority=900)
    app.connect("html-page-context", launch_links, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
