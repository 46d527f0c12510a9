"""SpamAssassin scorer for tests: a message's bytes scored by Debian's `spamassassin` in local
mode (network tests off), giving the total score and the rules hit with their points.

Nothing is learnt or remembered between runs (Bayes off, no preferences file created), so a
message scores the same every time, whatever ran before it."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

PROGRAM = "spamassassin"

# Local tests only (-L), the report appended to the message (-t), no ~/.spamassassin created
# (-x); Bayes and auto-learning off so that earlier test runs cannot move the score, and the
# message kept as it is rather than wrapped in a report (report_safe 0) so the parse is one.
OPTIONS = (
    "-L",
    "-t",
    "-x",
    "--cf=use_bayes 0",
    "--cf=bayes_auto_learn 0",
    "--cf=report_safe 0",
)

_TOTAL = re.compile(
    r"Content analysis details:\s+\((-?\d+(?:\.\d+)?) points, (-?\d+(?:\.\d+)?) required\)"
)
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


@dataclass(frozen=True)
class Score:
    """What SpamAssassin thought of one message."""

    total: float
    required: float
    rules: dict[str, float] = field(default_factory=dict)  # rule name -> points
    descriptions: dict[str, str] = field(default_factory=dict)
    report: str = ""

    def line(self) -> str:
        """The score and its rules on one line, as in a score table."""
        hits = ", ".join(f"{name}={points:g}" for name, points in sorted(self.rules.items()))
        return f"{self.total:5.1f}  {hits}"


def find() -> str | None:
    """The path of `spamassassin`, or None when it is not installed."""
    return shutil.which(PROGRAM)


def score(message: bytes, program: str = PROGRAM, timeout: float = 180.0) -> Score:
    """Score `message` (the bytes as sent over SMTP) with `program`."""
    done = subprocess.run(
        [program, *OPTIONS],
        input=message,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        raise RuntimeError(f"{program} exited with {done.returncode}: {done.stderr[-500:]!r}")
    return parse(output)


def parse(output: str) -> Score:
    """Read the total and the rules from the report `spamassassin -t` appends."""
    total = _TOTAL.search(output)
    if total is None:
        raise ValueError("no 'Content analysis details' report in spamassassin's output")
    report = output[total.start() :]
    rules: dict[str, float] = {}
    descriptions: dict[str, str] = {}
    table = report.split("\n---- ", 1)[-1].split("\n", 1)[-1]
    for row in table.splitlines():
        hit = _RULE.match(row)
        if hit is not None:
            rules[hit.group(2)] = float(hit.group(1))
            descriptions[hit.group(2)] = hit.group(3).strip()
    return Score(float(total.group(1)), float(total.group(2)), rules, descriptions, report)
