"""Batch norm in the page: the bundle of ``js/`` (``window.bnlibjs``, playground, explorers).

A local Sphinx extension (``_config.yml``, ``sphinx: local_extensions``).

- When the HTML build starts, ``node js/build.js`` bundles ``js/main.js`` and its imports with
  esbuild (an npm dev dependency, ``make book`` runs ``npm ci``) into one classic script,
  ``_static/bnlibjs/bnlibjs.js``, beside its stylesheet ``bnlibjs.css``: the site serves them
  itself, nothing comes from a CDN.
- Only the pages that use it load it: a page whose body has an element with a
  ``data-bnbook-live`` attribute (a chapter writes ``<div class="bnbook-live"
  data-bnbook-live="eps"></div>`` in a Markdown cell of its own, tagged ``page-only``) gets the
  script (deferred) and the stylesheet. Jupyter shows nothing for that empty element; the
  chapter's ipywidgets explorer is the live twin there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

FOLDER = "bnlibjs"  # under _static/
MARKER = "data-bnbook-live"


def build_bundle(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    node = shutil.which("node")
    if node is None:
        raise ExtensionError("bnlibjs: node is missing: install Node.js and npm (make book does)")
    root = Path(app.confdir)
    if not (root / "node_modules" / "esbuild").exists():
        raise ExtensionError(
            f"bnlibjs: esbuild not found under {root / 'node_modules'}; run `npm ci` in the "
            "book's folder first (make book does)"
        )
    target = Path(app.outdir) / "_static" / FOLDER
    done = subprocess.run(
        [node, str(root / "js" / "build.js"), str(target)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ExtensionError(f"bnlibjs: bundling js/ failed:\n{done.stdout}{done.stderr}")


def add_to_pages_that_use_it(app: Sphinx, pagename, templatename, context, doctree) -> None:
    if MARKER in (context.get("body") or ""):
        app.add_js_file(f"{FOLDER}/bnlibjs.js", defer="defer")
        app.add_css_file(f"{FOLDER}/bnlibjs.css")


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", build_bundle)
    app.connect("html-page-context", add_to_pages_that_use_it)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
