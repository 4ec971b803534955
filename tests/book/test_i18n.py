"""The figures and widgets in the reader's language (``bnbook.i18n``, README "中文版").

Every text bnbook gives to ``t(...)`` (or marks with ``N_(...)``) has a Chinese entry in
``bnbook/i18n_zh.py`` with the same placeholders; English is the text itself; and in the
Chinese edition every figure draws with no missing glyph (a missing glyph is a box).
"""

from __future__ import annotations

import io
import string
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest

from bnbook import i18n, style
from bnbook.i18n_zh import ZH
from bnbook.i18n_zh_pages import ZH_PAGES

source_texts = i18n.marked_texts


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_the_scan_finds_the_figure_texts():
    texts = source_texts()
    assert "step (batches seen)" in texts  # running_figures.py
    assert "test accuracy (%)" in texts  # train_figures.py, after_figures.py
    assert "Momentum on a drifting stream" in texts  # widgets.py
    assert len(texts) > 100


def test_every_figure_text_has_a_chinese_entry():
    missing = i18n.missing_chinese()
    assert missing == [], f"{len(missing)} texts without Chinese (bnbook/i18n_zh.py):\n" + (
        "\n".join(missing)
    )


def test_chinese_entries_keep_the_placeholders():
    entries = [*ZH.items(), *ZH_PAGES.items()]
    wrong = [key for key, value in entries if value and fields(key) != fields(value)]
    assert wrong == []


def test_the_scan_finds_the_texts_chapters_put_into_pages():
    """Literals given to ``tr(...)`` in a chapter's code cells, and a ``markdown_table``
    header's words (not its `code`), with the page and line."""
    texts = source_texts()
    assert texts["from {lo:g} to {hi:g}"].startswith("chapters/06_training.md:")
    assert "moves test accuracy by at most {points:.1f} points" in texts  # chapter 7
    assert "image 0 depends on image 1" in texts  # chapter 1's markdown_table header
    assert "Keras `BatchNormalization`" in texts and "" not in texts
    page, line = texts["values within 2 % of the bound"].split(":")
    assert (
        "values within 2 % of the bound"
        in (i18n.ROOT / page).read_text(encoding="utf-8").splitlines()[int(line) - 1]
    )


def test_chapter_text_comes_from_the_pages_table(monkeypatch):
    monkeypatch.setenv(i18n.ENV, "zh")
    monkeypatch.setitem(ZH_PAGES, "from {lo:g} to {hi:g}", "{lo:g} 到 {hi:g}")
    assert i18n.t("from {lo:g} to {hi:g}", lo=0.01, hi=1.6) == "0.01 到 1.6"
    monkeypatch.setenv(i18n.ENV, "en")
    assert i18n.t("from {lo:g} to {hi:g}", lo=0.01, hi=1.6) == "from 0.01 to 1.6"


def test_english_is_the_text_itself(monkeypatch):
    monkeypatch.delenv(i18n.ENV, raising=False)
    assert i18n.lang() == "en"
    assert i18n.t("running_mean, channel {c}", c=3) == "running_mean, channel 3"
    assert i18n.t("x {not a field}") == "x {not a field}"  # no fields: no formatting


def test_chinese_comes_from_the_table(monkeypatch):
    monkeypatch.setenv(i18n.ENV, "zh_CN")
    monkeypatch.setitem(ZH, "channel {c}", "通道 {c}")
    assert i18n.lang() == "zh"
    assert i18n.t("channel {c}", c=2) == "通道 2"


def test_missing_chinese_is_recorded_for_check_po(monkeypatch, tmp_path):
    record = tmp_path / "missing.txt"
    monkeypatch.setenv(i18n.ENV, "zh")
    monkeypatch.setenv("BNBOOK_I18N_MISSING", str(record))
    monkeypatch.delitem(ZH, "no such label", raising=False)
    assert i18n.t("no such label") == "no such label"
    assert i18n.t(r"$\gamma$") == r"$\gamma$"  # math alone needs no translation
    assert record.read_text(encoding="utf-8").splitlines() == ["'no such label'"]


def test_chinese_style_falls_back_to_noto_sans_cjk(monkeypatch):
    monkeypatch.setenv(i18n.ENV, "zh")
    assert style.book_style()["font.family"] == style.CJK_FONTS
    monkeypatch.setenv(i18n.ENV, "en")
    assert "font.family" not in style.book_style()


def _cjk_font_installed() -> bool:
    return any(Path(p).exists() for p in style.CJK_FONT_FILES)


@pytest.mark.skipif(not _cjk_font_installed(), reason="fonts-noto-cjk missing (make book)")
def test_chinese_figure_texts_have_every_glyph(monkeypatch, caplog):
    """Every Chinese entry (and the glossary's terms) drawn in the book's style: matplotlib
    warns "Glyph ... missing" for a character no font of the style has (mathtext, for a text
    with $…$, logs it instead)."""
    monkeypatch.setenv(i18n.ENV, "zh")
    texts = [
        *ZH.values(),
        *ZH_PAGES.values(),
        "批量归一化：运行均值、运行方差、动量、通道 0，σ² = 1e-05，γ，ε",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with style.figure_style():
            fig, ax = plt.subplots(figsize=(style.FULL_WIDTH, 2))
            for i, text in enumerate(texts):
                ax.text(0, i, text)
            fig.canvas.draw()
            plt.close(fig)
    assert missing_glyphs(caplog) == []


@pytest.mark.skipif(not _cjk_font_installed(), reason="fonts-noto-cjk missing (make book)")
def test_every_book_figure_draws_in_chinese(monkeypatch, caplog):
    """The book's figures (tests/book/test_style.py's set) drawn in the Chinese edition: no
    missing glyph, and no text smaller than the body text."""
    from tests.book.test_style import book_figures

    monkeypatch.setenv(i18n.ENV, "zh")
    problems = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for name, fig in book_figures(_histories()):
            problems += [f"{name}: {text}" for text in style.too_small_texts(fig)]
            fig.savefig(io.BytesIO(), format="png")
            plt.close(fig)
    assert problems == []
    assert missing_glyphs(caplog) == []


def missing_glyphs(caplog) -> list[str]:
    """What matplotlib logged about glyphs no font has: mathtext logs "Font ... does not
    have a glyph for ..." (a box on the figure) rather than warning."""
    return [r.getMessage() for r in caplog.records if "glyph" in r.getMessage().lower()]


def _histories():
    from bnbook import train

    data = train.load_digits_split()
    return [
        train.train(train.make_cnn(norm, seed=0), data, 0.05, 10, 16, 0, eval_every=5,
                    record_activations_every=5)
        for norm in ("batch", "none")
    ]  # fmt: skip


matplotlib.use("Agg")
