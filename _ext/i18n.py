"""The book in two languages (README, "中文版"): English (``_config.yml``) and Simplified
Chinese (``_config_zh.yml``: ``language: zh_CN``, the prose from ``locales/zh_CN``).

A local Sphinx extension, in both configurations:

- ``BNBOOK_LANG``: set from Sphinx's ``language`` before the chapters execute, so the kernels
  (which inherit the environment) draw figures in the page's language (``bnbook.i18n``); a
  Chinese build also sets ``BNBOOK_I18N_MISSING`` to a file beside its output folder, where
  the kernels note each figure text that has no Chinese yet.
- **Glued numbers in translated prose**: Sphinx parses each translated paragraph (msgstr) as
  a small document of its own, after the page was parsed, and myst-nb parses it with its
  plain Markdown parser, whose ``{glue:text}`` / ``{glue}`` roles find no notebook
  (``document["nb_renderer"]``: "No key ... found in glue data"). The page's notebook
  renderer is kept while the page is read, and lent to its translated paragraphs, so their
  numbers are the ones the page's code computed.
- **A language switch on every page**: a link in the page's header buttons to the same page
  in the other edition (English at the site's root, Chinese under ``zh/``: ``make book``),
  its text in its own language ("中文", "English") with ``lang`` and ``hreflang``, so its
  accessible name is what it shows; a plain link, so Tab and Enter reach it. The page's
  ``<head>`` names the other edition as ``<link rel="alternate" hreflang>`` too; myst-nb's
  prompts on folded cells ("Show code cell source") are put in Chinese. Sphinx sets
  ``<html lang>`` from ``language`` ("zh-CN" on the Chinese pages).
- **The sidebar's part captions** (``_toc.yml`` ``caption:``): sphinx-external-toc inserts
  the root page's toctrees after Sphinx translated the page, so their captions (extracted
  into ``index.po`` all the same) stayed English on every Chinese page; they are translated
  from the root page's catalogue once the page is read.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from sphinx.application import Sphinx

#: Where the Chinese edition lives, below the English one's root.
ZH_DIR = "zh"
#: The other edition: (its lang attribute, the link's text, its position from a page's root).
OTHER = {"en": ("zh-CN", "中文", ZH_DIR + "/"), "zh": ("en", "English", "../")}
#: Inserted after it: the theme's row of buttons above the article (every page has one).
ANCHOR = '<div class="article-header-buttons">'
MARKER = "bnbook-lang-switch"
#: The theme's and the extensions' words that the themes' Chinese catalogues lack (or give in
#: traditional characters), as an attribute's value or an element's whole text.
UI_TEXT_ZH = {
    "Search this book...": "在本书中搜索…",
    "Toggle primary sidebar": "显示或隐藏左侧栏",
    "Toggle secondary sidebar": "显示或隐藏右侧栏",
    "Launch interactive content": "在线运行",
    "Launch on Binder": "在 Binder 上运行",
    "Launch on Colab": "在 Colab 上运行",
    "Color mode": "颜色模式",
    "Link to this heading": "链接到此标题",
    "Link to this image": "链接到此图",
    "Link to this equation": "链接到此公式",
    "Link to this table": "链接到此表",
    "Link to this code": "链接到此代码",
    "列印成 PDF": "打印为 PDF",
    "Download this chapter as a notebook that runs anywhere": "下载本章的笔记本（处处可运行）",
    "Colab and Binder work once the book's repository is published; until then, download the "
    "notebook (.ipynb) and open it in Jupyter": "本书的代码仓库发布后即可使用 Colab 和 Binder；"
    "在此之前，请下载笔记本（.ipynb）并在 Jupyter 中打开",
}
#: myst-nb's prompts on folded cells, which Sphinx's translations do not cover.
UI_ZH = {
    f"{verb} code cell {what}": f"{zh_verb}{zh_what}"
    for verb, zh_verb in (("Show", "显示"), ("Hide", "隐藏"))
    for what, zh_what in (
        ("source", "代码"),
        ("outputs", "输出"),
        ("output", "输出"),
        ("content", "代码与输出"),
    )
}


def edition(language: str | None) -> str:
    """ "zh" for a Chinese ``language`` (zh_CN, zh-CN, zh), else "en"."""
    return "zh" if (language or "").lower().startswith("zh") else "en"


STATIC = Path(__file__).with_name("static")


#: Beside the build's output folder: the figure texts a Chinese build found no Chinese for
#: (``bnbook.i18n.t`` appends them; ``scripts/check_po.py`` lists them).
MISSING_LABELS = "i18n-missing-labels.txt"


def set_language(app: Sphinx, config) -> None:
    os.environ["BNBOOK_LANG"] = edition(config.language)
    missing = Path(app.outdir).parent / MISSING_LABELS
    if edition(config.language) == "zh":
        missing.parent.mkdir(parents=True, exist_ok=True)
        missing.write_text("", encoding="utf-8")
        os.environ["BNBOOK_I18N_MISSING"] = str(missing)
    else:
        os.environ.pop("BNBOOK_I18N_MISSING", None)
    if str(STATIC) not in map(str, config.html_static_path):
        config.html_static_path.append(str(STATIC))


def translate_toc_captions(app: Sphinx, doctree) -> None:
    """On a Chinese build, the captions of a page's toctrees from the page's catalogue."""
    if edition(app.config.language) != "zh":
        return
    from sphinx import addnodes
    from sphinx.locale import init as init_locale
    from sphinx.util.i18n import docname_to_domain

    toctrees = [node for node in doctree.findall(addnodes.toctree) if node.get("caption")]
    if not toctrees:
        return
    dirs = [str(Path(app.srcdir, folder)) for folder in app.config.locale_dirs]
    domain = docname_to_domain(app.env.docname, app.config.gettext_compact)
    catalog, found = init_locale(dirs, app.config.language, domain)
    if not found:
        return
    for node in toctrees:
        caption = catalog.gettext(node["caption"])
        node["caption"] = caption
        node["rawcaption"] = caption


def other_edition_href(pagename: str, this: str) -> str:
    """The link from page PAGENAME of edition THIS ("en"/"zh") to the same page in the other."""
    up = "../" * pagename.count("/")
    return f"{up}{OTHER[this][2]}{pagename}.html"


def switch_html(pagename: str, this: str) -> tuple[str, str]:
    """(the header link, the head's alternate link) for a page of edition THIS."""
    lang, text, _ = OTHER[this]
    href = other_edition_href(pagename, this)
    link = (
        f'<a class="btn btn-sm {MARKER}" href="{href}" hreflang="{lang}" lang="{lang}">{text}</a>'
    )
    return link, f'<link rel="alternate" hreflang="{lang}" href="{href}" />'


def add_switch(text: str, pagename: str, this: str) -> str:
    """TEXT (a page's HTML) with the language switch, once (and myst-nb's prompts in
    Chinese on a Chinese page)."""
    if this == "zh":
        for english, chinese in UI_ZH.items():
            text = text.replace(
                f'admonition-title">{english}</p>', f'admonition-title">{chinese}</p>'
            )
        for english, chinese in UI_TEXT_ZH.items():
            text = text.replace(f'="{html.escape(english)}"', f'="{html.escape(chinese)}"')
            text = text.replace(f">{english}<", f">{html.escape(chinese, quote=False)}<")
    if MARKER in text or ANCHOR not in text:
        return text
    link, alternate = switch_html(pagename, this)
    text = text.replace(ANCHOR, ANCHOR + "\n" + link, 1)
    return text.replace("</head>", alternate + "\n</head>", 1)


def add_switches(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    this = edition(app.config.language)
    for pagename in [*app.env.found_docs, "genindex", "search"]:
        page = Path(app.outdir) / f"{pagename}.html"
        if page.exists():
            text = page.read_text(encoding="utf-8")
            page.write_text(add_switch(text, pagename, this), encoding="utf-8")


#: The notebook renderer of the page being read: (docname, renderer).
_CURRENT: dict[str, object] = {}


def _keep_renderers() -> None:
    """Wrap myst-nb's parser: keep each page's renderer, lend it to translated paragraphs."""
    import myst_nb.sphinx_ as nb_sphinx

    parser = nb_sphinx.Parser
    if getattr(parser.parse, "bnbook_i18n", False):
        return
    parse, load_renderer = parser.parse, nb_sphinx.load_renderer

    def recording_load_renderer(name):
        cls = load_renderer(name)

        def make(*args, **kwargs):
            renderer = cls(*args, **kwargs)
            _CURRENT["renderer"] = renderer
            return renderer

        return make

    def parse_keeping_renderer(self, inputstring, document):
        env = getattr(document.settings, "env", None) or self.env
        if not document.current_source.endswith("<translated>"):
            _CURRENT.clear()
            parse(self, inputstring, document)
            if "renderer" in _CURRENT:
                _CURRENT["docname"] = env.docname
            return
        lend = _CURRENT.get("docname") == env.docname and "nb_renderer" not in document
        if lend:
            document.attributes["nb_renderer"] = _CURRENT["renderer"]
        try:
            parse(self, inputstring, document)
        finally:
            if lend:
                document.attributes.pop("nb_renderer", None)

    parse_keeping_renderer.bnbook_i18n = True
    nb_sphinx.load_renderer = recording_load_renderer
    parser.parse = parse_keeping_renderer


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", set_language)
    app.connect("doctree-read", translate_toc_captions)
    app.connect("build-finished", add_switches)
    app.add_css_file("bnbook-i18n.css")  # _ext/static (accessible.py adds the folder)
    _keep_renderers()
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
