"""The plan document (:func:`mathrecipes.plan.build_plan`) as text for a terminal."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from mathrecipes.plan.units import UNIT_LABELS


def count(value: float | None, unknown: int = 0) -> str:
    """1234 -> 1,234; 12_300_000 -> 12.3 M; None -> ?; ``unknown``: jobs left out of the sum."""
    if value is None or (unknown and not value):
        return "?"
    v = float(value)
    if abs(v) >= 1e9:
        text = f"{v / 1e9:.3g} G"
    elif abs(v) >= 1e6:
        text = f"{v / 1e6:.3g} M"
    elif abs(v) >= 1e4:
        text = f"{v / 1e3:.3g} k"
    else:
        text = f"{v:,.0f}" if v == int(v) else f"{v:.3g}"
    return f"{text} (+{unknown} jobs unknown)" if unknown else text


def hours(value: float | None) -> str:
    """Hours to 3 significant digits (0.00167 h, 2.5 h, 1,234 h); None -> -."""
    if value is None:
        return "-"
    if value == 0:
        return "0 h"
    return f"{value:,.0f} h" if value >= 100 else f"{value:.3g} h"


def table(rows: list[list[str]], header: list[str], indent: str = "  ") -> list[str]:
    """Aligned columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in
                 enumerate(zip(r, widths, strict=True))]  # fmt: skip
        return (indent + "  ".join(cells)).rstrip()

    return [line(header), indent + "  ".join("-" * w for w in widths), *map(line, rows)]


def _jobs(doc: dict[str, Any]) -> list[str]:
    jobs = doc["jobs"]
    pending = jobs["total"]["pending"] is not None
    header = ["rule", "jobs"] + (["would run now"] if pending else [])
    rows = [[r, str(v["planned"])] + ([str(v["pending"])] if pending else [])
            for r, v in jobs["rules"].items()]  # fmt: skip
    rows.append(["total", str(jobs["total"]["planned"])]
                + ([str(jobs["total"]["pending"])] if pending else []))  # fmt: skip
    out = ["Jobs (Snakemake's dry run of this config, --forceall)", *table(rows, header)]
    if not pending:
        out.append(f"  (no results folder at {doc['results']['path']}: nothing has run yet)")
    return out


