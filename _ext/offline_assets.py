"""Make every page of the book work on its own: no CDN, no duplicate scripts, runnable notebooks.

A local Sphinx extension (listed in ``_config.yml`` under ``sphinx: local_extensions``).

1. Offline JavaScript. MathJax 3, require.js and the ipywidgets HTML manager come from npm
   (``package.json``; ``make book`` runs ``npm ci``). At the end of the build their entry files
   and the few folders they load lazily are copied from ``node_modules/`` to
   ``_build/html/_static/vendor/``, and ``mathjax_path`` and myst-nb's ``nb_ipywidgets_js``
   point there instead of at cdn.jsdelivr.net / cdnjs. (Not under the book's own ``_static/``:
   Jupyter Book would add every ``.js`` file there to every page.)
2. One copy of each inline script. sphinx-thebe and sphinx-togglebutton register their
   configuration scripts twice, so browsers log "Identifier 'THEBE_JS_URL' has already been
   declared"; duplicates are dropped from each page's script list.
3. Pages that rebuild the same. Widget models get random ids (uuid4) when a chapter runs; they
   are renamed after the page and their order, in the page and in its notebook, and the
   notebook's cell ids likewise, so that a rebuild of unchanged chapters gives the same files.
4. Notebooks that run anywhere. The ``.ipynb`` the download button serves (the executed chapter)
   gets a first cell that installs what the chapters import when it is missing (Colab, Binder,
   a fresh Jupyter): bnlib from the repository (the URL is ``repository.url`` of
   ``_config.yml``, the one place it is set), PyTorch's CPU build, and myst-nb.
   Colab and Binder cannot open the MyST ``.md`` sources, so their launch buttons open these
   notebooks from the ``notebooks`` branch that the GitHub workflow publishes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

VENDOR = "vendor"  # under _static/
#: What to copy: destination under _static/vendor/  →  source under node_modules/.
COPIES = {
    "mathjax/tex-mml-chtml.js": "mathjax/es5/tex-mml-chtml.js",
    "mathjax/input": "mathjax/es5/input",  # TeX extensions, autoloaded by \require etc.
    "mathjax/output/chtml": "mathjax/es5/output/chtml",  # the fonts
    "mathjax/ui": "mathjax/es5/ui",  # the right-click menu, loaded lazily
    "mathjax/a11y": "mathjax/es5/a11y",  # accessibility options of the menu
    "requirejs/require.js": "requirejs/require.js",
    "html-manager": "@jupyter-widgets/html-manager/dist",  # embed-amd.js and its fonts
}
#: Not needed by the pages: source maps, and the html-manager's non-AMD and library bundles.
SKIP = ("*.map", "embed.js", "libembed-amd.js")
MATHJAX_PATH = f"{VENDOR}/mathjax/tex-mml-chtml.js"
IPYWIDGETS_JS = {
    f"{VENDOR}/requirejs/require.js": {},
    # Every widget the book uses (ipywidgets' own controls) is built into embed-amd.js, so it
    # loads no module at all; "cdn-only" stops it probing the page's folder with require.js
    # for one, and the browser tests fail if it ever requests anything off the site.
    f"{VENDOR}/html-manager/embed-amd.js": {"data-jupyter-widgets-cdn-only": ""},
}
NOTEBOOKS_BRANCH = "notebooks"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: The setup cell's code (``install_cell`` fills in the repository and torch's pin).
SETUP_CELL = """\
# Setup: this notebook needs bnlib (the book's library), PyTorch and the rest of
# bnlib's `book` extra (Matplotlib, ipywidgets, scikit-learn, Keras, myst-nb for `glue`).
# On Colab, Binder or a fresh Jupyter, install whichever is missing.
import importlib
import importlib.util

if importlib.util.find_spec("bnlib") is None:
    %pip install --quiet "bnlib @ git+{repo_url}"
if importlib.util.find_spec("torch") is None:  # the CPU build, a smaller download
    %pip install --quiet "{torch}" --index-url {torch_index}
