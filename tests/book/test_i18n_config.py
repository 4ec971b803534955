"""_config_zh.yml is _config.yml plus the Chinese edition's keys, and nothing else.

Jupyter Book 1 reads one configuration file (``--config``) and passes no ``-D language``, so
the Chinese edition's file is a whole copy: a setting changed in one and not the other would
make the two editions differ silently. Lines marked ``# zh`` are the only differences.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EN = ROOT / "_config.yml"
ZH = ROOT / "_config_zh.yml"
#: The keys the Chinese edition sets or changes (paths into the YAML).
ZH_KEYS = {
    ("title",),
    ("author",),
    ("html", "baseurl"),
    ("sphinx", "config", "language"),
    ("sphinx", "config", "locale_dirs"),
    ("sphinx", "config", "gettext_compact"),
}


def _flatten(tree, prefix=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flatten(value, (*prefix, key))
    else:
        yield prefix, tree


def test_same_settings_but_the_language_keys():
    en = dict(_flatten(yaml.safe_load(EN.read_text(encoding="utf-8"))))
    zh = dict(_flatten(yaml.safe_load(ZH.read_text(encoding="utf-8"))))
    differ = {key for key in en.keys() | zh.keys() if en.get(key, object()) != zh.get(key)}
    assert differ == ZH_KEYS, f"settings that differ besides the language keys: {differ - ZH_KEYS}"


def test_chinese_keys():
    zh = yaml.safe_load(ZH.read_text(encoding="utf-8"))
    config = zh["sphinx"]["config"]
    assert config["language"] == "zh_CN"
    assert config["locale_dirs"] == ["locales/"]
    assert config["gettext_compact"] is False
    assert zh["html"]["baseurl"].endswith("/zh/")


def test_only_marked_lines_differ():
    """Line by line too: comments aside, every extra or changed line carries `# zh`."""
    en = {line.strip() for line in EN.read_text(encoding="utf-8").splitlines()}
    for line in ZH.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text and not text.startswith("#") and text not in en:
            assert "# zh" in text, f"_config_zh.yml line not in _config.yml and not marked: {line}"