def _group(rows: list[dict], keys: tuple[str, ...], value: str) -> list[tuple[tuple, int, float | None]]:  # fmt: skip
    """(key values, how many rows, value per row when all agree else None)."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(k) for k in keys)].append(r[value])
    out = []
    for key, values in sorted(groups.items(), key=lambda kv: [str(x) for x in kv[0]]):
        same = values[0] if all(v == values[0] for v in values) else None
        out.append((key, len(values), same))
    return out


def _work(doc: dict[str, Any]) -> list[str]:
    work, total = doc["work"], doc["work"]["total"]
    out = ["Work"]
    if work["training"]:
        rows = []
        for (student,), n, per in _group(work["training"], ("student",), "train_tokens"):
            rows.append([student, count(per), str(n), count(per * n if per is not None else None)])
        out += ["  training (train tokens = max_steps x tokens_per_step, per (student, recipe, seed))",
                *table(rows, ["student", "per run", "runs", "total"], "    ")]  # fmt: skip
        t = total["train_tokens"]
        out.append(f"    all runs: {count(t['value'], t['unknown'])} train tokens")
        notes = sorted({r["note"] for r in work["training"] if r["note"]})
        out += [f"    {note}" for note in notes]
    for key, label, value in (
        ("generation", "generation (problems x samples x max_new_tokens: an upper bound)",
         "generated_tokens"),
        ("grading", "grading (items = problems x samples)", "graded_items"),
        ("likelihood", "likelihood (reference solutions = problems; their tokens are known "
         "after ingest)", "reference_solutions"),
    ):  # fmt: skip
        if not work[key]:
            continue
        rows = []
        for (bench, probe), n, per in _group(work[key], ("benchmark", "probe"), value):
            example = next(r for r in work[key] if r["benchmark"] == bench)
            name = f"{bench} (probe)" if probe else bench
            row = [name, count(example["problems"])]
            if key == "generation":
                row += [str(example["samples"]), str(example["max_new_tokens"])]
            elif key == "grading":
                row += [str(example["samples"])]
            row += [count(per), str(n), count(per * n if per is not None else None)]
            rows.append(row)
        head = ["benchmark", "problems"]
        head += {"generation": ["samples", "max_new"], "grading": ["samples"]}.get(key, [])
        out += [f"  {label}", *table(rows, [*head, "per eval", "evals", "total"], "    ")]
        t = total[value]
        out.append(f"    all: {count(t['value'], t['unknown'])} {UNIT_LABELS[value]}")
        if key == "likelihood":
            bounds = [r["forward_tokens_upper_bound"] for r in work[key]]
            known = [b for b in bounds if b is not None]
            out.append(f"    forward tokens: at most {count(sum(known), len(bounds) - len(known))}"
                       " (reference solutions x a scratch student's model.max_position_embeddings)")  # fmt: skip
        notes: dict[str, list[str]] = defaultdict(list)
        for r in work[key]:
            if r.get("note") and r[value] is None and r["benchmark"] not in notes[r["note"]]:
                notes[r["note"]].append(r["benchmark"])
        out += [f"    {', '.join(names)}: {note}" for note, names in notes.items()]
    if work["synthesis"]:
        rows = []
        for e in work["synthesis"]:
            models = ", ".join(f"{r} {b}" for r, b in e["models"].items()) or "-"
            per = "-" if e["local"] else count(e["requests_per_row"])
            req = f"local ({e['requests_note']})" if e["local"] else count(e["requests"])
            if not e["local"] and e.get("upper_bound") and e["requests"] is not None:
                req = "<= " + req
            rows.append([e["entry"], e["method"], models, count(e["pool_rows"]), per, req])
        out += ["  synthesis (teacher requests = pool rows x requests per row)",
                *table(rows, ["entry", "method", "models", "pool rows", "req/row", "requests"],
                       "    ")]  # fmt: skip
        for e in work["synthesis"]:
            if e["pool_rows"] is None:
                out.append(f"    {e['entry']}: {e['pool_note']}")
    return out


def _estimates(doc: dict[str, Any]) -> list[str]:
    est = doc["estimates"]
    pending = doc["jobs"]["total"]["pending"] is not None
    rows = []
    for rule, v in est["rules"].items():
        if v["source"] == "target":
            continue
        kind = "GPU" if v["gpu"] else "CPU"
        h = v["hours"]
        if h is not None and v["estimated_jobs"] < v["jobs"]:
            kind += f" ({v['estimated_jobs']}/{v['jobs']} jobs)"
        source = v["source"] if v["source"] != "none" else "no estimate"
        if v["source"] == "none" and v["detail"]:
            source += f": {v['detail'][0]}"
        gpu_h = cpu_h = ""
        if v["gpu"]:
            gpu_h = hours(v["gpu_hours"]) if h is not None else "-"
        if not v["gpu"] or v["cpu_hours"]:
            cpu_h = hours(v["cpu_hours"]) if h is not None else "-"
        row = [rule, kind, gpu_h, cpu_h, source]
        if pending:
            row.insert(4, hours(v["pending_hours"]) if v["pending_jobs"] else "0 h")
        rows.append(row)
    t = est["total"]
    some = any(v["hours"] for v in est["rules"].values())
    total = ["total", "", hours(t["gpu_hours"] if some else None),
             hours(t["cpu_hours"] if some else None), ""]  # fmt: skip
    if pending:
        p = est["pending"]
        total.insert(4, f"{hours(p['gpu_hours'])} GPU + {hours(p['cpu_hours'])} CPU")
    rows.append(total)
    header = ["rule", "jobs ask for", "GPU-h", "CPU-h"] + (["to run now"] if pending else [])
    out = ["Estimated hours (GPU-h: job hours x GPUs; CPU-h: hours of jobs without a GPU)",
           *table(rows, [*header, "source"])]  # fmt: skip
    if not t["complete"]:
        out.append("  totals leave out: " + ", ".join(t["rules_without_estimate"]))
    if est["calibration"]:
        where = doc["earlier_run"]["path"]
        out.append(f"  calibration ({where}): seconds per job = fixed + units x per unit")
        rows = [[c["rule"], UNIT_LABELS.get(c["unit"], c["unit"]), str(c["jobs"]),
                 f"{c['fixed_s']:.3g}", f"{c['per_unit_s']:.3g}"] for c in est["calibration"]]  # fmt: skip
        out += table(rows, ["rule", "unit", "jobs", "fixed s", "s per unit"], "    ")
    return out


def _power(doc: dict[str, Any]) -> list[str]:
    p = doc["power"]
    out = [f"Power: smallest true delta between two recipes detected (paired, alpha "
           f"{p['alpha']}, power {p['power']}), in accuracy points"]  # fmt: skip
    changes = [w["change"] for w in p["benchmarks"][0]["what_if"]] if p["benchmarks"] else []
    rows, why = [], {}
    for b in p["benchmarks"]:
        mde = "?" if b["mde_points"] is None else f"{b['mde_points']:.1f}"
        row = [b["benchmark"], count(b["problems"]), str(b["samples"]), str(b["seeds"]), mde]
        for w in b["what_if"]:
            row.append("n/a" if w["mde_points"] is None else f"{w['mde_points']:.1f}")
            if w["mde_points"] is None:
                why.setdefault(w["change"], w["why"])
        rows.append(row)
    out += table(rows, ["benchmark", "problems", "samples", "seeds", "MDE", *changes])
    lines: dict[str, list[str]] = defaultdict(list)  # the same text once, naming its rows
    for b in p["benchmarks"]:
        v = b["variance"]
        if v["source"] == "pilot":
            desc = (f"pilot grades ({', '.join(v['students'])}, {v['pairs']} recipe pair(s) vs "
                    f"{p['baseline']}, {v['pilot_problems']} problems, {v['pilot_seeds']} "
                    f"seed(s), {v['pilot_samples']} sample(s))")  # fmt: skip
        else:
            desc = "the default for one greedy sample (no usable pilot grades)"
        text = (f"variance from {desc}: problem {v['problem']:.3g}, sample {v['sample']:.3g}, "
                f"seed {v['seed']:.3g}")  # fmt: skip
        lines[text].append(b["benchmark"])
        if b.get("note"):
            lines[b["note"]].append(b["benchmark"])
    for change, text in why.items():
        lines[f"n/a: {text}"].append(change)
    for text, names in lines.items():
        out.append(f"  {', '.join(names)}: {text}")
    if p["costs"]:
        rows = []
        for c in p["costs"]:
            u, h = c["unknown"], c["unknown"]["hours"]
            rows.append([c["change"], hours(c["extra_gpu_hours"]) + ("+?" if h else ""),
                         hours(c["extra_cpu_hours"]) + ("+?" if h else ""),
                         count(c["extra_train_tokens"], u["train_tokens"]),
                         count(c["extra_generated_tokens"], u["generated_tokens"]),
                         count(c["extra_graded_items"], u["graded_items"]),
                         str(h) if h else ""])  # fmt: skip
        out += ["  what it would cost (the whole config)",
                *table(rows, ["change", "+GPU-h", "+CPU-h", "+train tok", "+gen tok", "+items",
                              "jobs w/o estimate"], "    ")]  # fmt: skip
    return out


def render(doc: dict[str, Any]) -> str:
    """The whole plan as aligned text."""
    res, earlier = doc["results"], doc["earlier_run"]
    head = [f"Plan of {doc['config']}",
            f"  results folder: {res['path']} ({'exists' if res['exists'] else 'not there yet'})"]  # fmt: skip
    if earlier["path"] != res["path"]:
        there = "exists" if earlier["exists"] else "not found"
        head.append(f"  earlier run (calibration, pilot grades): {earlier['path']} ({there})")
    parts = [head, _jobs(doc), _work(doc), _estimates(doc), _power(doc)]
    if doc["notes"]:
        parts.append(["Notes", *(f"  - {n}" for n in doc["notes"])])
    return "\n\n".join("\n".join(p) for p in parts) + "\n"


__all__ = ["count", "hours", "render", "table"]
