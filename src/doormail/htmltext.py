"""The readable plain text of an HTML body, for a mail's `text/plain` part: paragraphs and `<br>`
become line breaks, links stay as "text (url)", list items as "- item", entities are decoded.
The HTML is read in one pass, in time linear in its length whatever it holds: Python 3.11's
html.parser, which read it before, took 54 s for 64 KB of unclosed tags (it looks for the end of
each again from every later `<`) and stopped with an AssertionError at some `<![`."""

from __future__ import annotations

import html as html_module
import re

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
# How many levels of nested lists the text shows by indentation.
_DEEPEST_INDENT = 8
# HTML collapses only ASCII white space; U+00A0 (&nbsp;) is kept apart from it.
_WHITESPACE = re.compile(r"[ \t\n\r\f]+")
# Where markup begins: a tag, an end tag, a comment, a declaration or a processing instruction
# (a `<` before anything else is text).
_MARKUP = re.compile(r"<[A-Za-z/!?]")
_TAG_NAME = re.compile(r"[A-Za-z][^\t\n\f\r />]*")
# What follows within a tag: its end, an attribute (a quoted value may lack its closing quote
# at the end of the text), or a stray slash.
_IN_TAG = re.compile(
    r"[\t\n\f\r ]*(?:(?P<end>/?>)"
    r"|(?P<name>[^\t\n\f\r />][^\t\n\f\r /=>]*)"
    r"(?:[\t\n\f\r ]*=[\t\n\f\r ]*(?P<value>\"[^\"]*\"?|'[^']*'?|[^\t\n\f\r >]*))?"
    r"|/)"
)
# Elements whose content is text up to their end tag, never markup.
_RAW_TEXT = {
    name: re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE) for name in ("script", "style")
}


class _TextWriter:
    """Collects text with pending line breaks and spaces, so that nested blocks never pile up
    blank lines and words never run together."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._breaks = 0
        self._space = False
        self._hidden = 0
        self._pre = 0
        self._lists: list[int | None] = []  # None for <ul>, the next number for <ol>
        self._links: list[tuple[str, int]] = []  # (href, index of the link's first part)

    # -- what the reader calls

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
        # Deeper lists are indented no further: a reader gains nothing from it, and 64 KB of
        # `<ol><li>` made 64 MB of indentation.
        depth = min(max(len(self._lists), 1), _DEEPEST_INDENT)
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
    _read(html, writer)
    return writer.text()


def _read(html: str, writer: _TextWriter) -> None:
    """Hand `html` to `writer` as text (character references decoded), start tags and end tags,
    much as the HTML standard's tokenizer reads it: comments, declarations and processing
    instructions are left out, and markup that the text ends within is dropped with the rest
    of the text. Each step starts where the previous one stopped, so nothing is read twice."""
    position = 0
    while (markup := _MARKUP.search(html, position)) is not None:
        start = markup.start()
        if start > position:
            writer.handle_data(html_module.unescape(html[position:start]))
        after = html[start + 1]  # a letter, or one of / ! ?
        if html.startswith("<!--", start):
            position = _comment_end(html, start + 4)
        elif after == "/" and _TAG_NAME.match(html, start + 2):
            position = _tag(html, start + 2, writer, end_tag=True)
        elif after in "/!?":
            # A declaration, a processing instruction, or `</` before no name: up to its `>`.
            close = html.find(">", start + 2)
            position = len(html) if close < 0 else close + 1
        else:
            position = _tag(html, start + 1, writer, end_tag=False)
    if position < len(html):
        writer.handle_data(html_module.unescape(html[position:]))


def _comment_end(html: str, position: int) -> int:
    """Where the comment whose `<!--` ends at `position` ends."""
    if html.startswith(">", position):
        return position + 1
    if html.startswith("->", position):
        return position + 2
    close = html.find("-->", position)
    return len(html) if close < 0 else close + 3


def _tag(html: str, position: int, writer: _TextWriter, *, end_tag: bool) -> int:
    """Read the tag whose name begins at `position` and hand it to `writer` (with the text of
    a script or style, which holds no markup); where reading goes on."""
    name = _TAG_NAME.match(html, position)
    assert name is not None  # the caller saw a letter
    tag = name.group().lower()
    attrs: list[tuple[str, str | None]] = []
    position = name.end()
    while (part := _IN_TAG.match(html, position)) is not None:
        position = part.end()
        if part.group("end"):
            break
        if part.group("name"):
            attrs.append((part.group("name").lower(), _attribute_value(part.group("value"))))
    else:
        return len(html)  # the text ends within the tag
    if end_tag:
        writer.handle_endtag(tag)
    elif part.group("end") == "/>":
        writer.handle_startendtag(tag, attrs)
    else:
        writer.handle_starttag(tag, attrs)
        raw_end = _RAW_TEXT.get(tag)
        if raw_end is not None:
            found = raw_end.search(html, position)
            stop = len(html) if found is None else found.start()
            writer.handle_data(html[position:stop])
            position = stop
    return position


def _attribute_value(value: str | None) -> str | None:
    if value is None:
        return None
    if value[:1] in ("'", '"'):
        value = value[1:-1] if len(value) > 1 and value[-1] == value[0] else value[1:]
    return html_module.unescape(value)
