"""What `doormail outbox`, `doormail events` and `doormail users list` print: a table that fits
the terminal (80 columns when it is not one), each cell on one line and cut short with … when it
does not fit; `--wide` for every cell whole; `--json` for scripts. Each listing is a few named
columns over rows of plain values, so the three tables look and behave alike."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from doormail.eventlog import KeptEvent
from doormail.outbox import OutboxItem
from doormail.users.model import User

# What separates two columns: the padding on either side of them, collapsed.
_GAP = 2
# Wide enough that no table of ours is cut: each cell whole, the line as long as it needs.
_WIDE = 100_000
_STATE_COLOURS = {
    "sent": "green",
    "failed": "red",
    "expired": "red",
    "sending": "cyan",
    "queued": "yellow",
    "held": "yellow",
}


@dataclass(frozen=True)
class Column:
    """One column: its heading, its cell of a row, and how it gives way in a narrow terminal
    (`keep`: at least this many characters; `style`: the colour of a cell, from its text)."""

    heading: str
    cell: Callable[[Any], str]
    keep: int = 4
    style: Callable[[str], str] | None = None


def local_time(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def _state_style(text: str) -> str:
    return _STATE_COLOURS.get(text.split(" ", 1)[0], "")


OUTBOX_COLUMNS = (
    Column("created", lambda item: local_time(item.created_at), keep=19),
    Column("status", lambda item: item.status, keep=7, style=_state_style),
    Column("tries", lambda item: str(item.attempts), keep=5),
    Column("kind", lambda item: item.kind, keep=4),
    Column("to", lambda item: item.to, keep=10),
    Column("subject", lambda item: item.subject, keep=7),
    Column(
        "server / error",
        lambda item: (item.smtp_reply if item.status == "sent" else item.last_error) or "",
        keep=6,
    ),
    Column("id", lambda item: item.id, keep=6),
)


def _outcome(event: KeptEvent) -> str:
    """The mails and their states, or the reason there was none."""
    if event.for_address is not None and not event.for_address.mailed:
        return f"not mailed: {event.for_address.why or event.reason or 'no mail'}"
    if event.emails:
        return ", ".join(f"{mail.status} {mail.to}" for mail in event.emails)
    return f"no mail: {event.reason}"


EVENT_COLUMNS = (
    Column("at", lambda event: local_time(event.at), keep=19),
    Column("type", lambda event: event.type, keep=10),
    Column("device", lambda event: event.device, keep=8),
    Column("outcome", _outcome, keep=24, style=_state_style),
    Column("event id", lambda event: event.event_id, keep=6),
)

USER_COLUMNS = (
    Column("id", lambda user: user.id, keep=6),
    Column("name", lambda user: user.name, keep=8),
    Column("email", lambda user: user.email, keep=12),
    Column("numbers", lambda user: ", ".join(user.numbers), keep=6),
    Column(
        "cards / bluetooth / fingerprints",
        lambda user: ", ".join([*user.cards, *user.bluetooth, *user.fingerprints]),
        keep=8,
    ),
)


def table(rows: Sequence[Any], columns: Sequence[Column], width: int) -> Table:
    """`rows` as a Rich table at most `width` characters wide: every cell on one line, cut
    with … where its column had to give way."""
    cells = [[column.cell(row) for column in columns] for row in rows]
    natural = [
        max([cell_len(column.heading), *(cell_len(line[index]) for line in cells)])
        for index, column in enumerate(columns)
    ]
    room = width - _GAP * (len(columns) - 1)
    widths = fit(natural, [column.keep for column in columns], room)
    # Laid out here, not by Rich, which drops whole columns from a table too wide for it.
    shown = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        header_style="bold",
    )
    for column, column_width in zip(columns, widths, strict=True):
        shown.add_column(column.heading, no_wrap=True, overflow="ellipsis", width=column_width)
    for line in cells:
        shown.add_row(
            *(
                Text(text, style=column.style(text) if column.style else "")
                for column, text in zip(columns, line, strict=True)
            )
        )
    return shown


def fit(natural: Sequence[int], keep: Sequence[int], room: int) -> list[int]:
    """Column widths within `room`: each its natural width when all fit; otherwise each gets
    what it keeps (or less, when its natural width is less), and the rest of the room is
    shared out evenly, a column never getting more than it needs."""
    if sum(natural) <= room:
        return list(natural)
    widths = [min(n, k) for n, k in zip(natural, keep, strict=True)]
    left = max(0, room - sum(widths))
    wanting = sorted(range(len(widths)), key=lambda index: natural[index] - widths[index])
    for position, index in enumerate(wanting):
        share = left // (len(wanting) - position)
        given = min(natural[index] - widths[index], share)
        widths[index] += given
        left -= given
    return widths


def print_table(rows: Sequence[Any], columns: Sequence[Column], *, wide: bool) -> None:
    """The table on standard output: as wide as the terminal (80 columns when output is not
    a terminal), or, `wide`, as wide as its longest cells need."""
    terminal = Console(width=_WIDE) if wide else Console()
    terminal.print(table(rows, columns, terminal.width), crop=False)


def print_json(document: Any) -> None:
    """`document` as indented JSON on standard output, for scripts."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def outbox_json(items: Sequence[OutboxItem]) -> list[dict[str, Any]]:
    return [item.public() for item in items]


def events_json(events: Sequence[KeptEvent]) -> list[dict[str, Any]]:
    return [event.public() for event in events]


def users_json(users: Sequence[User]) -> list[dict[str, Any]]:
    return [user.model_dump(mode="json") for user in users]
