"""``python -m benchmarks all``: every benchmark in one go, with one JSON file, one Markdown report and plots.

Runs, in this order and in this process, the latency benchmark, the mixed
workload at 1, 2, 4 and 8 processes, the Zipf hit-ratio benchmark and the
cold-open benchmark, each through its own ``main`` with ``--json`` to a
temporary file; their reports (printed as they run) are captured too.  Then
it computes the issue's targets from the figures and writes, into
``--out`` (default ``docs/benchmarks/``):

- ``results.json``: ``machine`` (cores, CPU model, Python, SQLite, package
  versions, stores, filesystem), ``disk`` (device, model), ``config``,
  one key per benchmark (``latency``, ``mixed``, ``zipf``, ``cold_open``:
  each benchmark's whole JSON report), ``targets``, ``plots``,
  ``exit_codes``, ``notes`` and ``elapsed_seconds``;
- ``results.md``: a summary (targets, the main tables, the plots), then
  every benchmark's full report;
- the PNG plots (with matplotlib; skipped with a note without it).

Written to the default directory, it also replaces the "Latest results"
section of ``docs/benchmarks.md`` (between its two markers) with the
summary.  ``--quick`` is the smoke test CI runs: small samples, and the
mixed workload on cachekit and python-diskcache only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import _report

__all__ = ["BENCHMARKS", "DEFAULT_OUT", "benchmark_arguments", "main", "update_docs"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "benchmarks"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
START_MARK = "<!-- latest-results:start -->"
END_MARK = "<!-- latest-results:end -->"
#: The benchmarks, by command name, in the order they run; and their key in results.json.
BENCHMARKS = ("latency", "mixed", "zipf", "cold-open")
KEYS = {"latency": "latency", "mixed": "mixed", "zipf": "zipf", "cold-open": "cold_open"}
#: Each benchmark's arguments in a full run and in a quick one (--json and --dir are added).
FULL_ARGUMENTS: dict[str, list[str]] = {
    "latency": [],
    "mixed": ["--processes", "1,2,4,8"],
    "zipf": [],
    "cold-open": [],
}
QUICK_ARGUMENTS: dict[str, list[str]] = {
    "latency": ["--quick", "--sizes", "100", "--rounds", "2"],
    "mixed": ["--quick", "--processes", "1,2,4,8", "--systems", "cachekit,diskcache"],
    "zipf": ["--quick"],
    "cold-open": ["--quick"],
}
#: Packages whose versions results.json records beside machine()'s.
PACKAGES = ("django", "redis", "hiredis", "pymemcache", "sqlitedict", "matplotlib")


def benchmark_arguments(name: str, quick: bool) -> list[str]:
    """The command-line arguments ``all`` gives benchmark ``name`` (without ``--json`` and ``--dir``)."""
    return list((QUICK_ARGUMENTS if quick else FULL_ARGUMENTS)[name])


def _entry_point(name: str) -> Callable[[Sequence[str]], int]:
    if name == "latency":
        from . import latency

        return latency.main
    if name == "mixed":
        from . import mixed

        return mixed.main
    if name == "zipf":
        from . import zipf

        return zipf.main
    from . import cold_open

    return cold_open.main


class _Tee(io.TextIOBase):
    """A text stream that writes to another stream and keeps a copy."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._copy = io.StringIO()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._stream.write(text)
        return self._copy.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def getvalue(self) -> str:
        return self._copy.getvalue()


def _captured(function: Callable[[], Any]) -> tuple[str, Any, str | None]:
    """Run ``function`` with its standard output shown and captured: (output, result, traceback or None)."""
    tee = _Tee(sys.stdout)
    result: Any = None
    error = None
    with contextlib.redirect_stdout(tee):
        try:
            result = function()
        except SystemExit as exit_:  # a bad command line in a benchmark
            result = exit_.code if isinstance(exit_.code, int) else 2
        except Exception:
            error = traceback.format_exc(limit=8).rstrip()
            result = 1
        finally:
            tee.flush()
    if error:
        print(error, file=sys.stderr)
    return tee.getvalue(), result, error


