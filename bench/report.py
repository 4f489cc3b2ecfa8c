"""Tables, ratios, target checks and the memory plot from a run's results (``bench.doc`` renders
them into ``docs/benchmarks.md``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PATH_NAMES = {
    "a": "(a) pandas.read_sql + DMatrix (AWS sample)",
    "b": "(b) fetch_pandas_all + QuantileDMatrix",
    "c": "(c) ours, scan: run_scan + fetch_share + Arrow spill + build_matrices",
    "c-hash": "(c-hash) ours, hash: fetch_shard + Arrow spill + build_matrices",
    "c'": "(c') ours, hash, paged (fetch_pages)",
    "d": "(d) local Parquet + pyarrow batches (lower bound)",
    "e": "(e) ours, scan + external memory (memory_budget_mb=1)",
}
OURS = ("c", "c-hash", "c'", "e")
BASES = ("a", "b", "d")
RATIO_METRICS = ("ingest_s", "ingest_cpu_s", "ingest_peak_mib", "peak_mib")
"""Training is the same work on every path and runs once per size, so its wall time is not compared."""
DOC_FILES = ("benchmarks.md", "benchmarks-memory.png", "benchmarks.json")


def _median(results: dict[str, Any], rows: int, path: str) -> dict[str, Any] | None:
    return next((m for m in results["medians"] if m["rows"] == rows and m["path"] == path), None)


def _sizes(results: dict[str, Any]) -> list[int]:
    return sorted({m["rows"] for m in results["medians"]})


def analyse(results: dict[str, Any]) -> dict[str, Any]:
    """RMSE agreement per size, ratios ours/(a), ours/(b), ours/(d), and the targets at the largest size."""
    tolerance = results["config"]["rmse_tolerance"]
    per_size, ratios = [], []
    for rows in _sizes(results):
        for ours in OURS:
            for base in BASES:
                mine, theirs = _median(results, rows, ours), _median(results, rows, base)
                if mine and theirs:
                    ratios.append({"rows": rows, "ours": ours, "base": base,
                                   **{k: _ratio(mine[k], theirs[k]) for k in RATIO_METRICS}})
        values = {m["path"]: m["rmse"] for m in results["medians"] if m["rows"] == rows and m["rmse"] is not None}
        if values:  # sizes above --train-max-rows were not trained
            spread = max(values.values()) / min(values.values()) - 1
            per_size.append({"rows": rows, "rmse": values, "spread": spread, "agree": spread <= tolerance})
    rmse = {"per_size": per_size, "agree": all(s["agree"] for s in per_size),
            "max_spread": max((s["spread"] for s in per_size), default=0.0), "tolerance": tolerance}
    return {"rmse": rmse, "ratios": ratios, "targets": _targets(results)}


def _targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets: (c) against (b) at the largest size, balance and queries of the scan jobs."""
    sizes = _sizes(results)
    largest, smallest = sizes[-1], sizes[0]
    b, c = _median(results, largest, "b"), _median(results, largest, "c")
    targets = []
    if b and c:
        targets += [
            _target("peak memory of (c) <= 0.35 x (b), ingest", _ratio(c["ingest_peak_mib"], b["ingest_peak_mib"]),
                    0.35),
            _target("peak memory of (c) <= 0.35 x (b), whole run", _ratio(c["peak_mib"], b["peak_mib"]), 0.35),
            _target("ingest time of (c) <= 0.9 x (b)", _ratio(c["ingest_s"], b["ingest_s"]), 0.9),
        ]
    first = _median(results, smallest, "c")
    if c and first and largest > smallest:
        rows_growth = largest / smallest
        data_growth = (c["ingest_peak_mib"] - c["base_mib"]) / max(first["ingest_peak_mib"] - first["base_mib"], 1.0)
        targets.append(_target(f"(c) ingest memory above the imports grows less than rows ({rows_growth:.0f}x, "
                               f"{smallest:,} to {largest:,})", data_growth, rows_growth, strict=True))
    scan_jobs = [j for j in _jobs(results) if j.get("read_mode") == "scan"]
    spreads = [j["balance"]["spread"] / max(j["balance"]["largest_batch"], 1) for j in scan_jobs
               if j.get("balance") and j["hosts"] > 1]
    if spreads:
        targets.append(_target("rows per host within one chunk of equal (scan; largest spread / largest chunk)",
                               max(spreads), 1.0))
    if scan_jobs:
        counts = [j["queries"]["data"] for j in scan_jobs]
        targets.append({"target": f"queries per job = 1 in scan ({len(scan_jobs)} jobs; the most)", "value": max(counts),
                        "limit": 1.0, "met": min(counts) == max(counts) == 1})
    return [t for t in targets if t["value"] is not None]


