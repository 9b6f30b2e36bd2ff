"""Command line: ``mathrecipes ingest | grade | validate | plan | trace``.

``ingest`` turns a source (a local file or a Hugging Face dataset) plus a format adapter into a
canonical parquet file, with the same code the Snakemake ingest rules run. ``grade`` grades a
jsonl or parquet file of predictions against gold answers (field names are options) and prints a
summary. ``validate [CONFIG]`` checks a config against the schema (what the Snakefile does before
any job). ``plan CONFIG`` prints what a config will cost and what it can detect, before running
(docs/plan.md). ``trace CELL`` prints every file behind a table cell (``student/recipe/benchmark``)
with its content hash, from ``results/tables/provenance.json``.
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


def _plan(args: argparse.Namespace) -> int:
    from mathrecipes.plan import PlanError, build_plan
    from mathrecipes.plan.report import render

    try:
        doc = build_plan(args.config, results=args.results, snakefile=args.snakefile)
    except PlanError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=False))
    else:
        print(render(doc), end="")
    return 0


TRACE_KINDS = ("checkpoint", "generations", "grades")


def _provenance_shape_problem(cells: object, cell: str) -> str:
    """What is wrong with the shape of a provenance.json (as ``make_tables`` writes it,
    :func:`mathrecipes.tables._provenance`) as far as tracing ``cell`` reads it; '' if nothing."""
    if not isinstance(cells, dict):
        return f"expected a JSON object of cells, got {type(cells).__name__}"
    if cell not in cells:
        return ""
    entry = cells[cell]
    if not isinstance(entry, dict):
        return f"cell {cell!r} is not an object"
    files: list[tuple[str, object]] = []
    for field in ("train", "synthesis_shards", "seeds"):
        if not isinstance(entry.get(field), dict):
            return f"cell {cell!r}: {field!r} is not an object"
    files += [("train", entry["train"]), ("synthesis_shards", entry["synthesis_shards"])]
    for seed, kinds in entry["seeds"].items():
        if not isinstance(kinds, dict):
            return f"cell {cell!r}: seeds[{seed!r}] is not an object"
        files += [(f"seeds[{seed!r}].{kind}", kinds.get(kind, {})) for kind in TRACE_KINDS]
    for where, mapping in files:
        if not isinstance(mapping, dict):
            return f"cell {cell!r}: {where} is not an object of file -> sha256"
        for name, digest in mapping.items():
            if digest is not None and not isinstance(digest, str):
                return f"cell {cell!r}: {where}[{name!r}] is not a sha256 hex string"
    return ""


def _trace(args: argparse.Namespace) -> int:
    path = Path(args.provenance)
    if not path.exists():
        print(
            f"{path} does not exist: build the tables first (snakemake --cores all)",
            file=sys.stderr,
        )
        return 1
    try:
        cells = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        problem = f"is not valid JSON (not UTF-8: {exc.reason} at byte {exc.start})"
    except json.JSONDecodeError as exc:
        problem = f"is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
    else:
        shape = _provenance_shape_problem(cells, args.cell)
        problem = f"has the wrong shape: {shape}" if shape else ""
    if problem:
        print(
            f"error: {path} {problem}. It is written by the make_tables rule: rebuild it with "
            "`snakemake --cores all --forcerun make_tables` (the grades and checkpoints it "
            "lists are kept)",
            file=sys.stderr,
        )
        return 1
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
        for kind in TRACE_KINDS:
            for p, h in files.get(kind, {}).items():
                print(f"    {kind:<12} {p}  sha256:{short(h)}")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from mathrecipes.config import plain, validate_source
    from mathrecipes.ingest import ingest
    from mathrecipes.provenance import Manifest
    from mathrecipes.records import RecordError

    spec: dict = {"source": args.source, "path": args.path, "format": args.format}
    if args.source == "hf":
        spec.update(name=args.config_name, split=args.split, revision=args.revision)
        spec["streaming"] = args.streaming
    if args.limit:
        spec["limit"] = args.limit
    spec["on_bad_row"] = args.on_bad_row
    if args.field:
        spec["fields"] = dict(f.split("=", 1) for f in args.field)
    if args.text_field:
        spec["text_field"] = args.text_field
    if args.chunk_chars:
        spec["chunk_chars"] = args.chunk_chars
    try:
        spec = plain(validate_source(spec, key="option"))
    except ConfigError as exc:
        print(str(exc).replace("config key 'option.", "option '--"), file=sys.stderr)
        return 2
    out = Path(args.output)
    quarantine = out.with_name(out.stem + ".quarantine.parquet")
    try:
        with Manifest("ingest", params=spec) as m:
            summary = ingest(args.name, spec, out, quarantine, progress=not args.quiet)
            m.add(summary=summary)
            m.write([out, quarantine])
    except (RecordError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{out}: {summary['rows']} rows, {summary['quarantined']} quarantined; answer types: "
        + ", ".join(f"{k} {v}" for k, v in summary["answer_types"].items())
    )
    return 0


def _read_rows(path: Path) -> list[dict]:
    from mathrecipes.sources.local import LocalSource
    from mathrecipes.sources.rows import BadRow

    rows = []
    for where, row in LocalSource("input", {"source": "local", "path": str(path)}).rows():
        if isinstance(row, BadRow):
            raise ValueError(f"{where}: {row.reason}")
        rows.append(row)
    return rows


def _grade(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from mathrecipes.grading import GradeSettings, grade_records
    from mathrecipes.records import write_table

    try:
        policy = {}
        for item in args.policy or []:
            key, _, value = item.partition("=")
            try:
                policy[key] = json.loads(value)
            except json.JSONDecodeError:
                policy[key] = value
        settings = GradeSettings.from_dict(
            {"timeout_s": args.timeout, "workers": args.workers, **policy}
        )
        rows = _read_rows(Path(args.input))
        graded, summary = grade_records(
            rows,
            prediction_field=args.prediction_field,
            gold_field=args.gold_field,
            id_field=args.id_field,
            settings=settings,
            finish_field=args.finish_field,
            audit=args.audit,
            progress=not args.quiet,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {args.input}: {exc}", file=sys.stderr)
        return 1
    write_table(pa.Table.from_pylist(graded), args.output)
    n = summary["n"]
    print(f"{args.output}: {n} rows graded by {summary['grader']} {summary['grader_version']}")
    for verdict in ("correct", "incorrect", "no_answer", "timeout", "gold_unparseable"):
        print(f"  {verdict:<17} {summary[verdict]:>7}  ({100 * summary[verdict] / max(n, 1):.1f}%)")
    acc = summary["accuracy"]
    print(
        f"  accuracy          {'n/a' if acc is None else f'{100 * acc:.2f}%'} (gold_unparseable excluded)"
    )
    if args.audit and summary.get("agreement"):
        for key, value in summary["agreement"].items():
            print(f"  agreement {key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mathrecipes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    i = sub.add_parser("ingest", help="a source + format adapter to a canonical parquet")
    i.add_argument("path", help="local file or glob (--source local), Hub id or folder (hf)")
    i.add_argument("-o", "--output", required=True, help="output parquet")
    i.add_argument("--source", choices=("local", "hf"), default="local")
    i.add_argument("--format", default="canonical", help="format adapter, e.g. gsm8k, math")
    i.add_argument("--name", default="data", help="dataset name: the id prefix")
    i.add_argument("--config-name", help="hf: dataset config name")
    i.add_argument("--split", default="train", help="hf: split")
    i.add_argument("--revision", help="hf: branch, tag or commit")
    i.add_argument("--streaming", action="store_true", help="hf: stream instead of download")
    i.add_argument("--limit", type=int, help="only the first N rows")
    i.add_argument("--field", action="append", help="canonical=column, repeatable")
    i.add_argument("--text-field", help="format text: the column holding the text (text)")
    i.add_argument("--chunk-chars", type=int, help="format text: chunks of at most N characters")
    i.add_argument("--on-bad-row", choices=("fail", "quarantine"), default="fail")
    i.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    i.set_defaults(func=_ingest)
    g = sub.add_parser("grade", help="grade a jsonl / json / parquet of predictions")
    g.add_argument("input", help="predictions with gold answers (jsonl, json, parquet, csv)")
    g.add_argument("-o", "--output", required=True, help="output parquet of verdicts")
    g.add_argument("--prediction-field", default="completion", help="the model output")
    g.add_argument("--gold-field", default="answer", help="the gold final answer")
    g.add_argument("--id-field", help="row id (default: row position)")
    g.add_argument("--finish-field", help="finish reason ('length' = hit the token limit)")
    g.add_argument("--timeout", type=float, default=5.0, help="hard per-item limit, seconds")
    g.add_argument("--workers", type=int, default=2, help="worker processes")
    g.add_argument("--policy", action="append", help="key=value grading setting, repeatable")
    g.add_argument("--audit", action="store_true", help="also plain Math-Verify and string match")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_grade)
    v = sub.add_parser("validate", help="check a config against the schema")
    v.add_argument("config", nargs="?", default="config.yaml")
    v.set_defaults(func=_validate)
    p = sub.add_parser("plan", help="what a config will cost and can detect, before running")
    p.add_argument("config", help="the config file (as given to snakemake --configfile)")
    p.add_argument(
        "--results",
        help="an earlier run's results folder: calibration and pilot grades (default: the "
        "config's results folder)",
    )
    p.add_argument("--json", action="store_true", help="one JSON document (docs/plan.md)")
    p.add_argument("--snakefile", help="the workflow (default: the repository's Snakefile)")
    p.set_defaults(func=_plan)
    t = sub.add_parser("trace", help="list the files behind a table cell")
    t.add_argument("cell", help="student/recipe/benchmark, e.g. tiny/better/arith_test")
    t.add_argument("--provenance", default="results/tables/provenance.json")
    t.set_defaults(func=_trace)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