def _demote(markdown: str, levels: int) -> str:
    """Headings one or more levels deeper, outside code fences."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" * levels + line if not fenced and re.match(r"#+ ", line) else line)
    return "\n".join(lines)


def update_docs(page: Path, summary: str, full_report: str) -> bool:
    """Replace the text between the two markers of ``page`` with ``summary``; False if a marker is missing."""
    try:
        text = page.read_text(encoding="utf-8")
    except OSError:
        return False
    start, end = text.find(START_MARK), text.find(END_MARK)
    if start < 0 or end < start:
        return False
    block = f"{START_MARK}\n\n{summary}\nThe full report of this run: [{full_report}]({full_report}).\n\n"
    page.write_text(text[:start] + block + text[end:], encoding="utf-8")
    return True


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="python -m benchmarks all",
        description="Run the latency, mixed (1, 2, 4, 8 processes), zipf and cold-open benchmarks in one go; "
        "write results.json, results.md and PNG plots, and check the issue's targets.",
    )
    result.add_argument(
        "--quick",
        action="store_true",
        help="smoke test (CI runs this): small samples, the mixed workload on cachekit and diskcache only",
    )
    result.add_argument(
        "--out",
        help="where to write results.json, results.md and the plots (default docs/benchmarks/, which also "
        "updates the Latest results section of docs/benchmarks.md)",
    )
    result.add_argument(
        "--dir", help="where the benchmarks create their caches (default: the system temporary directory)"
    )
    result.add_argument(
        "--only",
        type=lambda text: [token.strip() for token in text.split(",") if token.strip()],
        help=f"run only these benchmarks, comma-separated ({', '.join(BENCHMARKS)}); the others' targets show "
        "as not measured",
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command_line = parser()
    args = command_line.parse_args(argv)
    chosen = args.only or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        command_line.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    out = Path(args.out).resolve() if args.out else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    from .latency import _version, machine

    started = time.perf_counter()
    data_dir = args.dir or tempfile.gettempdir()
    info = machine(data_dir)
    info["packages"].update({name: _version(name) for name in PACKAGES})
    results: dict[str, Any] = {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": info,
        "disk": _report.disk(data_dir),
        "config": {
            "quick": args.quick,
            "benchmarks": {name: benchmark_arguments(name, args.quick) for name in chosen},
            "command": ["python", "-m", "benchmarks", "all", *argv],
        },
    }
    sections: list[str] = []
    codes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    notes: list[str] = []
    durations: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cachekit-all-") as scratch:
        for name in chosen:
            path = os.path.join(scratch, f"{name}.json")
            arguments = [*benchmark_arguments(name, args.quick), *(["--dir", args.dir] if args.dir else [])]
            arguments += ["--json", path]
            entry_point = _entry_point(name)
            print(f"\n==> python -m benchmarks {name} {' '.join(arguments[:-2])}\n", flush=True)
            begun = time.perf_counter()
            text, code, error = _captured(lambda entry_point=entry_point, arguments=arguments: entry_point(arguments))
            durations[name] = time.perf_counter() - begun
            codes[name] = code
            if error:
                errors[name] = error
            text = "\n".join(line for line in text.splitlines() if not line.startswith(f"Wrote {scratch}"))
            sections.append(text)
            try:
                with open(path, encoding="utf-8") as handle:
                    results[KEYS[name]] = json.load(handle)
            except (OSError, ValueError):
                results[KEYS[name]] = None
                notes.append(f"{name} wrote no JSON report (exit status {code})")
    results["targets"] = _report.targets(results)
    target_text, _, _ = _captured(lambda: _report.print_targets(results["targets"]))
    print("Plotting ...", flush=True)
    results["plots"], plot_notes = _report.make_plots(results, out)
    notes += plot_notes
    results["exit_codes"] = codes
    results["errors"] = errors
    results["notes"] = notes
    results["durations_seconds"] = durations
    results["elapsed_seconds"] = time.perf_counter() - started
    json_path, markdown_path = out / "results.json", out / "results.md"
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
        handle.write("\n")
    summary = _report.summary_markdown(results)
    full = "\n\n".join(_demote(section.strip(), 2) for section in [*sections, target_text] if section.strip())
    markdown = f"# cachekit benchmark results\n\n## Summary\n\n{summary}\n## Full reports\n\n{full}\n"
    if notes:
        markdown += "\n" + "\n".join(f"- note: {note}" for note in notes) + "\n"
    markdown_path.write_text(markdown, encoding="utf-8")
    for note in notes:
        print(f"- note: {note}")
    print(f"Wrote {json_path}, {markdown_path} and {len(results['plots'])} plot(s) in {out}.")
    if out == DEFAULT_OUT:
        relative = markdown_path.relative_to(DOCS_PAGE.parent).as_posix()
        prefix = out.relative_to(DOCS_PAGE.parent).as_posix() + "/"
        if update_docs(DOCS_PAGE, _report.summary_markdown(results, prefix), relative):
            print(f"Updated the Latest results section of {DOCS_PAGE}.")
        else:
            print(f"{DOCS_PAGE} has no {START_MARK} ... {END_MARK} section: not updated.")
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in durations.items())
    print(f"All done in {results['elapsed_seconds']:.1f} s ({timings}).")
    failed = [name for name, code in codes.items() if code]
    if failed:
        print(f"FAILED or incomplete: {', '.join(failed)} (see above).")
    return 1 if failed else 0
