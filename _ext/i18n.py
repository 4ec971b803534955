"""The book in two languages (README, "中文版"): English (``_config.yml``) and Simplified
Chinese (``_config_zh.yml``: ``language: zh_CN``, the prose from ``locales/zh_CN``).

A local Sphinx extension, in both configurations:

- ``BNBOOK_LANG``: set from Sphinx's ``language`` before the chapters execute, so the kernels
  (which inherit the environment) draw figures in the page's language (``bnbook.i18n``).
"""

from __future__ import annotations

import os

from sphinx.application import Sphinx


def edition(language: str | None) -> str:
    """ "zh" for a Chinese ``language`` (zh_CN, zh-CN, zh), else "en"."""
    return "zh" if (language or "").lower().startswith("zh") else "en"


def set_language(app: Sphinx, config) -> None:
    os.environ["BNBOOK_LANG"] = edition(config.language)


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", set_language)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
