"""How close `mathrecipes plan`'s calibrated estimates come to a real run.

    python benchmarks/bench_plan.py CONFIG --calibration EARLIER_RESULTS --measured RUN_RESULTS
        [--workdir DIR] [--json]

``EARLIER_RESULTS``: the results folder of an earlier run (the calibration); ``CONFIG``: a
changed config that was then run into ``RUN_RESULTS`` (its own folder). Per rule: the plan's
estimated seconds (``build_plan(CONFIG, results=EARLIER_RESULTS)``, summed over the rule's
jobs), the measured seconds of the run (the sum of the ``s`` column of
``RUN_RESULTS/runtime/<rule>/...tsv``) and their ratio (estimate / measured: above 1 the plan
overestimates). ``--workdir``: where the config's relative paths resolve (default: here).
Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mathrecipes.plan import PlanError, build_plan
from mathrecipes.plan.calibration import measured_seconds
from mathrecipes.plan.report import table


def compare(config: Path, calibration: Path, measured: Path, workdir: Path | None = None) -> list[dict]:  # fmt: skip
    """Per rule: jobs planned and measured, estimated and measured seconds, their ratio."""
    doc = build_plan(config, results=calibration, cwd=workdir)
    runs = measured_seconds(Path(measured))
    rows = []
    rules = doc["estimates"]["rules"]
    for rule in [*rules, *sorted(set(runs) - set(rules))]:
        est = rules.get(rule, {})
        if est.get("source") == "target":
            continue
        hours = est.get("hours")
        estimate = None if hours is None else hours * 3600
        jobs, seconds = runs.get(rule, (0, None))
        ratio = estimate / seconds if estimate is not None and seconds else None
        rows.append({"rule": rule, "planned_jobs": est.get("jobs", 0), "measured_jobs": jobs,
                     "estimated_s": estimate, "measured_s": seconds, "ratio": ratio,
                     "source": est.get("source", "not in the plan")})  # fmt: skip
    known = [r for r in rows if r["estimated_s"] is not None and r["measured_s"]]
    if known:
        est = sum(r["estimated_s"] for r in known)
        meas = sum(r["measured_s"] for r in known)
        rows.append({"rule": "total (rules with both)", "planned_jobs": sum(r["planned_jobs"] for r in known),
                     "measured_jobs": sum(r["measured_jobs"] for r in known), "estimated_s": est,
                     "measured_s": meas, "ratio": est / meas, "source": ""})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="the changed config that was run")
    parser.add_argument("--calibration", type=Path, required=True, help="earlier results folder")
    parser.add_argument("--measured", type=Path, required=True, help="the run's results folder")
    parser.add_argument("--workdir", type=Path, help="where the config's paths resolve")
    parser.add_argument("--json", action="store_true", help="the rows as JSON")
    args = parser.parse_args(argv)
    try:
        rows = compare(args.config, args.calibration, args.measured, args.workdir)
    except PlanError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0

    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:,.1f}"

    body = [[r["rule"], f"{r['planned_jobs']}/{r['measured_jobs']}", s(r["estimated_s"]),
             s(r["measured_s"]), "-" if r["ratio"] is None else f"{r['ratio']:.2f}", r["source"]]
            for r in rows]  # fmt: skip
    print(f"{args.config}: calibrated on {args.calibration}, measured in {args.measured}")
    print("\n".join(table(body, ["rule", "jobs plan/run", "estimated s", "measured s",
                                 "ratio", "source"])))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
