"""The book in two languages (README, "中文版"): English (``_config.yml``) and Simplified
Chinese (``_config_zh.yml``: ``language: zh_CN``, the prose from ``locales/zh_CN``).

A local Sphinx extension, in both configurations:

- ``BNBOOK_LANG``: set from Sphinx's ``language`` before the chapters execute, so the kernels
  (which inherit the environment) draw figures in the page's language (``bnbook.i18n``).
- **Glued numbers in translated prose**: Sphinx parses each translated paragraph (msgstr) as
  a small document of its own, after the page was parsed, and myst-nb parses it with its
  plain Markdown parser, whose ``{glue:text}`` / ``{glue}`` roles find no notebook
  (``document["nb_renderer"]``: "No key ... found in glue data"). The page's notebook
  renderer is kept while the page is read, and lent to its translated paragraphs, so their
  numbers are the ones the page's code computed.
"""

from __future__ import annotations

import os

from sphinx.application import Sphinx


def edition(language: str | None) -> str:
    """ "zh" for a Chinese ``language`` (zh_CN, zh-CN, zh), else "en"."""
    return "zh" if (language or "").lower().startswith("zh") else "en"


def set_language(app: Sphinx, config) -> None:
    os.environ["BNBOOK_LANG"] = edition(config.language)


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
    _keep_renderers()
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
