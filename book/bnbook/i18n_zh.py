"""The Chinese words of the book's figures and widgets (:func:`bnbook.i18n.t`).

Keyed by the English template exactly as given to ``t(...)`` in bnbook's modules, with the
same ``{placeholders}``; terms as in ``locales/zh_CN/GLOSSARY.md`` (批量归一化, 运行均值,
动量, …). Code names (running_mean, bn.train(), BatchNorm2d) and math stay as they are.
``tests/book/test_i18n.py`` lists every text that has no entry here; ``make check-po`` also
lists the texts chapters pass to figure functions (titles, legend names such as "CNN",
"block 1", "8 per device") that the last Chinese build drew without an entry. A name that
stays as it is in Chinese (CNN, Welford, bnlib.batch_stats) gets an entry equal to its key.
"""

from __future__ import annotations

ZH: dict[str, str] = {}
