"""MyST Markdown to the plain Markdown that Jupyter, Colab and GitHub render.

A chapter's Markdown cells use markup that only the book's build understands: glued values
(``{glue:text}`key:.3f```), cross-references (``{numref}``, ``{doc}``, ``{ref}``, links to
``.md`` files), targets (``(label)=``), exercises and solutions (sphinx-exercise's
directives, gated ones included), dropdowns, admonitions and ``{literalinclude}``. In a
downloaded notebook each becomes what the page shows, in plain Markdown: the value as text,
a figure glue as its image, a reference as its text linked to the page on the book's site,
an exercise as a bold title, a solution or dropdown as an HTML ``<details>`` block, the
included source as a code block.

:func:`to_markdown` does it, given a :class:`Book` that answers what the page knows (glued
values, titles, numbers, the site's address, included files); ``_ext/downloads.py`` builds
one from Sphinx's environment. Markup it does not know raises :class:`UnknownMarkup`, so a
chapter that starts using something new fails the build instead of shipping raw MyST.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Protocol

import yaml


class UnknownMarkup(ValueError):
    """MyST markup with no plain-Markdown rendering here: add one to this module."""


class Book(Protocol):
    """What a chapter's page knows, for the download of that chapter."""

    def glued(self, key: str) -> dict:
        """The glued mime bundle ``key`` (``{"text/plain": ..., "image/png": ...}``)."""

    def doc(self, target: str) -> tuple[str, str]:
        """(title, URL on the site) of the page ``target`` (relative to this page)."""

    def ref(self, label: str) -> tuple[str, str]:
        """(title, URL) of the section or figure labelled ``label``."""

    def number(self, label: str) -> tuple[str, str]:
        """(e.g. "Fig. 1.2" or "Exercise 4.1", URL) of the numbered thing ``label``."""

    def link(self, target: str) -> str:
        """The URL for a Markdown link to a source file (``03_running_stats.md#x``)."""

    def include(self, argument: str, options: dict[str, str]) -> str:
        """The text a ``{literalinclude}`` with these argument and options shows."""


@dataclass
class Converted:
    """A cell's plain Markdown and the images it shows (Jupyter cell attachments)."""

    text: str
    attachments: dict[str, dict[str, str]] = field(default_factory=dict)


#: A role, or a span of inline code (left as it is).
INLINE = re.compile(
    r"\{(?P<name>[a-z][\w:+-]*)\}`(?P<content>[^`]*)`|(?P<ticks>`+)(?!`).+?(?<!`)(?P=ticks)(?!`)",
    re.DOTALL,
)
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")
TARGET = re.compile(r"^\((?P<label>[^()\s]+)\)=\s*$")
FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}\s*(?P<argument>.*?)\s*$")
CODE_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})")
#: Directives shown as a quoted block under their title (Sphinx's admonitions).
ADMONITIONS = {
    "admonition": "",
    "note": "Note",
    "tip": "Tip",
    "hint": "Hint",
    "important": "Important",
    "warning": "Warning",
    "caution": "Caution",
    "attention": "Attention",
    "danger": "Danger",
    "error": "Error",
    "seealso": "See also",
}
#: Markup that must not survive in a download (tests/site/test_downloads.py looks for it).
LEFTOVER = re.compile(r"\{[a-z][\w:+-]*\}`|^(`{3,}|:{3,})\{|^\([^()\s]+\)=\s*$", re.MULTILINE)


def link(text: str, url: str) -> str:
    return f"[{text}]({url})" if url else text


def escape(text: str) -> str:
    """Text that Markdown shows as it is (a glued value such as ``2*x_1``)."""
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


