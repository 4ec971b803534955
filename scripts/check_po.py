"""Is the Chinese edition's translation complete for the current source? (README, "中文版")

Exit status 1, with one line per problem, when:

- a page's English prose has a message that ``locales/zh_CN/LC_MESSAGES/<page>.po`` lacks,
  leaves untranslated, or marks fuzzy. The messages are extracted afresh from the current
  source into a temporary folder (``scripts/i18n_pot.py``), so a .po file that ``make po``
  was never run on after a change to the prose is caught too. Code is not translated, so a
  change to code or to the library never trips this;
- a translation drops or changes a role of its message: ``{glue:text}`name```,
  ``{numref}`fig-x```, ``{doc}`...```, … (the Chinese page would lose a computed number or
  a link);
- a figure or widget text of bnbook has no entry in ``book/bnbook/i18n_zh.py``, a text a
  chapter's code puts into its page (``tr(...)``, a ``markdown_table`` header) none in
  ``book/bnbook/i18n_zh_pages.py``, or a text a chapter gave a figure or table had none when
  the Chinese edition was last built (``_build/zh/_build/i18n-missing-labels.txt``, written
  by ``make book``).

    python scripts/check_po.py          (make test runs it)
    python scripts/check_po.py --labels (the missing figure texts as lines to paste into
                                         book/bnbook/i18n_zh.py's ZH, to be translated)
"""

from __future__ import annotations

import ast
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "book")]

from i18n_pot import make_pot  # noqa: E402

LOCALE = ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
MISSING_LABELS = ROOT / "_build" / "zh" / "_build" / "i18n-missing-labels.txt"
#: A MyST role with its content: {glue:text}`m:.4g`, {numref}`fig-pooling`, {doc}`...`.
ROLE = re.compile(r"\{[a-z][a-z:-]*\}`[^`]*`")
#: A role's explicit title, {ref}`the cumulative average <rs-cumulative>`: translated text.
TITLED = re.compile(r"^(\{[a-z][a-z:-]*\}`)[^`<]*<([^`>]+)>`$")


def roles(text: str) -> Counter:
    """The roles of TEXT, each as written but without an explicit title (which is prose, and
    is translated: {ref}`累积平均 <rs-cumulative>` keeps {ref}`the … <rs-cumulative>`'s target)."""
    return Counter(TITLED.sub(r"\1<\2>`", role) for role in ROLE.findall(text))


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _read(path: Path):
    with path.open("rb") as file:
        return read_po(file)


def po_problems(pot_dir: Path, locale: Path = LOCALE) -> list[str]:
    """One line per missing, untranslated or fuzzy message, or role changed in translation."""
    problems = []
    for pot in sorted(pot_dir.rglob("*.pot")):
        docname = pot.relative_to(pot_dir).with_suffix("").as_posix()
        po_path = locale / f"{docname}.po"
        shown = po_path.relative_to(ROOT) if po_path.is_relative_to(ROOT) else po_path
        template = _read(pot)
        ids = [m.id for m in template if m.id]
        if not po_path.exists():
            problems.append(f"{shown}: missing ({len(ids)} messages): run `make po`")
            continue
        catalog = _read(po_path)
        for msgid in ids:
            message = catalog.get(msgid)
            if message is None:
                problems.append(f"{shown}: not in the .po (run `make po`): {_short(msgid)}")
            elif not message.string:
                problems.append(f"{shown}: untranslated: {_short(msgid)}")
            elif message.fuzzy:
                problems.append(f"{shown}: fuzzy: {_short(msgid)}")
            elif roles(msgid) != roles(message.string):
                lost = roles(msgid) - roles(message.string)
                added = roles(message.string) - roles(msgid)
                what = ", ".join([*(f"lost {r}" for r in lost), *(f"added {r}" for r in added)])
                problems.append(f"{shown}: roles differ ({what}): {_short(msgid)}")
    return problems


def missing_labels() -> tuple[list[tuple[str, str]], list[str]]:
    """(where, text) of bnbook's texts without Chinese; the chapters' texts the last Chinese
    build drew without Chinese (that bnbook's own do not include)."""
    from bnbook.i18n import chinese, marked_texts, needs_translation
    from bnbook.i18n_zh import ZH
    from bnbook.i18n_zh_pages import ZH_PAGES

    own = [
        (where, text)
        for text, where in marked_texts().items()
        if needs_translation(text) and not chinese(text)
    ]
    built = []
    if MISSING_LABELS.exists():
        lines = MISSING_LABELS.read_text("utf-8").split("\n")
        recorded = {ast.literal_eval(line) for line in lines if line}
        built = sorted(recorded - set(ZH) - set(ZH_PAGES))
        built = [text for text in built if text not in {text for _, text in own}]
    return own, built


def label_problems() -> list[str]:
    """Figure and widget texts without Chinese (bnbook.i18n), from the source and the build."""
    own, texts = missing_labels()
    problems = [
        f"{where}: no Chinese in book/bnbook/i18n_zh_pages.py: {text!r}"
        if where.startswith(("chapters/", "index"))
        else f"book/bnbook/{where}: no Chinese in i18n_zh.py: {text!r}"
        for where, text in own
    ]
    if texts:
        problems += [
            f"{MISSING_LABELS.relative_to(ROOT)}: a figure text from a chapter has no Chinese "
            f"in book/bnbook/i18n_zh.py: {text!r}"
            for text in texts
        ]
    return problems


def main() -> int:
    if sys.argv[1:] == ["--labels"]:
        own, built = missing_labels()
        for text in [text for _, text in own] + built:
            print(f"    {text!r}: {''!r},")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        status = make_pot(Path(tmp), silent=True)
        if status != 0:
            print(f"check_po: extracting the messages failed (status {status})")
            return 1
        problems = po_problems(Path(tmp) / "pot")
    problems += label_problems()
    for line in problems:
        print(line)
    if problems:
        print(f"check_po: {len(problems)} problems: the Chinese edition is not complete "
              "(README, 中文版: make po, translate, check again)")  # fmt: skip
        return 1
    print("check_po: every message and figure text has its Chinese translation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
