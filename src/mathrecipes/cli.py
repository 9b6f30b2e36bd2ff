"""Command line: ``mathrecipes validate`` and ``mathrecipes trace``.

``validate [CONFIG]`` checks a config against the schema (what the Snakefile does before any job)
and prints the size of the grid. ``trace CELL`` prints every file behind a table cell
(``student/recipe/benchmark``) with its content hash, from ``results/tables/provenance.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from mathrecipes.config import ConfigError, load_config


def _validate(args: argparse.Namespace) -> int:
    try:
        raw = yaml.safe_load(Path(args.config).read_text())
        cfg = load_config(raw or {})
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1
    runs = len(cfg.students) * len(cfg.recipes) * len(cfg.seeds)
    print(
        f"{args.config}: valid. {len(cfg.datasets)} dataset(s), {len(cfg.synthesis)} synthesis "
        f"entr{'y' if len(cfg.synthesis) == 1 else 'ies'}, {len(cfg.recipes)} recipe(s), "
        f"{runs} training run(s), {runs * len(cfg.benchmarks)} evaluation(s)."
    )
    return 0


def _trace(args: argparse.Namespace) -> int:
    path = Path(args.provenance)
    if not path.exists():
        print(
            f"{path} does not exist: build the tables first (snakemake --cores all)",
            file=sys.stderr,
        )
        return 1
    cells = json.loads(path.read_text())
    if args.cell not in cells:
        print(f"no cell {args.cell!r}; cells: {', '.join(sorted(cells))}", file=sys.stderr)
        return 1
    cell = cells[args.cell]
    short = lambda h: (h or "?")[:12]  # noqa: E731
    print(f"{args.cell}")
    for p, h in cell["train"].items():
        print(f"  training set     {p}  sha256:{short(h)}")
    for p, h in cell["synthesis_shards"].items():
        print(f"  synthesis shard  {p}  sha256:{short(h)}")
    for seed, files in sorted(cell["seeds"].items()):
        print(f"  seed {seed}")
        for kind in ("checkpoint", "generations", "grades"):
            for p, h in files.get(kind, {}).items():
                print(f"    {kind:<12} {p}  sha256:{short(h)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mathrecipes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check a config against the schema")
    v.add_argument("config", nargs="?", default="config.yaml")
    v.set_defaults(func=_validate)
    t = sub.add_parser("trace", help="list the files behind a table cell")
    t.add_argument("cell", help="student/recipe/benchmark, e.g. tiny/better/arith_test")
    t.add_argument("--provenance", default="results/tables/provenance.json")
    t.set_defaults(func=_trace)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
