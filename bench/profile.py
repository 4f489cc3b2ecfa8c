"""Where path (c)'s ingest time goes: ``python -m bench.profile --rows 1000000 [--path c|b|c-hash] [--pages N]``.

Seeds a synthetic table in its own local Snowflake, then runs path (c) (or (b), or (c-hash), to compare)
in this process under pyinstrument and writes the call tree as text (and HTML) under ``--out``.
pyinstrument is not a project requirement: ``.venv/bin/python -m pip install pyinstrument``.
The first ingest warms the server and the page cache; the second one is profiled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import paths
from bench.run import DEFAULT_OUT, SEED, parse_options, path_hyperparameters, table_name
from launch.local.services import LocalStack


def profile_path(rows: int, path: str, pages: int, out: Path) -> Path:
    """Profile one ingest of ``path`` on a ``rows``-row table; return the text report's path."""
    from pyinstrument import Profiler

    options = parse_options(["--sizes", str(rows), "--out", str(out)])
    workdir = out / "profile-work"
    with LocalStack(workdir, persist=True) as stack:
        stack.ensure_table(table_name(rows), data="synthetic", rows=rows, seed=SEED)
        files = workdir / "files"
        files.mkdir(parents=True, exist_ok=True)
        config = {"secret": stack.snowflake_secret(), "train_parquet": str(files / "train.parquet"),
                  "eval_parquet": str(files / "eval.parquet"),
                  "hyperparameters": {**path_hyperparameters(path, rows, options), "fetch_pages": str(pages)}}
        setup = paths.setup(config)
        config.update(label=path, path=path, features=setup["features"], spill_dir=str(workdir / "spill"),
                      train=False)
        paths.measure(config)  # warm-up
        profiler = Profiler(interval=0.005)
        profiler.start()
        result = paths.measure(config)
        profiler.stop()
    report = out / f"profile-{path}-{rows}-p{pages}.txt"
    report.write_text(f"{result}\n\n" + profiler.output_text(unicode=True, show_all=False))
    report.with_suffix(".html").write_text(profiler.output_html())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--path", choices=("b", "c"), default="c")
    parser.add_argument("--pages", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(profile_path(args.rows, args.path, args.pages, args.out.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
