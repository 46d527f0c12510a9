"""`doormail event --help` and the README's table of events: the event types, each with its
fields and an example, read from the event models, so that the two never disagree with them."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from doormail.cli import cli
from doormail.events import TYPES, parse_event, type_docs
from doormail.sources.command_line import event_body, example_command, markdown_table

README = Path(__file__).parents[2] / "README.md"


def test_event_help_lists_every_type_with_its_fields_and_an_example() -> None:
    result = CliRunner().invoke(cli, ["event", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    for doc in type_docs():
        assert f"{doc.type}: {doc.what}" in said
        assert f"Example: {example_command(doc)}" in said
        for field in doc.fields:
            assert f"--{field.name.replace('_', '-')} ({field.values}" in said
    assert "--auth-type (card | bluetooth | fingerprint, required)" in said
    assert "--answered (true | false, required) false makes a missed call" in said
    assert "Every type also takes: --id (text)" in said


def test_every_example_is_a_valid_event() -> None:
    assert [doc.type for doc in type_docs()] == list(TYPES)
    for doc in type_docs():
        words = example_command(doc).split()
        assert words[:3] == ["doormail", "event", doc.type]
        event = parse_event(event_body(doc.type, words[3:]))
        assert event.type == doc.type


def test_the_readme_has_the_same_table() -> None:
    assert markdown_table() in README.read_text(encoding="utf-8")
