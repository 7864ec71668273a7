"""What every benchmark's command line does the same way: parse the arguments, choose the systems
(a bad choice is a usage error), run, write the JSON report, and exit 1 when a system failed."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ._servers import stopped_by_sigterm

__all__ = ["run_command", "write_json"]

T = TypeVar("T")


def write_json(path: str, report: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    print(f"Wrote {path}.")


def run_command(
    command_line: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    select: Callable[[argparse.Namespace, list[str]], T],
    run: Callable[[argparse.Namespace, T, list[str], list[str]], tuple[dict[str, Any], bool]],
    *,
    servers: bool = False,
    missing: Callable[[], str | None] = lambda: None,
) -> int:
    """A benchmark's ``main``: ``select(args, notes)`` picks the systems (``ValueError``: a usage
    error), ``run(args, systems, notes, argv)`` returns ``(report, every system worked)``.

    ``servers``: the run may start servers, so SIGTERM interrupts it like Ctrl-C and they are
    stopped.  ``missing()`` names a package the benchmark cannot run without (exit 1).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = command_line.parse_args(arguments)
    absent = missing()
    if absent:
        print(absent, file=sys.stderr)
        return 1
    notes: list[str] = []
    try:
        systems = select(args, notes)
    except ValueError as error:
        command_line.error(str(error))
    with stopped_by_sigterm() if servers else contextlib.nullcontext():
        report, ok = run(args, systems, notes, arguments)
    if args.json:
        write_json(args.json, report)
    return 0 if ok else 1