class Converter:
    def __init__(self, book: Book) -> None:
        self.book = book
        self.attachments: dict[str, dict[str, str]] = {}

    # ----------------------------------------------------------------------------- roles

    def glue_text(self, content: str) -> str:
        if "::" in content:
            raise UnknownMarkup(f"glue from another page ({content!r}) is not supported")
        key, _, spec = content.rpartition(":") if ":" in content else (content, "", "")
        return escape(format_plain_text(self.glued_text(key), spec))

    def glued_text(self, key: str) -> str:
        bundle = self.book.glued(key)
        if "text/plain" not in bundle:
            raise UnknownMarkup(f"glue {key!r} has no text/plain value")
        return bundle["text/plain"]

    def image(self, key: str, alt: str) -> str:
        """A glued figure as a cell attachment (what Jupyter and Colab show offline)."""
        bundle = self.book.glued(key)
        for mime in ("image/png", "image/jpeg", "image/svg+xml"):
            if mime in bundle:
                data = bundle[mime]
                if mime == "image/svg+xml":  # attachments hold base64, as for the others
                    data = base64.b64encode(data.encode()).decode()
                extension = mime.split("/")[1].split("+")[0]
                name = f"{key}-{hashlib.sha1(data.encode()).hexdigest()[:8]}.{extension}"
                self.attachments[name] = {mime: data}
                return f"![{alt or key}](attachment:{name})"
        return escape(self.glued_text(key))

    def role(self, match: re.Match) -> str:
        name, content = match["name"], match["content"]
        explicit = EXPLICIT.match(content)
        text, target = (explicit["text"], explicit["target"]) if explicit else ("", content)
        if name == "glue:text":
            return self.glue_text(content)
        if name in ("glue", "glue:any"):
            return self.image(content, "")
        if name == "glue:md":
            return self.glued_text(content.partition(":")[0])
        if name == "doc":
            title, url = self.book.doc(target)
            return link(text or title, url)
        if name == "ref":
            title, url = self.book.ref(target)
            return link(text or title, url)
        if name == "numref":
            number, url = self.book.number(target)
            if text:  # "Figure %s" or "Figure {number}"
                digits = number.split(" ", 1)[-1]
                number = text.replace("%s", digits).replace("{number}", digits)
            return link(number, url)
        if name in ("math", "eq"):
            return f"${content}$"
        if name in ("code", "literal", "samp", "file", "command"):
            return f"`{content}`"
        if name in ("sub", "sup", "kbd", "abbr"):
            tag = {"abbr": "abbr"}.get(name, name)
            return f"<{tag}>{content}</{tag}>"
        raise UnknownMarkup(f"the role {{{name}}} has no plain-Markdown rendering")

    def inline(self, text: str) -> str:
        """Roles, and links to source files outside inline code."""
        out, last = [], 0
        for match in INLINE.finditer(text):
            out.append(LINK.sub(self.link, text[last : match.start()]))
            out.append(self.role(match) if match["name"] else match[0])
            last = match.end()
        out.append(LINK.sub(self.link, text[last:]))
        return "".join(out)

    def link(self, match: re.Match) -> str:
        target = match["target"]
        if target.startswith("#"):  # a label (another chapter's section), or a heading here
            try:
                return link(match["text"], self.book.ref(target[1:])[1])
            except UnknownMarkup:
                return match[0]
        if re.match(r"^[a-z][\w+.-]*:", target):
            return match[0]  # https:, mailto:, attachment:
        return link(match["text"], self.book.link(target))

    # ------------------------------------------------------------------------ directives

    def directive(self, name: str, argument: str, options: dict, body: str) -> str:
        if name in ("exercise", "exercise-start"):
            number, _ = self.book.number(options["label"]) if "label" in options else ("", "")
            title = f"**{number or 'Exercise'}**" + (
                f" ({self.inline(argument)})" if argument else ""
            )
            return title + ("\n\n" + self.convert(body) if body.strip() else "")
        if name in ("exercise-end", "solution-end"):
            return ""
        if name in ("solution", "solution-start"):
            number, _ = self.book.number(argument) if argument else ("", "")
            title = f"Solution to {number}" if number else "Solution"
            if name == "solution-start":  # the solution is the cells up to solution-end
                return f"**{title}**" + ("\n\n" + self.convert(body) if body.strip() else "")
            return details(title, self.convert(body))
        if name == "dropdown":
            return details(self.inline(argument) or "Details", self.convert(body))
        if name in ADMONITIONS:
            title = self.inline(argument) or ADMONITIONS[name]
            quoted = (f"**{title}**\n\n" if title else "") + self.convert(body)
            return "\n".join(f"> {line}".rstrip() for line in quoted.splitlines())
        if name == "literalinclude":
            language = options.get("language", "")
            code = self.book.include(argument, options).rstrip("\n")
            fence = "````" if "```" in code else "```"
            return f"{fence}{language}\n{code}\n{fence}"
        if name in ("code-block", "code", "sourcecode"):
            return f"```{argument}\n{body.rstrip()}\n```"
        if name == "math":
            return f"$$\n{body.strip()}\n$$"
        if name == "glue:figure":
            caption = self.convert(body).strip()
            image = self.image(argument, options.get("alt", caption))
            return image + (f"\n\n*{caption}*" if caption else "")
        if name in ("glue", "glue:any"):
            return self.image(argument, options.get("alt", ""))
        if name == "glue:math":
            return f"$$\n{self.glued_text(argument).strip()}\n$$"
        raise UnknownMarkup(f"the directive {{{name}}} has no plain-Markdown rendering")

    # ------------------------------------------------------------------------- the text

    def convert(self, text: str) -> str:
        lines = text.split("\n")
        out: list[str] = []
        prose: list[str] = []

        def flush():
            if prose:
                out.append(self.inline("\n".join(prose)))
                prose.clear()

        index = 0
        while index < len(lines):
            line = lines[index]
            directive = FENCE.match(line)
            code = CODE_FENCE.match(line)
            if directive:
                flush()
                end = closing(lines, index, directive["fence"])
                options, body = split_options(lines[index + 1 : end])
                out.append(self.directive(directive["name"], directive["argument"], options, body))
                index = end + 1
            elif code:  # a code block: copied as it is
                flush()
                end = closing(lines, index, code["fence"])
                out.append("\n".join(lines[index : end + 1]))
                index = end + 1
            elif TARGET.match(line):  # (label)= : the page's anchor, nothing to show
                index += 1
                if index < len(lines) and not lines[index].strip() and not prose:
                    index += 1
            elif line.startswith("%"):  # a MyST comment
                index += 1
            else:
                prose.append(line)
                index += 1
        flush()
        return "\n".join(out)