def _target(name: str, value: float | None, limit: float, strict: bool = False) -> dict[str, Any]:
    met = None if value is None else (value < limit if strict else value <= limit)
    return {"target": name, "value": value, "limit": limit, "met": met}


def _jobs(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(results.get("query_counts") or []), *(results.get("scaling") or [])]


def _ratio(mine: float | None, theirs: float | None) -> float | None:
    return mine / theirs if mine is not None and theirs else None


def _num(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown_table(results: dict[str, Any]) -> str:
    """The medians, one row per size and path (data queries: counted at the stand-in)."""
    lines = ["| rows | path | ingest s | ingest CPU s | train s | ingest + train s | peak MiB, ingest "
             "| peak MiB, whole run | MiB after imports | validation RMSE | data queries | result batches | pages |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in results["medians"]:
        pages = m["pages"] if m["path"] in ("c-hash", "c'") else ""
        lines.append(f"| {m['rows']:,} | {m['path']} | {m['ingest_s']:.2f} | {_num(m['ingest_cpu_s'], '.2f')} "
                     f"| {_num(m['train_s'], '.2f')} | {_num(m['total_s'], '.2f')} | {m['ingest_peak_mib']:,.0f} "
                     f"| {_num(m['peak_mib'], ',.0f')} | {m['base_mib']:,.0f} | {_num(m['rmse'], '.5f')} "
                     f"| {m.get('queries', '')} | {m.get('batches') or ''} | {pages} |")
    return "\n".join(lines + [skipped_line(results)]).strip()


def skipped_line(results: dict[str, Any]) -> str:
    """One line per path the run could not measure, with the reason."""
    return "\n".join(f"\n({label}) not measured: {reason}." for label, reason in (results.get("skipped") or {}).items())


def ratio_table(results: dict[str, Any], rows: int | None = None) -> str:
    """Ours over each baseline (below 1: ours is better); columns with no figure at this size are left out."""
    rows = rows or _sizes(results)[-1]
    names = {"ingest_s": "ingest time", "ingest_cpu_s": "ingest CPU seconds", "ingest_peak_mib": "peak memory, ingest",
             "peak_mib": "peak memory, whole run"}
    ratios = [r for r in results["ratios"] if r["rows"] == rows]
    columns = [k for k in RATIO_METRICS if any(r[k] is not None for r in ratios)]
    lines = [f"| at {rows:,} rows | " + " | ".join(names[k] for k in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for r in ratios:
        lines.append(f"| ({r['ours']}) / ({r['base']}) | " + " | ".join(_num(r[k], ".2f") for k in columns) + " |")
    return "\n".join(lines)


def targets_table(results: dict[str, Any]) -> str:
    lines = ["| target | measured | limit | met |", "|---|---:|---:|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['value']:.2f} | {t['limit']:.2f} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)


def rmse_table(results: dict[str, Any]) -> str:
    paths = [p for p in PATH_NAMES if any(p in s["rmse"] for s in results["rmse"]["per_size"])]
    lines = ["| rows | " + " | ".join(f"({p})" for p in paths) + " | spread | agree |",
             "|---:|" + "---:|" * len(paths) + "---:|---|"]
    for s in results["rmse"]["per_size"]:
        values = " | ".join(f"{s['rmse'][p]:.5f}" if p in s["rmse"] else "" for p in paths)
        lines.append(f"| {s['rows']:,} | {values} | {s['spread']:.2%} | {'yes' if s['agree'] else '**no**'} |")
    return "\n".join(lines)


def _per_host(job: dict[str, Any], key: str, spec: str) -> str:
    return ", ".join("?" if h[key] is None else format(h[key], spec) for h in job["per_host"])


def _balance(job: dict[str, Any]) -> str:
    b = job.get("balance")
    return "" if not b else f"{b['spread']:,} / {b['largest_batch']:,}"


def queries_table(results: dict[str, Any]) -> str:
    """Warehouse queries per job, counted at the stand-in, per read mode and host count."""
    jobs = results.get("query_counts") or []
    if not jobs:
        return "(queries per job skipped)"
    lines = ["| read mode | hosts | table rows | data queries per job | other statements per job | rows per host "
             "| result batches of the data queries |", "|---|---:|---:|---:|---|---|---|"]
    for j in jobs:
        other = ", ".join(f"{verb} {n}" for verb, n in j["queries"]["other"].items())
        batches = "; ".join(str(len(b)) for b in j["queries"]["result_batches"])
        lines.append(f"| {j['read_mode']} | {j['hosts']} | {j['rows']:,} | {j['queries']['data']} | {other} "
                     f"| {_per_host(j, 'rows', ',')} | {batches} |")
    return "\n".join(lines)


def scaling_table(results: dict[str, Any]) -> str:
    if not results.get("scaling"):
        return "(scaling skipped)"
    lines = ["| hosts | read mode | table rows | wall s | rows per host | spread / largest chunk, rows "
             "| fetch s per host | peak MiB per host | data queries | validation RMSE |",
             "|---:|---|---:|---:|---|---|---|---|---:|---:|"]
    for s in results["scaling"]:
        rmse = f"{s['validation_rmse']:.5f}" if s.get("validation_rmse") is not None else ""
        lines.append(f"| {s['hosts']} | {s.get('read_mode') or ''} | {s['rows']:,} | {s['wall_s']:.1f} "
                     f"| {_per_host(s, 'rows', ',')} | {_balance(s)} | {_per_host(s, 'fetch_s', '.1f')} "
                     f"| {_per_host(s, 'peak_mib', ',.0f')} | {s.get('queries', {}).get('data', '')} | {rmse} |")
    return "\n".join(lines)


def categorical_table(results: dict[str, Any]) -> str:
    """Ours on the table with two text columns against the all-numeric table of the same rows."""
    cat = results.get("categorical")
    if not cat:
        return "(text-column measurement skipped)"
    names = " and ".join(f"`C{k}` ({k:,} values)" for k in cat["categories"])
    lines = [f"{cat['rows']:,} rows; the categorical table adds {names} to the 8 float features.", "",
             "| table | ingest s | ingest CPU s | peak MiB, ingest |", "|---|---:|---:|---:|"]
    for kind in ("numeric", "categorical", "ratio"):
        row = cat[kind]
        label = {"numeric": "all-numeric", "categorical": "+ 2 text columns", "ratio": "**ratio**"}[kind]
        spec = ".2f" if kind == "ratio" else ".1f"
        lines.append(f"| {label} | {row['ingest_s']:{spec}} | {row['ingest_cpu_s']:{spec}} | "
                     f"{row['ingest_peak_mib']:{spec}} |")
    return "\n".join(lines)


SCORING_PATHS = {"base": "baseline: fetch_pandas_all + Booster.predict, then write_pandas",
                 "ours": "ours: the scoring job, 1 host (query, batches, predict_rows, write_pandas, publish)"}


def scoring_table(results: dict[str, Any]) -> str:
    """The scoring benchmark's medians, one row per size and path."""
    section = results.get("scoring")
    if not section:
        return "(scoring benchmark not measured)"
    lines = ["| rows | path | rows/s, whole run | read + score s | write s | publish s | whole run s | CPU s "
             "| peak MiB, read + score | peak MiB, whole run | MiB after imports |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in section["medians"]:
        publish = _num(m["publish_s"], ".2f") if m["path"] == "ours" else "(none)"
        lines.append(f"| {m['rows']:,} | {SCORING_PATHS[m['path']]} | {m['rows_per_s']:,.0f} | {m['read_score_s']:.2f} "
                     f"| {m['write_s']:.2f} | {publish} | {m['total_s']:.2f} | {m['cpu_s']:.2f} "
                     f"| {_num(m['read_score_peak_mib'], ',.0f') or '(not apart)'} | {m['peak_mib']:,.0f} "
                     f"| {m['base_mib']:,.0f} |")
    return "\n".join(lines)


def scoring_ratio_table(results: dict[str, Any]) -> str:
    """Ours over the baseline: rows per second (above 1: ours faster), memory (below 1: ours smaller)."""
    section = results.get("scoring")
    if not section or not section["ratios"]:
        return "(no scoring ratios)"
    lines = ["| rows | rows/s, whole run (both write) | rows/s, read + score | rows/s, write (+ publish) "
             "| peak MiB, whole run | peak MiB, ours whole run / baseline before its write "
             "| peak MiB above the imports |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in section["ratios"]:
        lines.append(f"| {r['rows']:,} | {r['rows_per_s']:.2f} | {r['read_score_rows_per_s']:.2f} "
                     f"| {r['write_rows_per_s']:.2f} | {r['peak_mib']:.2f} | {r['peak_mib_without_write']:.2f} "
                     f"| {r['data_mib']:.2f} |")
    return "\n".join(lines)


def scoring_jobs_table(results: dict[str, Any]) -> str:
    """The real scoring job on 1 to N local hosts: rows, seconds, rows per second and peak memory per host."""
    jobs = (results.get("scoring") or {}).get("jobs")
    if not jobs:
        return "(scoring jobs skipped)"
    lines = ["| hosts | table rows | wall s | rows/s per host, wall | rows per host | scoring s per host "
             "| rows/s per host, scoring | peak MiB per host | data queries |",
             "|---:|---:|---:|---:|---|---|---|---|---:|"]
    for j in jobs:
        lines.append(f"| {j['hosts']} | {j['rows']:,} | {j['wall_s']:.1f} | {j['rows_per_s_per_host']:,.0f} "
                     f"| {_per_host(j, 'rows', ',')} | {_per_host(j, 'score_s', '.1f')} "
                     f"| {_per_host(j, 'rows_per_s', ',.0f')} | {_per_host(j, 'peak_mib', ',.0f')} "
                     f"| {j['queries']['data']} |")
    return "\n".join(lines)


def plot_memory(results: dict[str, Any], path: Path) -> None:
    """Peak resident memory against table rows, one line per path (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    for label, name in PATH_NAMES.items():
        points = [(m["rows"], m["ingest_peak_mib"]) for m in results["medians"] if m["path"] == label]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=name,
                    linestyle="--" if label == "d" else "-", linewidth=2.2 if label == "c" else 1.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("table rows (8 float features + target)")
    ax.set_ylabel("peak resident memory of the process, MiB")
    ax.set_title("Peak memory from query to XGBoost training matrix (median)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_results(results: dict[str, Any], out: Path) -> None:
    """``results.json``, ``results.md`` (tables) and ``memory.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    sections = [markdown_table(results), *(ratio_table(results, rows) for rows in _sizes(results)),
                targets_table(results), rmse_table(results), categorical_table(results), queries_table(results),
                scaling_table(results), scoring_table(results), scoring_ratio_table(results),
                scoring_jobs_table(results)]
    (out / "results.md").write_text("\n\n".join(sections) + "\n")
    plot_memory(results, out / "memory.png")
