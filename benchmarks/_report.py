"""Reporting for ``python -m benchmarks all``: the issue's targets, Markdown summaries and PNG plots.

Everything here reads the JSON reports of the benchmarks (``latency``,
``mixed``, ``zipf``, ``cold_open``), so it can be rerun on a saved
``results.json``.  matplotlib is imported only when plotting, with the
``Agg`` backend; without it the plots are skipped with a note.

- ``targets(reports)``: one row per target and workload: the figures, the
  ratio and ``met``, ``missed`` or ``not measured``.
- ``print_targets(rows)``: those rows as a Markdown table.
- ``summary_markdown(results, image_prefix)``: the short tables of a run
  (targets, medians, throughput, hit ratios, cold open) and its plots.
- ``make_plots(results, directory)``: the PNG files, and notes.
- ``disk(path)``: the block device, filesystem and disk model under a path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PLOT_PREFIXES", "disk", "make_plots", "print_targets", "summary_markdown", "targets"]

MET, MISSED, NOT_MEASURED = "met", "missed", "not measured"
LMDB, SQLITE = "cachekit:lmdb", "cachekit:sqlite"
LMDB_FLOOR = "lmdb-floor"
DISKCACHE = "diskcache"
CACHEKIT_PREFIX = "cachekit:"
SERVERS = (("memcached", "Memcached"), ("redis-tcp", "Redis (TCP)"), ("redis-unix", "Redis (unix socket)"))
COLD_OPEN_LIMIT_MS = 5.0
MIXED_PROCESSES = 8
#: The names of the files make_plots writes start with one of these (a new run removes the old ones).
PLOT_PREFIXES = ("latency-", "mixed-", "zipf-", "cold-open")


# -- targets -----------------------------------------------------------------------------------------


def _workload_name(size: int, count: int) -> str:
    size_text = f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"
    return f"{size_text} x {count:,} keys"


def _us(value: float) -> str:
    return f"{value:.2f} us" if value < 10 else f"{value:.1f} us" if value < 1000 else f"{value:,.0f} us"


def _row(target: str, goal: str, where: str, figures: str, ratio: float | None, verdict: str) -> dict[str, Any]:
    return {"target": target, "goal": goal, "where": where, "figures": figures, "ratio": ratio, "verdict": verdict}


def _latency_targets(latency: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    goals = [
        ("LMDB get-hit median vs the bare LMDB floor", "<= 2x the floor"),
        *((f"LMDB get-hit median vs {title}", f">= 5x faster than {title}") for _, title in SERVERS),
        ("SQLite store get-hit median vs diskcache", "faster than diskcache (< 1x)"),
        ("SQLite store set median vs diskcache", "faster than diskcache (< 1x)"),
    ]
    if not latency or not latency.get("results"):
        return [
            _row(target, goal, "latency", "the latency benchmark did not run", None, NOT_MEASURED)
            for target, goal in goals
        ]
    medians = {
        (row["system"], row["value_size"], row["key_count"], row["operation"]): row["median_us"]
        for row in latency["results"]
    }
    workloads: list[tuple[int, int]] = []
    for row in latency["results"]:
        if (row["value_size"], row["key_count"]) not in workloads:
            workloads.append((row["value_size"], row["key_count"]))

    def pair(
        target: str,
        goal: str,
        mine: str,
        theirs: str,
        operation: str,
        ratio_of: Callable[[float, float], float],
        ok: Callable[[float], bool],
        unit: str,
    ) -> None:
        for size, count in workloads:
            where = f"latency, {_workload_name(size, count)}"
            a, b = medians.get((mine, size, count, operation)), medians.get((theirs, size, count, operation))
            if a is None or b is None:
                absent = " and ".join(name for name, value in ((mine, a), (theirs, b)) if value is None)
                rows.append(_row(target, goal, where, f"{absent}: not measured", None, NOT_MEASURED))
                continue
            ratio = ratio_of(a, b)
            figures = f"{mine} {_us(a)}, {theirs} {_us(b)}: {ratio:.2f}x {unit}"
            rows.append(_row(target, goal, where, figures, ratio, MET if ok(ratio) else MISSED))

    target, goal = goals[0]
    pair(target, goal, LMDB, LMDB_FLOOR, "get-hit", lambda a, b: a / b, lambda r: r <= 2, "the floor")
    for (server, _), (target, goal) in zip(SERVERS, goals[1 : 1 + len(SERVERS)], strict=True):
        pair(target, goal, LMDB, server, "get-hit", lambda a, b: b / a, lambda r: r >= 5, "faster")
    for operation, (target, goal) in zip(("get-hit", "set"), goals[-2:], strict=True):
        pair(target, goal, SQLITE, DISKCACHE, operation, lambda a, b: a / b, lambda r: r < 1, "diskcache")
    return rows


def _mixed_targets(mixed: dict[str, Any] | None) -> list[dict[str, Any]]:
    where = f"mixed, {MIXED_PROCESSES} processes"
    throughput_goal = ("Best cachekit throughput vs diskcache", ">= 2x diskcache's")
    p99_goal = ("Its set p99 vs diskcache's", "<= 0.2x diskcache's")
    speed = {row["system"]: row for row in (mixed or {}).get("throughput", []) if row["processes"] == MIXED_PROCESSES}
    ours = {name: row for name, row in speed.items() if name.startswith(CACHEKIT_PREFIX) and "/" not in name}
    if not ours or DISKCACHE not in speed:
        missing = "the mixed benchmark did not run" if not mixed else f"no cachekit store or no diskcache at {where}"
        return [_row(*goal, where, missing, None, NOT_MEASURED) for goal in (throughput_goal, p99_goal)]
    best = max(ours.values(), key=lambda row: row["ops_per_second"])
    theirs = speed[DISKCACHE]
    ratio = best["ops_per_second"] / theirs["ops_per_second"]
    rows = [
        _row(
            *throughput_goal,
            where,
            f"{best['system']} {best['ops_per_second']:,.0f} ops/s, diskcache {theirs['ops_per_second']:,.0f} ops/s: "
            f"{ratio:.2f}x",
            ratio,
            MET if ratio >= 2 else MISSED,
        )
    ]
    p99 = {
        row["system"]: row["p99_us"]
        for row in (mixed or {}).get("results", [])
        if row["processes"] == MIXED_PROCESSES and row["operation"] == "set"
    }
    mine, other = p99.get(best["system"]), p99.get(DISKCACHE)
    if mine is None or other is None:
        rows.append(_row(*p99_goal, where, "set p99: not measured", None, NOT_MEASURED))
    else:
        ratio = mine / other
        figures = f"{best['system']} {_us(mine)}, diskcache {_us(other)}: {ratio:.2f}x"
        rows.append(_row(*p99_goal, where, figures, ratio, MET if ratio <= 0.2 else MISSED))
    return rows


def _cold_open_targets(cold: dict[str, Any] | None, stores: Sequence[str]) -> list[dict[str, Any]]:
    target, goal = "Cold open + first get, median", f"< {COLD_OPEN_LIMIT_MS:g} ms"
    measured = {row["system"]: row for row in (cold or {}).get("results", [])}
    names = [f"{CACHEKIT_PREFIX}{store}" for store in stores]
    names += [name for name in measured if name.startswith(CACHEKIT_PREFIX) and name not in names]
    rows = []
    for name in names or [f"{CACHEKIT_PREFIX}sqlite"]:
        row = measured.get(name)
        if row is None:
            why = "the cold-open benchmark did not run" if not cold else f"{name}: not measured"
            rows.append(_row(target, goal, f"cold open, {name}", why, None, NOT_MEASURED))
            continue
        median = row["open_get"]["median_ms"]
        figures = (
            f"{median:.2f} ms (p90 {row['open_get']['p90_ms']:.2f} ms; import {row['import']['median_ms']:.1f} ms)"
        )
        rows.append(
            _row(target, goal, f"cold open, {name}", figures, median, MET if median < COLD_OPEN_LIMIT_MS else MISSED)
        )
    return rows


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, computed from the reports in ``results`` (keys ``latency``, ``mixed``, ``cold_open``)."""
    stores = sorted((results.get("machine") or {}).get("stores", {}))
    return [
        *_latency_targets(results.get("latency")),
        *_mixed_targets(results.get("mixed")),
        *_cold_open_targets(results.get("cold_open"), stores),
    ]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] = ()) -> list[str]:
    """A Markdown table with padded columns; ``right[i]`` right-aligns column ``i``."""
    widths = [
        max(len(header), *(len(row[index]) for row in rows)) if rows else len(header)
        for index, header in enumerate(headers)
    ]
    aligned = [bool(right[index]) if index < len(right) else False for index in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                f"{cell:>{width}}" if flush else f"{cell:<{width}}"
                for cell, width, flush in zip(cells, widths, aligned, strict=True)
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join(
            ("-" * (width + 1) + ":") if flush else "-" * (width + 2)
            for width, flush in zip(widths, aligned, strict=True)
        )
        + "|"
    )
    return [line(headers), rule, *(line(row) for row in rows)]


