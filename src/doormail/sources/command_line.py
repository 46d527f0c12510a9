"""`doormail event TYPE --field value ...`: the command line's words as the body of one event
(SPEC section 4), which the command posts to the running service."""

from __future__ import annotations

from typing import Any


def event_fields(args: list[str]) -> dict[str, Any]:
    """`--field value` pairs as an event's fields: "true"/"false" become booleans, a repeated
    field a list (`--called 101 --called 102`), dashes in names underscores."""
    fields: dict[str, Any] = {}
    rest = list(args)
    while rest:
        option = rest.pop(0)
        name, equals, value = option.removeprefix("--").partition("=")
        if not option.startswith("--") or not name:
            raise ValueError(f"expected --FIELD VALUE, got {option!r}")
        if not equals:
            if not rest:
                raise ValueError(f"--{name} needs a value")
            value = rest.pop(0)
        key = name.replace("-", "_")
        converted = {"true": True, "false": False}.get(value.lower(), value)
        if key in fields:
            previous = fields[key]
            fields[key] = [*(previous if isinstance(previous, list) else [previous]), converted]
        else:
            fields[key] = converted
    return fields


def event_body(event_type: str, args: list[str]) -> dict[str, Any]:
    """The event `doormail event TYPE ARGS...` describes; ValueError says what is wrong."""
    return {"type": event_type, **event_fields(args)}
