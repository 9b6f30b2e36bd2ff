"""Each finished job's wall time, CPU time and peak memory, from the workflow's benchmark records.

    python benchmarks/job_figures.py RESULTS [--rule select_signatures ...]

Snakemake's ``benchmark:`` directive writes ``<results>/runtime/<rule>/<job>.tsv`` for every job
(``rules/common.smk``, ``runtime_file``): its wall seconds, ``max_rss`` (MB: the job's processes
together, sampled while it runs) and ``cpu_time``. Prints one line per job and a line per rule
(jobs, total and longest wall, largest peak).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def records(results: Path) -> list[dict]:
    out = []
    for path in sorted((results / "runtime").rglob("*.tsv")):
        rel = path.relative_to(results / "runtime").with_suffix("")
        rule, job = rel.parts[0], "/".join(rel.parts[1:]) or "-"  # runtime/<rule>.tsv: one job
        with path.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if not rows:
            continue
        last = rows[-1]

        def num(key: str, row: dict = last) -> float:
            try:
                return float(row.get(key) or "nan")
            except ValueError:
                return float("nan")

        out.append(
            {
                "rule": rule,
                "job": job,
                "s": num("s"),
                "max_rss_mb": num("max_rss"),
                "cpu_s": num("cpu_time"),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--rule", nargs="*", help="only these rules")
    args = parser.parse_args()
    recs = [r for r in records(args.results) if not args.rule or r["rule"] in args.rule]
    if not recs:
        raise SystemExit(f"{args.results}/runtime: no benchmark records")
    for r in recs:
        print(
            f"{r['rule']:24s} {r['job']:40s} {r['s']:8.1f} s  {r['cpu_s']:8.1f} s CPU  "
            f"{r['max_rss_mb'] / 1024:6.2f} GB peak"
        )
    print()
    for rule in dict.fromkeys(r["rule"] for r in recs):
        rs = [r for r in recs if r["rule"] == rule]
        print(
            f"{rule}: {len(rs)} job(s), wall {sum(r['s'] for r in rs):.1f} s in all, longest "
            f"{max(r['s'] for r in rs):.1f} s, largest peak "
            f"{max(r['max_rss_mb'] for r in rs) / 1024:.2f} GB"
        )


if __name__ == "__main__":
    main()