def targets_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    body = [[row["target"], row["goal"], row["where"], row["figures"], row["verdict"]] for row in rows]
    lines = _table(["target", "goal", "where", "figures", "verdict"], body)
    counts = {verdict: sum(row["verdict"] == verdict for row in rows) for verdict in (MET, MISSED, NOT_MEASURED)}
    lines += ["", f"{counts[MET]} met, {counts[MISSED]} missed, {counts[NOT_MEASURED]} not measured."]
    return lines


def print_targets(rows: Sequence[dict[str, Any]]) -> None:
    print("# Targets")
    print()
    print("The issue's targets, computed from the figures above (medians unless stated; one line per workload).")
    print()
    for line in targets_markdown(rows):
        print(line)
    print()


# -- the summary ------------------------------------------------------------------------------------


def _format_us(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def _latency_summary(latency: dict[str, Any]) -> list[str]:
    rows = latency.get("results") or []
    if not rows:
        return []
    systems: list[str] = []
    workloads: list[tuple[int, int]] = []
    for row in rows:
        if row["system"] not in systems:
            systems.append(row["system"])
        if (row["value_size"], row["key_count"]) not in workloads:
            workloads.append((row["value_size"], row["key_count"]))
    by_key = {(row["system"], row["value_size"], row["key_count"], row["operation"]): row for row in rows}
    lines = ["### Latency: median (p99) in microseconds, one process", ""]
    for size, count in workloads:
        body = []
        for system in systems:
            cells = [system]
            for operation in ("get-hit", "set"):
                found = by_key.get((system, size, count, operation))
                cells.append(f"{_format_us(found['median_us'])} ({_format_us(found['p99_us'])})" if found else "-")
            body.append(cells)
        lines += [f"{_workload_name(size, count)}:", ""]
        lines += _table(["system", "get-hit", "set"], body, [False, True, True])
        lines.append("")
    return lines


def _mixed_summary(mixed: dict[str, Any]) -> list[str]:
    rows = mixed.get("throughput") or []
    if not rows:
        return []
    counts = sorted({row["processes"] for row in rows})
    systems: list[str] = []
    for row in rows:
        if row["system"] not in systems:
            systems.append(row["system"])
    by_key = {(row["system"], row["processes"]): row["ops_per_second"] for row in rows}
    body = [
        [system, *(f"{by_key[(system, n)]:,.0f}" if (system, n) in by_key else "-" for n in counts)]
        for system in systems
    ]
    headers = ["system", *(f"{n} process" + ("" if n == 1 else "es") for n in counts)]
    return [
        "### Mixed workload: throughput, operations per second",
        "",
        *_table(headers, body, [False] + [True] * len(counts)),
        "",
    ]


def _zipf_summary(zipf: dict[str, Any]) -> list[str]:
    rows = zipf.get("results") or []
    if not rows:
        return []
    config = zipf.get("config", {})
    body = [
        [
            row["system"],
            row["policy"],
            f"{100 * row['hit_ratio']:.1f} %",
            f"{100 * row['exact_hit_ratio']:.1f} %",
            f"{100 * row['exact_lru_hit_ratio']:.1f} %",
            f"{row['entries_at_end']:,}",
            f"{row['ops_per_second']:,.0f}",
        ]
        for row in rows
    ]
    headers = ["system", "policy", "hit ratio", "exact, same policy", "exact LRU", "entries at end", "ops/s"]
    intro = (
        f"{config.get('gets', 0):,} gets over {config.get('key_count', 0):,} keys, Zipf exponent "
        f"{config.get('exponent', 0):g}, values of {config.get('value_size', 0):,} B, size_limit "
        f"{config.get('size_limit', 0):,} bytes ({100 * config.get('fraction', 0):g} % of all keys' volume):"
    )
    return [
        "### Zipf: hit ratio",
        "",
        intro,
        "",
        *_table(headers, body, [False, False, True, True, True, True, True]),
        "",
    ]


def _cold_summary(cold: dict[str, Any]) -> list[str]:
    rows = cold.get("results") or []
    if not rows:
        return []
    body = [
        [row["system"], *(f"{row[phase]['median_ms']:.2f}" for phase in ("import", "open_get", "process"))]
        for row in rows
    ]
    headers = ["system", "import ms", "open + first get ms", "process ms"]
    runs = cold.get("config", {}).get("runs", 0)
    return [
        f"### Cold open: medians of {runs} fresh processes",
        "",
        *_table(headers, body, [False, True, True, True]),
        "",
    ]


def summary_markdown(results: dict[str, Any], image_prefix: str = "") -> str:
    """The short version of a run: its targets, its main tables and its plots (paths under ``image_prefix``)."""
    info = results.get("machine", {})
    filesystem = info.get("filesystem") or "an unknown filesystem"
    lines = [
        f"Generated {results.get('generated_at', '?')} by `{' '.join(results.get('config', {}).get('command', []))}`"
        + (
            " (a quick run: small samples, read the figures as a smoke test)"
            if results.get("config", {}).get("quick")
            else ""
        )
        + ".",
        "",
        f"Machine: {info.get('cpu_model') or 'unknown CPU'}, {info.get('cpu_count')} CPUs, {info.get('platform')}; "
        f"{info.get('python')}; SQLite {info.get('sqlite')}; data on {filesystem}"
        + (f" ({results['disk'].get('device')})" if results.get("disk", {}).get("device") else "")
        + f"; load average at start {' '.join(f'{x:.2f}' for x in info.get('load_average') or [])}.",
        "",
        "### Targets",
        "",
        *targets_markdown(results.get("targets", [])),
        "",
    ]
    lines += _latency_summary(results.get("latency") or {})
    lines += _mixed_summary(results.get("mixed") or {})
    lines += _zipf_summary(results.get("zipf") or {})
    lines += _cold_summary(results.get("cold_open") or {})
    plots = results.get("plots") or []
    if plots:
        lines += ["### Plots", ""]
        lines += [f"![{Path(name).stem}]({image_prefix}{name})" for name in plots]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# -- plots -----------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _plot_latency(pyplot: Any, latency: dict[str, Any], directory: Path) -> list[str]:
    rows = latency.get("results") or []
    names = []
    workloads: list[tuple[int, int]] = []
    for row in rows:
        if (row["value_size"], row["key_count"]) not in workloads:
            workloads.append((row["value_size"], row["key_count"]))
    statistics = (("median_us", "median"), ("p90_us", "p90"), ("p99_us", "p99"))
    for size, count in workloads:
        here = [row for row in rows if (row["value_size"], row["key_count"]) == (size, count)]
        systems: list[str] = []
        for row in here:
            if row["system"] not in systems:
                systems.append(row["system"])
        by_key = {(row["system"], row["operation"]): row for row in here}
        figure, axes = pyplot.subplots(1, 2, figsize=(13, max(4.0, 0.42 * len(systems) + 1.5)), sharey=True)
        height = 0.8 / len(statistics)
        for axis, operation in zip(axes, ("get-hit", "set"), strict=True):
            for index, (statistic, label) in enumerate(statistics):
                values = [by_key[(s, operation)][statistic] if (s, operation) in by_key else 0 for s in systems]
                positions = [number + (index - 1) * height for number in range(len(systems))]
                axis.barh(positions, values, height=height, label=label)
            axis.set_xscale("log")
            axis.set_title(f"{operation}")
            axis.set_xlabel("microseconds (log scale)")
            axis.grid(axis="x", which="both", alpha=0.3)
        axes[0].set_yticks(range(len(systems)))
        axes[0].set_yticklabels(systems)
        axes[0].invert_yaxis()
        axes[1].legend(loc="lower right")
        figure.suptitle(f"Latency per call, one process: {_workload_name(size, count)}")
        figure.tight_layout()
        name = f"latency-{size}B-{count}keys.png"
        figure.savefig(directory / name, dpi=90)
        pyplot.close(figure)
        names.append(name)
    return names


def _plot_mixed(pyplot: Any, mixed: dict[str, Any], directory: Path) -> list[str]:
    rows = mixed.get("throughput") or []
    if not rows:
        return []
    systems: list[str] = []
    for row in rows:
        if row["system"] not in systems:
            systems.append(row["system"])
    figure, axis = pyplot.subplots(figsize=(9, 5.5))
    for system in systems:
        points = sorted((row["processes"], row["ops_per_second"]) for row in rows if row["system"] == system)
        style = "-" if system.startswith(CACHEKIT_PREFIX) else "--"
        axis.plot([p for p, _ in points], [t for _, t in points], style, marker="o", label=system)
    counts = sorted({row["processes"] for row in rows})
    axis.set_xscale("log", base=2)
    axis.set_xticks(counts)
    axis.set_xticklabels([str(count) for count in counts])
    axis.set_yscale("log")
    axis.set_xlabel("processes")
    axis.set_ylabel("operations per second (log scale)")
    axis.set_title("Mixed workload (90 % get, 9 % set, 1 % delete): throughput")
    axis.grid(which="both", alpha=0.3)
    axis.legend(fontsize="small", loc="best")
    figure.tight_layout()
    name = "mixed-throughput.png"
    figure.savefig(directory / name, dpi=90)
    pyplot.close(figure)
    return [name]


def _plot_zipf(pyplot: Any, zipf: dict[str, Any], directory: Path) -> list[str]:
    rows = zipf.get("results") or []
    if not rows:
        return []
    policies: list[str] = []
    systems: list[str] = []
    for row in rows:
        if row["policy"] not in policies:
            policies.append(row["policy"])
        if row["system"] not in systems:
            systems.append(row["system"])
    by_key = {(row["system"], row["policy"]): row for row in rows}
    exact = {row["policy"]: row["hit_ratio"] for row in zipf.get("simulations", [])}
    width = 0.8 / (len(systems) + 1)
    figure, axis = pyplot.subplots(figsize=(10, 5.5))
    for index, system in enumerate(systems):
        positions = [group + index * width for group in range(len(policies))]
        values = [100 * by_key[(system, p)]["hit_ratio"] if (system, p) in by_key else 0 for p in policies]
        axis.bar(positions, values, width=width, label=system)
    positions = [group + len(systems) * width for group in range(len(policies))]
    axis.bar(positions, [100 * exact.get(p, 0) for p in policies], width=width, label="exact simulation", color="0.6")
    if "least-recently-used" in exact:
        axis.axhline(100 * exact["least-recently-used"], color="black", linestyle="--", linewidth=1, label="exact LRU")
    axis.set_xticks([group + len(systems) * width / 2 for group in range(len(policies))])
    axis.set_xticklabels(policies)
    axis.set_ylabel("hit ratio, %")
    axis.set_ylim(0, 100)
    config = zipf.get("config", {})
    axis.set_title(
        f"Zipf ({config.get('exponent', 0):g}) read-through trace, size_limit {100 * config.get('fraction', 0):g} % "
        "of all keys: hit ratio"
    )
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize="small", loc="upper left")
    figure.tight_layout()
    name = "zipf-hit-ratio.png"
    figure.savefig(directory / name, dpi=90)
    pyplot.close(figure)
    return [name]


