"""Hints and messages in the words of the web UI: the settings' dotted keys that the API and the
command line show (`smtp.ca`, `set smtp.security to tls`) become the labels and choices an
installer sees on the tabs ("CA Certificate", `set Security to “Implicit TLS”`), read from the
settings model's titles so that each is written once."""

from __future__ import annotations

import re
from functools import cache

from doormail.settings import describe

__all__ = ["in_ui_words", "label_of"]

_SECTIONS = "device|smtp|email_on_call|email_on_access|email_on_event|camera|limits"
_KEY = re.compile(rf"\b(?:{_SECTIONS})(?:\.[a-z0-9_]+)+")
# A key followed by one of its values: "smtp.security tls", "smtp.security to starttls".
_CHOSEN = re.compile(rf"(\b(?:{_SECTIONS})(?:\.[a-z0-9_]+)+) (to |is )?([a-z0-9_-]+)\b")


@cache
def label_of(path: str) -> str | None:
    """The UI's label of the setting at `path`, or None when the model gives it none."""
    try:
        return describe(path).title
    except KeyError:
        return None


def _choice(path: str, value: str) -> str | None:
    try:
        described = describe(path)
    except KeyError:
        return None
    if described.type == "boolean":
        return {"true": "ticked", "false": "not ticked"}.get(value)
    return dict(described.choices).get(value)


def _chosen(found: re.Match[str]) -> str:
    path, joint, value = found.group(1), found.group(2) or "", found.group(3)
    shown = _choice(path, value)
    if shown is None:
        return found.group(0)
    if shown.endswith("ticked"):
        return f"{label_of(path)} {joint}{shown}"
    return f"{label_of(path)} {joint}“{shown}”"


def _labelled(found: re.Match[str]) -> str:
    path = found.group(0)
    parts = path.split(".")
    # The longest part of the path the model names: "smtp.oauth2.client_secret", not a section.
    for end in range(len(parts), 1, -1):
        label = label_of(".".join(parts[:end]))
        if label is not None:
            rest = ".".join(parts[end:])
            return f"{label} {rest}" if rest else label
    return path


def in_ui_words(text: str) -> str:
    """`text` with every settings key (and a value given with it) in the UI's words."""
    return _KEY.sub(_labelled, _CHOSEN.sub(_chosen, text))
