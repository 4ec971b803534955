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
(Downloadable notebooks and the launch buttons: ``_ext/downloads.py``.)
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


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", set_offline_config, priority=900)
    app.connect("builder-inited", check_assets)
    app.connect("build-finished", copy_assets)
    app.connect("build-finished", stable_page_ids)
    app.connect("html-page-context", default_theme_mode)
    app.connect("html-page-context", no_favicon_request)
    app.connect("html-page-context", locate_widget_fonts, priority=950)
    app.connect("html-page-context", drop_duplicate_scripts, priority=1000)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