def _plot_cold_open(pyplot: Any, cold: dict[str, Any], directory: Path) -> list[str]:
    rows = cold.get("results") or []
    if not rows:
        return []
    phases = (("import", "import"), ("open_get", "open + first get"), ("process", "whole process"))
    height = 0.8 / len(phases)
    figure, axis = pyplot.subplots(figsize=(10, max(4.0, 0.45 * len(rows) + 1.5)))
    for index, (phase, label) in enumerate(phases):
        positions = [number + (index - 1) * height for number in range(len(rows))]
        # The baseline's empty phases (about 0 ms) get no bar: they would stretch the log scale.
        values = [row[phase]["median_ms"] if row[phase]["median_ms"] >= 0.005 else float("nan") for row in rows]
        axis.barh(positions, values, height=height, label=label)
    axis.axvline(
        COLD_OPEN_LIMIT_MS, color="black", linestyle="--", linewidth=1, label=f"{COLD_OPEN_LIMIT_MS:g} ms target"
    )
    axis.set_yticks(range(len(rows)))
    axis.set_yticklabels([row["system"] for row in rows])
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlabel("milliseconds, median (log scale)")
    axis.set_title("Cold open in a fresh process")
    axis.grid(axis="x", which="both", alpha=0.3)
    axis.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    name = "cold-open.png"
    figure.savefig(directory / name, dpi=90)
    pyplot.close(figure)
    return [name]


