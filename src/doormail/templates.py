"""`$Placeholder$` rendering for subjects and bodies (SPEC section 5): the extended
`$Name:value=text,...$` syntax, HTML escaping of values, and subjects that can never carry a line
break into a header. It knows nothing about events; callers hand it the values."""

from __future__ import annotations

import html as html_module
import re
import unicodedata
from collections.abc import Mapping

__all__ = ["header_safe", "render"]

# A placeholder starts at a `$`: a name, then either the closing `$`, or `:` and the
# value=text pairs (where a backslash escapes the next character, so `\$` does not end them)
# and then the closing `$`.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_DOLLAR_OR_ESCAPE = re.compile(r"[$\\]")

# Characters that end a line somewhere: CR and LF, but also what str.splitlines() (which the
# email package uses while folding) treats as a line boundary.
_LINE_BREAKING = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# Any character either cleaning below would change (control characters, line breaks and lone
# surrogates): text without one, the usual case, is returned as it is in one search instead
# of being looked at character by character.
_UNCLEAN_BODY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_UNCLEAN_HEADER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def render(
    template: str,
    values: Mapping[str, str],
    *,
    html: bool,
    markup: Mapping[str, str] | None = None,
) -> str:
    """`template` with each known placeholder replaced by its value, in one pass (a value that
    contains `$User$` stays as it is). Names not in `values` are left exactly as written. With
    `html=True` the values are HTML-escaped; the placeholders in `markup` stand for markup
    doormail made, which goes in as it is (with `html=False`, a subject, they stand for
    nothing). No control character survives in a subject. The time taken grows linearly with
    the template's length."""
    if markup:
        values = {**values, **markup}
    raws = markup or {}
    out: list[str] = []
    position = 0
    while (start := template.find("$", position)) >= 0:
        out.append(template[position:start])
        position = start + 1
        name = _NAME.match(template, position)
        if name is None or name.group() not in values:
            # Only the `$` is consumed, so `$Price$User$` still finds `$User$`.
            out.append("$")
            continue
        value, after = values[name.group()], name.end()
        raw = name.group() in raws
        if raw and not html:
            value = ""
        if template.startswith("$", after):
            out.append(value if raw else _substitute(value, None, html=html))
            position = after + 1
            continue
        if not template.startswith(":", after):
            out.append("$")
            continue
        closing = _closing_dollar(template, after + 1)
        if closing < 0:
            # The pairs run to the end without their closing `$`, so every `$` after this one
            # is escaped, and a scan from behind any later name would meet the same escapes
            # and end the same way: the rest stays as written. (Scanning again from each `$`
            # took quadratic time on `$A:` followed by `\$A:` many times.)
            position = start
            break
        choices = template[after + 1 : closing]
        out.append(value if raw else _substitute(value, choices, html=html))
        position = closing + 1
    out.append(template[position:])
    rendered = "".join(out)
    return _clean_text(rendered) if html else header_safe(rendered)


def _closing_dollar(template: str, index: int) -> int:
    """Where the first `$` from `index` on that no backslash escapes stands, or -1."""
    while (found := _DOLLAR_OR_ESCAPE.search(template, index)) is not None:
        if found.group() == "$":
            return found.start()
        index = found.start() + 2
    return -1


def _substitute(value: str, choices: str | None, *, html: bool) -> str:
    if choices is not None:
        chosen = _choose(value, choices)
        if chosen is not None:
            # The text comes from the template itself, written by the administrator; in a body
            # it may hold HTML just like the rest of the template.
            return chosen
    return html_module.escape(value, quote=True) if html else value


def _choose(value: str, choices: str) -> str | None:
    """The text paired with `value` (compared case-insensitively), or None when it is absent."""
    wanted = value.strip().casefold()
    for pair in _split_unescaped(choices, ","):
        parts = _split_unescaped(pair, "=", maxsplit=1)
        if len(parts) == 2 and _unescape(parts[0]).strip().casefold() == wanted:
            return _unescape(parts[1])
    return None


def _split_unescaped(text: str, separator: str, maxsplit: int = -1) -> list[str]:
    """`text` split at each `separator` not preceded by a backslash; escapes are kept."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == separator and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        if text[index] == "\\" and index + 1 < len(text):
            index += 1
        out.append(text[index])
        index += 1
    return "".join(out)


def _clean_text(text: str) -> str:
    """Text that encodes as UTF-8 and holds no control character but tab, CR and LF (a lone
    surrogate, e.g. from a JSON "\\ud800", becomes U+FFFD)."""
    if _UNCLEAN_BODY.search(text) is None:
        return text
    return "".join(
        _no_surrogate(char)
        for char in text
        if char in "\t\r\n" or unicodedata.category(char) != "Cc"
    )


def header_safe(text: str) -> str:
    """`text` on one line for a header: each run of control or line-breaking characters
    becomes one space, a lone surrogate becomes U+FFFD."""
    if _UNCLEAN_HEADER.search(text) is None:
        return text
    out: list[str] = []
    in_break = False
    for char in text:
        if char in _LINE_BREAKING or unicodedata.category(char) == "Cc":
            if not in_break:
                out.append(" ")
            in_break = True
        else:
            out.append(_no_surrogate(char))
            in_break = False
    return "".join(out)


def _no_surrogate(char: str) -> str:
    return "\ufffd" if "\ud800" <= char <= "\udfff" else char