def details(summary: str, body: str) -> str:
    """A block that Jupyter, Colab and GitHub show folded, as the page's dropdowns are."""
    return f"<details>\n<summary>{summary}</summary>\n\n{body.strip()}\n\n</details>"


def closing(lines: list[str], start: int, fence: str) -> int:
    """The index of the line that closes the fence opened at ``start`` (nested ones skipped)."""
    char, length = fence[0], len(fence)
    depth = 0
    for index in range(start + 1, len(lines)):
        stripped = lines[index].strip()
        opener = FENCE.match(stripped) or CODE_FENCE.match(stripped)
        if stripped and set(stripped) == {char} and len(stripped) >= length and not depth:
            return index
        if opener and opener["fence"][0] == char and stripped != opener["fence"]:
            depth += 1  # a nested fence with an info string opens; its bare twin closes it
        elif stripped and set(stripped) == {char} and depth:
            depth -= 1
    raise UnknownMarkup(f"unclosed {fence} fence: {lines[start]!r}")


def split_options(lines: list[str]) -> tuple[dict, str]:
    """A directive's options (``:key: value`` lines or a ``---`` block; values read as YAML,
    as MyST does) and its body."""
    if lines and lines[0].strip() == "---":
        end = lines.index("---", 1)
        options = yaml.safe_load("\n".join(lines[1:end])) or {}
        return options, "\n".join(lines[end + 1 :]).strip("\n")
    index, options = 0, {}
    while index < len(lines) and (match := re.match(r"^:([\w-]+):\s*(.*)$", lines[index])):
        options[match[1]] = yaml.safe_load(match[2]) if match[2].strip() else None
        index += 1
    return options, "\n".join(lines[index:]).strip("\n")


def format_plain_text(text: str, spec: str) -> str:
    """A glued value as ``{glue:text}`` prints it (myst_nb.core.variables.format_plain_text)."""
    from myst_nb.core.variables import format_plain_text as myst_format

    return myst_format(text, spec or "s")


def to_markdown(text: str, book: Book) -> Converted:
    """A Markdown cell's MyST as plain Markdown, and the images it now shows."""
    converter = Converter(book)
    converted = converter.convert(text)
    converted = re.sub(r"\n{3,}", "\n\n", converted).strip("\n")
    return Converted(converted, converter.attachments)