def make_plots(results: dict[str, Any], directory: Path) -> tuple[list[str], list[str]]:
    """Write the PNG plots of ``results`` into ``directory``; return (file names, notes).

    Old plots (files named with ``PLOT_PREFIXES``) are removed first, so the
    directory holds the plots of this run only.
    """
    for old in directory.glob("*.png"):
        if old.name.startswith(PLOT_PREFIXES):
            old.unlink()
    try:
        pyplot = _pyplot()
    except ImportError:
        return [], ['matplotlib is not installed (pip install "cachekit[bench]"): no plots']
    names: list[str] = []
    notes: list[str] = []
    plotters = (
        ("latency", _plot_latency),
        ("mixed", _plot_mixed),
        ("zipf", _plot_zipf),
        ("cold_open", _plot_cold_open),
    )
    for key, plot in plotters:
        report = results.get(key)
        if not report:
            continue
        try:
            names += plot(pyplot, report, directory)
        except Exception as error:  # a plot that fails must not lose the figures
            notes.append(f"the {key} plot failed: {type(error).__name__}: {error}")
            pyplot.close("all")
    return names, notes


# -- the disk ---------------------------------------------------------------------------------------


def disk(path: str) -> dict[str, Any]:
    """The mount holding ``path``: its device, mount point, filesystem, and (Linux) the disk's model and kind."""
    path = os.path.realpath(path)
    found: dict[str, Any] = {"device": None, "mount": None, "filesystem": None, "model": None, "rotational": None}
    best = ""
    try:
        with open("/proc/mounts", encoding="utf-8") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 3:
                    continue
                mount = fields[1].replace("\\040", " ")
                inside = path == mount or path.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best = mount
                    found.update(device=fields[0], mount=mount, filesystem=fields[2])
    except OSError:
        return found
    device = found["device"] or ""
    if device.startswith("/dev/"):
        block = os.path.realpath(f"/sys/class/block/{os.path.basename(device)}")
        if not os.path.exists(os.path.join(block, "queue")):
            block = os.path.dirname(block)  # a partition: the disk is its parent
        for name, key in (("queue/rotational", "rotational"), ("device/model", "model")):
            try:
                with open(os.path.join(block, name), encoding="utf-8") as handle:
                    text = handle.read().strip()
            except OSError:
                continue
            found[key] = (text == "1") if key == "rotational" else (text or None)
    return found
