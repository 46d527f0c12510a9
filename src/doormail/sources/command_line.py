"""`doormail event TYPE --field value ...`: the command line's words as the body of one event
(SPEC section 4), which the command posts to the running service, and the command's help on the
event types (with the README's table), read from the event models."""

from __future__ import annotations

from typing import Any

from doormail.events import FieldDoc, TypeDoc, common_fields, type_docs


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


def example_command(doc: TypeDoc) -> str:
    """The type's example as a command line, e.g. `doormail event access --auth-type card ...`."""
    words = ["doormail", "event", doc.type]
    for name, value in doc.example.items():
        for one in value if isinstance(value, list) else [value]:
            shown = str(one).lower() if isinstance(one, bool) else str(one)
            words += [_option(name), shown]
    return " ".join(words)


def help_text() -> str:
    """`doormail event --help`'s list of the event types, each with its fields and an example,
    read from the event models (each paragraph a line: the help rewraps paragraphs)."""
    paragraphs = ["Post one event to the running service. The event types and their fields:"]
    for doc in type_docs():
        fields = "; ".join(_field_line(field) for field in doc.fields) or "no fields of its own"
        paragraphs.append(f"{doc.type}: {doc.what} {fields}. Example: {example_command(doc)}")
    common = "; ".join(_field_line(field) for field in common_fields())
    paragraphs.append(f"Every type also takes: {common}.")
    return "\n\n".join(paragraphs)


def markdown_table() -> str:
    """The same as a Markdown table, for the README (a test holds the two together)."""
    rows = ["| type | field | values | required | what |", "|---|---|---|---|---|"]
    for doc in type_docs():
        rows.append(f"| `{doc.type}` | | | | {doc.what} Example: `{example_command(doc)}` |")
        rows += [_field_row(field) for field in doc.fields]
    rows.append("| every type | | | | |")
    rows += [_field_row(field) for field in common_fields()]
    return "\n".join(rows) + "\n"


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _field_line(field: FieldDoc) -> str:
    required = ", required" if field.required else ""
    return f"{_option(field.name)} ({field.values}{required}) {field.what}"


def _field_row(field: FieldDoc) -> str:
    required = "yes" if field.required else ""
    values = field.values.replace("|", "\\|")
    return f"| | `{field.name}` | {values} | {required} | {field.what} |"