BOOK_EXTRA = {{"matplotlib": "matplotlib", "ipywidgets": "ipywidgets", "sklearn": "scikit-learn",
              "keras": "keras", "myst_nb": "myst-nb"}}
missing = [pip for module, pip in BOOK_EXTRA.items() if importlib.util.find_spec(module) is None]
if missing:
    get_ipython().run_line_magic("pip", "install --quiet " + " ".join(missing))
importlib.invalidate_caches()
import ipywidgets

if int(ipywidgets.__version__.split(".")[0]) < 8:  # an older one was already imported
    print("The explorers need ipywidgets 8: restart the kernel (Colab: Runtime, Restart "
          "session), then run this notebook again.")
try:  # Colab shows ipywidgets 8 through its own widget manager, once enabled
    from google.colab import output

    output.enable_custom_widget_manager()
except ImportError:
    pass
"""


def node_modules(app: Sphinx) -> Path:
    return Path(app.confdir) / "node_modules"


def set_offline_config(app: Sphinx, config) -> None:
    """Point MathJax and the widget manager at the site's own copies."""
    config.mathjax_path = MATHJAX_PATH
    config.nb_ipywidgets_js = IPYWIDGETS_JS


def check_assets(app: Sphinx) -> None:
    missing = [src for src in COPIES.values() if not (node_modules(app) / src).exists()]
    if missing and app.builder.format == "html":
        raise ExtensionError(
            f"offline_assets: {', '.join(missing)} not found under {node_modules(app)}; "
            "run `npm ci` in the book's folder first (make book does)"
        )


def copy_assets(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    vendor = Path(app.outdir) / "_static" / VENDOR
    for dest, src in COPIES.items():
        source, target = node_modules(app) / src, vendor / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(
                source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*SKIP)
            )
        else:
            shutil.copy2(source, target)


