"""The users list as CSV (SPEC section 3): a header line, lists joined with `;`, every bad line
of an import reported by number and column, and cells a spreadsheet would run as a formula
neutralised on the way out and restored on the way in."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from doormail.users.model import LIST_FIELDS, User

CSV_COLUMNS = ("id", "name", "email", "numbers", "cards", "bluetooth", "fingerprints")
# Lines of one CSV import: ten times the largest intercom directory; a file beyond it is refused
# before any line is read (200,000 lines took 400 MB and half a minute).
MAX_IMPORT_LINES = 50_000

# A cell that begins with one of these is run as a formula by a spreadsheet (OWASP, CSV
# injection): the export puts an apostrophe in front, which the import takes away again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CsvProblem:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.column}: {self.message}"


class CsvError(ValueError):
    """An import refused as a whole; every bad line is listed."""

    def __init__(self, problems: Sequence[CsvProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


def parse_csv(text: str) -> list[User]:
    """Users from CSV text with a header line; CsvError lists every bad line and column. A cell
    that begins with an apostrophe before what starts a formula (`'+420…`) loses that
    apostrophe, which the export put there to keep spreadsheets from running the cell."""
    lines = text.count("\n") + (not text.endswith("\n"))
    if lines > MAX_IMPORT_LINES:
        too_many = f"the file has {lines} lines; one import takes at most {MAX_IMPORT_LINES}"
        raise CsvError([CsvProblem(MAX_IMPORT_LINES + 1, "file", too_many + " (split it)")])
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvError([CsvProblem(1, "header", _header_hint())]) from None
    except csv.Error as error:
        raise CsvError([CsvProblem(1, "header", str(error))]) from None
    columns = [name.strip().lower() for name in header]
    problems = _check_header(columns)
    if problems:
        raise CsvError(problems)
    users, problems = _parse_rows(reader, columns)
    if problems:
        raise CsvError(problems)
    return users


def _header_hint() -> str:
    return "the first line must be the header " + ",".join(CSV_COLUMNS)


def _check_header(columns: list[str]) -> list[CsvProblem]:
    unknown = [name for name in columns if name not in CSV_COLUMNS]
    if unknown:
        return [CsvProblem(1, "header", f"unknown column {unknown[0]!r}; {_header_hint()}")]
    repeated = [name for name in columns if columns.count(name) > 1]
    if repeated:
        return [CsvProblem(1, "header", f"column {repeated[0]!r} appears twice")]
    return []


def _parse_rows(
    reader: Iterable[list[str]], columns: list[str]
) -> tuple[list[User], list[CsvProblem]]:
    users: list[User] = []
    problems: list[CsvProblem] = []
    seen: dict[str, int] = {}
    line = 1
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append(CsvProblem(line + 1, "line", str(error)))
            break
        start, line = line + 1, getattr(reader, "line_num", line + 1)
        if not any(cell.strip() for cell in row):
            continue
        user, problem = _parse_row(start, row, columns)
        if problem:
            problems.extend(problem)
        elif user is not None:
            if user.id in seen:
                problems.append(
                    CsvProblem(start, "id", f"{user.id!r} is already on line {seen[user.id]}")
                )
            seen.setdefault(user.id, start)
            users.append(user)
    return users, problems


def _parse_row(
    line: int, row: list[str], columns: list[str]
) -> tuple[User | None, list[CsvProblem]]:
    if len(row) != len(columns):
        return None, [
            CsvProblem(line, "line", f"has {len(row)} fields, the header has {len(columns)}")
        ]
    data: dict[str, object] = {}
    for name, raw in zip(columns, row, strict=True):
        cell = _restored(raw.strip())
        if name in LIST_FIELDS.values():
            data[name] = [part for part in cell.split(";") if part.strip()]
        elif name != "id" or cell.strip():
            data[name] = cell.strip()
    try:
        return User.model_validate(data), []
    except ValidationError as error:
        return None, [
            CsvProblem(line, str(e["loc"][0]), str(e["msg"]).removeprefix("Value error, "))
            for e in error.errors()
        ]


def to_csv(users: Iterable[User]) -> str:
    """The users as CSV with a header line, lists joined with `;`. Every cell is quoted (a
    spreadsheet that splits at `;`, as in many locales, still sees one cell) and one that a
    spreadsheet would run as a formula gets an apostrophe in front (see `parse_csv`)."""
    out = io.StringIO(newline="")
    out.write(",".join(CSV_COLUMNS) + "\r\n")
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    for user in users:
        cells = [user.id, user.name, user.email]
        cells += [";".join(getattr(user, field)) for field in LIST_FIELDS.values()]
        writer.writerow([_neutralised(cell) for cell in cells])
    return out.getvalue()


def _neutralised(cell: str) -> str:
    """`cell` with an apostrophe in front when it begins, after any apostrophes, with what
    starts a formula; so `_restored` can tell an added apostrophe from one that was there."""
    return "'" + cell if cell.lstrip("'").startswith(_FORMULA_START) else cell


def _restored(cell: str) -> str:
    """A cell as `_neutralised` had it."""
    if cell.startswith("'") and cell.lstrip("'").startswith(_FORMULA_START):
        return cell[1:]
    return cell
