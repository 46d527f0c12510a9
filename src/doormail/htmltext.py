"""The readable plain text of an HTML body, for a mail's `text/plain` part: paragraphs and `<br>`
become line breaks, links stay as "text (url)", list items as "- item", entities are decoded."""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

# Elements whose content is not text a reader sees.
_HIDDEN = frozenset({"head", "title", "style", "script", "template", "noscript"})
# Elements that stand apart from what surrounds them by a blank line, or by a line break.
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "blockquote", "pre"}
    | {"figure", "address", "fieldset", "form"}
)
_LINES = frozenset(
    {"div", "li", "tr", "dt", "dd", "section", "article", "header", "footer", "main", "nav"}
    | {"aside", "caption", "figcaption", "hgroup", "details", "summary", "center"}
)
# HTML collapses only ASCII white space; U+00A0 (&nbsp;) is kept apart from it.
_WHITESPACE = re.compile(r"[ \t\n\r\f]+")


class _TextWriter(HTMLParser):
    """Collects text with pending line breaks and spaces, so that nested blocks never pile up
    blank lines and words never run together."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._breaks = 0
        self._space = False
        self._hidden = 0
        self._pre = 0
        self._lists: list[int | None] = []  # None for <ul>, the next number for <ol>
        self._links: list[tuple[str, int]] = []  # (href, index of the link's first part)

    # -- what the parser calls

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self._line_break()
        elif tag == "hr":
            self._block(2)
            self._write("-" * 20)
            self._block(2)
        elif tag == "li":
            self._list_item()
        elif tag in ("ul", "ol"):
            self._block(2 if not self._lists else 1)
            self._lists.append(None if tag == "ul" else _start(attrs))
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self.parts)))
        elif tag == "img":
            self._write(dict(attrs).get("alt") or "")
        elif tag in ("td", "th"):
            self._space = True
        else:
            self._open_block(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HIDDEN:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._block(2 if not self._lists else 1)
        elif tag == "a":
            self._close_link()
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self._block(2)
        elif tag in _PARAGRAPHS:
            self._block(2)
        elif tag in _LINES:
            self._block(1)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._pre:
            self._write(data, raw=True)
            return
        words = _WHITESPACE.split(data)
        if words[0] == "":
            self._space = True
        text = " ".join(word for word in words if word)
        if text:
            self._write(text)
        if words[-1] == "" and text:
            self._space = True

    # -- building the text

    def _open_block(self, tag: str) -> None:
        if tag == "pre":
            self._pre += 1
        if tag in _PARAGRAPHS:
            self._block(2)
        elif tag in _LINES:
            self._block(1)

    def _list_item(self) -> None:
        self._block(1)
        depth = max(len(self._lists), 1)
        number = self._lists[-1] if self._lists else None
        if number is None:
            marker = "- "
        else:
            marker = f"{number}. "
            self._lists[-1] = number + 1
        self._write("  " * (depth - 1) + marker, raw=True)
        self._space = False

    def _close_link(self) -> None:
        if not self._links:
            return
        href, first = self._links.pop()
        text = "".join(self.parts[first:]).strip()
        target = href.strip()
        if not target or target.startswith(("#", "javascript:")):
            return
        shown = target.removeprefix("mailto:") if target.startswith("mailto:") else target
        if not text:
            self._write(shown)
        elif text != shown and text != target:
            self._space = True
            self._write(f"({target if not target.startswith('mailto:') else shown})")

    def _block(self, breaks: int) -> None:
        self._breaks = max(self._breaks, breaks)
        self._space = False

    def _line_break(self) -> None:
        # A <br> always counts, even several in a row; a pending block break already covers one.
        if self._breaks:
            self._breaks += 1
        elif self.parts:
            self.parts.append("\n")
        self._space = False

    def _write(self, text: str, *, raw: bool = False) -> None:
        if not text:
            return
        if self.parts and self._breaks:
            self.parts.append("\n" * self._breaks)
        elif self.parts and self._space and not raw and not self.parts[-1].endswith(("\n", " ")):
            self.parts.append(" ")
        self._breaks = 0
        self._space = False
        self.parts.append(text)

    def text(self) -> str:
        lines = "".join(self.parts).replace("\xa0", " ").split("\n")
        return "\n".join(line.rstrip() for line in lines).strip("\n")


def _start(attrs: list[tuple[str, str | None]]) -> int:
    value = dict(attrs).get("start") or "1"
    return int(value) if value.strip().lstrip("-").isdigit() else 1


def html_to_text(html: str) -> str:
    """The plain text a reader of `html` sees, as lines (no trailing newline)."""
    writer = _TextWriter()
    writer.feed(html)
    writer.close()
    return writer.text()