def default_theme_mode(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Without a default the theme's mode is "" on a first visit, and pydata-sphinx-theme logs
    "Got invalid theme mode: ." as a console error on every page."""
    if not context.get("default_mode"):
        context["default_mode"] = "light"


def no_favicon_request(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Without an icon, browsers request ``/favicon.ico`` from the server's root, a 404 (and a
    console error) on every page; an empty ``data:`` icon asks for nothing."""
    if not context.get("favicon_url"):
        context["favicon_url"] = "data:,"


def drop_duplicate_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Keep the first of scripts with the same file and attributes (inline body included)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def locate_widget_fonts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Tell require.js where the widget manager lives, so its icon fonts load from the site.

    embed-amd.js finds its fonts relative to its require.js module URL, which by default is
    ``<page folder>/@jupyter-widgets/html-manager/dist/``: a 404 on every page. The mapping
    is relative to the page, so it holds wherever the site is served from.
    """
    scripts = context.get("script_files") or []
    embed = f"_static/{VENDOR}/html-manager/embed-amd.js"
    names = [str(getattr(s, "filename", "") or "") for s in scripts]
    if embed not in names:
        return
    folder = context["pathto"](f"_static/{VENDOR}/html-manager", 1)
    body = f'require.config({{paths: {{"@jupyter-widgets/html-manager/dist": "{folder}"}}}});'
    app.add_js_file(None, body=body)  # appended to this page's scripts ...
    config_script = scripts.pop()
    if getattr(config_script, "attributes", {}).get("body") != body:
        raise ExtensionError("offline_assets: could not add the require.js configuration")
    scripts.insert(names.index(embed), config_script)  # ... and moved before embed-amd.js


def repository(app: Sphinx) -> tuple[str, str]:
    """``(url, branch)`` from ``html_theme_options`` (Jupyter Book fills it from _config.yml)."""
    options = app.config.html_theme_options
    return options.get("repository_url", "").rstrip("/"), options.get("repository_branch", "main")


WIDGET_STATE = re.compile(
    r'<script type="application/vnd\.jupyter\.widget-state\+json">(.*?)</script>', re.DOTALL
)


def stable_widget_ids(text: str, state: dict, name: str) -> str:
    """Rename the widget models of ``state`` in ``text`` after ``name`` and their order."""
    for index, model_id in enumerate(state):
        stable = hashlib.sha1(f"{name}:{index}".encode()).hexdigest()[:32]
        text = text.replace(model_id, stable)
    return text


def stable_page_ids(app: Sphinx, exception: Exception | None) -> None:
    """Give the widget models in every built page, and in its downloadable notebook, ids
    that do not change between builds.

    Both take the page's order (the order the chapter created the widgets): the notebook's
    state is sorted by the random ids, a different order on every build.
    """
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        match = WIDGET_STATE.search(text)
        if match:
            state = json.loads(match.group(1))["state"]
            name = page.relative_to(app.outdir).with_suffix("").as_posix()
            page.write_text(stable_widget_ids(text, state, name), encoding="utf-8")
            notebook = Path(app.outdir) / "_sources" / f"{name}.ipynb"
            if notebook.exists():  # re-sorted (as nbformat writes), now by the new ids
                renamed = json.loads(stable_widget_ids(notebook.read_text("utf-8"), state, name))
                text = json.dumps(renamed, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
                notebook.write_text(text, encoding="utf-8")


def torch_requirement(app: Sphinx) -> str:
    """The ``torch==…`` line of requirements.txt (the torch the book is built with)."""
    requirements = Path(app.confdir) / "requirements.txt"
    lines = requirements.read_text().splitlines() if requirements.exists() else []
    return next((line.strip() for line in lines if line.startswith("torch==")), "torch")


def install_cell(repo_url: str, torch: str = "torch") -> dict:
    """A first notebook cell that installs what the chapters import, when it is missing.

    The chapters import bnlib (from the repository), torch and the rest of bnlib's ``book``
    extra (matplotlib, ipywidgets, sklearn, keras, myst_nb for ``glue``). On
    Colab, Binder or a fresh Jupyter some are missing; where all are importable (a clone with
    ``make setup``, this build) the cell does nothing.
    """
    source = SETUP_CELL.format(repo_url=repo_url, torch=torch, torch_index=TORCH_CPU_INDEX)
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": "install-bnlib",
        "metadata": {"tags": ["remove-cell"]},
        "outputs": [],
        "source": source,
    }


def add_install_cell(path: Path, repo_url: str, torch: str = "torch") -> None:
    """Put the setup cell first, and make cell ids the same on every build (widget ids:
    :func:`stable_page_ids`)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = notebook.get("cells", [])
    if cells and cells[0].get("id") == "install-bnlib":
        return
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"
    notebook["cells"] = [install_cell(repo_url, torch), *cells]
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def notebooks_and_launch_links(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Give the downloadable notebook its setup cell; send Colab and Binder to notebooks."""
    if not context.get("ipynb_source"):  # set by sphinx-book-theme for executed .md pages
        return
    repo_url, branch = repository(app)
    notebook = Path(app.outdir) / "_sources" / context["ipynb_source"]
    add_install_cell(notebook, repo_url, torch_requirement(app))
    source_md = f"/blob/{branch}/{pagename}.md"
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []) if isinstance(group, dict) else []:
            url = button.get("url", "")
            if button.get("text") == "Colab" and source_md in url:
                button["url"] = url.replace(source_md, f"/blob/{NOTEBOOKS_BRANCH}/{pagename}.ipynb")
            elif button.get("text") == "Binder" and "urlpath=" in url:
                base, _, path = url.partition("?urlpath=")
                base = base.rsplit("/", 1)[0] + f"/{NOTEBOOKS_BRANCH}"
                button["url"] = f"{base}?urlpath={path.removesuffix('.md')}.ipynb"


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", set_offline_config, priority=900)
    app.connect("builder-inited", check_assets)
    app.connect("build-finished", copy_assets)
    app.connect("build-finished", stable_page_ids)
    # after sphinx-book-theme (priority 501 and default) has built buttons and copied notebooks
    app.connect("html-page-context", notebooks_and_launch_links, priority=900)
    app.connect("html-page-context", default_theme_mode)
    app.connect("html-page-context", no_favicon_request)
    app.connect("html-page-context", locate_widget_fonts, priority=950)
    app.connect("html-page-context", drop_duplicate_scripts, priority=1000)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
