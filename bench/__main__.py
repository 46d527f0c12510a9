"""`python -m bench` (`make bench`): runs every benchmark module in this folder and prints one
line per figure, `name value unit` (SPEC section 10).

A benchmark module is any `bench/<name>.py` with `run() -> list[tuple[str, float, str]]`;
`python -m bench NAME ...` runs only those modules."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

Figures = list[tuple[str, float, str]]


def modules() -> list[str]:
    """Every benchmark module, in name order."""
    folder = Path(__file__).parent
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(folder)])
        if not info.name.startswith("_") and not info.ispkg
    )


def runner(name: str) -> Callable[[], Figures] | None:
    module = importlib.import_module(f"bench.{name}")
    run = getattr(module, "run", None)
    return run if callable(run) else None


def main(selected: list[str]) -> int:
    names = selected or modules()
    unknown = sorted(set(names) - set(modules()))
    if unknown:
        print(f"no such benchmark: {', '.join(unknown)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        run = runner(name)
        if run is None:
            continue
        try:
            figures = run()
        except Exception:
            failed += 1
            print(f"benchmark {name} failed:", file=sys.stderr)
            traceback.print_exc()
            continue
        for figure, value, unit in figures:
            print(f"{figure} {value:.6g} {unit}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
