"""Grading records and files: :func:`grade_records` (any rows) and :func:`grade_file` (a
generations parquet against a benchmark parquet), with the summary written to manifests.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mathrecipes.grading.audit import agreement, category, disagreements
from mathrecipes.grading.groups import MAX_REPRESENTATIVES, answer_groups
from mathrecipes.grading.items import GradeItem, Verdict, grade_items, summarize
from mathrecipes.grading.pool import Pool
from mathrecipes.grading.settings import GRADER_NAME, GradeSettings, grader_version


def _summary(verdicts: Sequence[Verdict], settings: GradeSettings, audit: bool) -> dict[str, Any]:
    summary = summarize(v.verdict for v in verdicts)
    scored = summary["n"] - summary["gold_unparseable"]
    summary["no_answer_rate"] = summary["no_answer"] / scored if scored else None
    summary["truncated"] = sum(v.rule == "truncated" for v in verdicts)
    summary["grader"] = GRADER_NAME
    summary["grader_version"] = grader_version()
    summary["policy"] = settings.policy()
    if audit:
        summary["agreement"] = agreement(verdicts)
    return summary


def grade_records(
    rows: Iterable[Mapping[str, Any]],
    *,
    prediction_field: str,
    gold_field: str,
    id_field: str | None,
    settings: GradeSettings,
    finish_field: str | None = None,
    audit: bool = False,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Grade arbitrary records (a jsonl / parquet of predictions and gold answers).

    Each row needs ``gold_field`` (any value; numbers are written with ``str``, None is an
    empty, unparseable gold) and ``prediction_field`` (the completion; None counts as empty);
    ``id_field`` names the row (default: its position) and ``finish_field`` an optional
    finish reason (``"length"`` = hit the token limit).  Returns one dict per row, in input
    order (``row``, ``id``, ``gold``, ``extracted``, ``verdict``, ``rule``, ``seconds``,
    ``policy``, ``grader``, ``grader_version`` [, ``finish_reason``] [, with ``audit``:
    ``math_verify``, ``math_verify_extracted``, ``string_match``, ``category`` (None where all
    three agree)]) and the summary (:func:`summarize` plus ``no_answer_rate``, ``truncated``,
    ``grader``, ``grader_version``, ``policy`` [, ``agreement``]).
    """
    records = list(rows)
    items = []
    for k, r in enumerate(records):
        for field in (prediction_field, gold_field, id_field, finish_field):
            if field is not None and field not in r:
                raise ValueError(f"row {k}: missing field {field!r}")
        gold = r[gold_field]
        pred = r[prediction_field]
        key = str(r[id_field]) if id_field is not None else str(k)
        finish = r[finish_field] if finish_field is not None else None
        items.append(
            GradeItem(
                key,
                "" if gold is None else str(gold),
                "" if pred is None else str(pred),
                None if finish is None else str(finish),
            )
        )
    verdicts = grade_items(items, settings, progress=progress, audit=audit)
    version, policy = grader_version(), settings.policy_json()
    out = []
    for k, (it, v) in enumerate(zip(items, verdicts, strict=True)):
        row: dict[str, Any] = {
            "row": k,
            "id": it.key,
            "gold": it.gold,
            "extracted": v.extracted,
            "verdict": v.verdict,
            "rule": v.rule,
            "seconds": v.seconds,
            "policy": policy,
            "grader": GRADER_NAME,
            "grader_version": version,
        }
        if finish_field is not None:
            row["finish_reason"] = it.finish_reason
        if audit:
            row["math_verify"] = v.math_verify
            row["math_verify_extracted"] = v.math_verify_extracted
            row["string_match"] = v.string_match
            row["category"] = category(v, it.gold)
        out.append(row)
    return out, _summary(verdicts, settings, audit)


def grade_file(
    generations_path: str | Path,
    benchmark_path: str | Path,
    out_path: str | Path,
    settings: Mapping[str, Any] | GradeSettings,
    progress: bool = True,
    disagreements_path: str | Path | None = None,
    max_representatives: int = MAX_REPRESENTATIVES,
) -> dict[str, Any]:
    """Grade a generations parquet against a benchmark parquet; write ``out_path``.

    Generations need ``problem_id``, ``sample``, ``completion`` (``finish_reason`` is passed
    through when present and ``"length"`` there marks a truncated generation); the benchmark is
    a canonical record file (gold = ``answer``, joined on ``problem_id == id``).  The output has
    one row per (problem_id, sample), sorted, with columns problem_id, sample, gold, extracted,
    verdict, rule, grader, grader_version, policy, seconds, answer_group [, finish_reason].

    ``answer_group`` (int64, null for a sample that does not vote) groups the samples of a
    problem whose answers the grader judges equivalent, for majority voting: ids 0, 1, ... by
    first appearance, every ``correct`` sample in the gold's group; see
    :mod:`mathrecipes.grading.groups` (``max_representatives`` bounds its comparisons).  With
    several samples per problem one worker pool serves grading and grouping; with one sample
    per problem grouping runs no comparison.

    With ``disagreements_path`` every row is also graded by plain Math-Verify and by string
    match (see :mod:`mathrecipes.grading.audit`) and the rows where the three disagree are
    written there (problem_id, sample, gold, extracted, ours, rule, math_verify,
    math_verify_extracted, string_match, category).  Returns :func:`summarize` plus
    ``no_answer_rate`` (no_answer / scored rows), ``truncated``, ``grader``, ``grader_version``,
    ``policy``, ``answer_groups`` (comparisons, timeouts, fallbacks, max_representatives,
    max_timeouts: :class:`~mathrecipes.grading.groups.GroupCounts`) and, with an audit,
    ``agreement`` (fractions of rows where the graders agree about "correct") and
    ``disagreements`` (count).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mathrecipes.records import write_table

    if not isinstance(settings, GradeSettings):
        settings = GradeSettings.from_dict(settings)

    gen = pq.read_table(generations_path)
    need = [c for c in ("problem_id", "sample", "completion") if c not in gen.column_names]
    if need:
        raise ValueError(f"{generations_path}: missing column(s) {', '.join(need)}")
    bench = pq.read_table(benchmark_path)
    need = [c for c in ("id", "answer") if c not in bench.column_names]
    if need:
        raise ValueError(f"{benchmark_path}: missing column(s) {', '.join(need)}")

    gold_of: dict[str, str] = {}
    for pid, answer in zip(
        bench.column("id").to_pylist(), bench.column("answer").to_pylist(), strict=True
    ):
        pid = str(pid)
        answer = "" if answer is None else str(answer)
        if gold_of.setdefault(pid, answer) != answer:
            raise ValueError(f"{benchmark_path}: id {pid!r} appears with different answers")

    has_finish = "finish_reason" in gen.column_names
    rows = list(
        zip(
            [str(p) for p in gen.column("problem_id").to_pylist()],
            gen.column("sample").to_pylist(),
            gen.column("completion").to_pylist(),
            gen.column("finish_reason").to_pylist() if has_finish else [None] * gen.num_rows,
            strict=True,
        )
    )
    unknown = sorted({pid for pid, *_ in rows if pid not in gold_of})
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ValueError(
            f"{generations_path}: problem_id {unknown[0]!r}{more} not found in benchmark "
            f"{benchmark_path}"
        )
    if any(s is None for _, s, _, _ in rows):
        raise ValueError(f"{generations_path}: null value in column sample")
    rows.sort(key=lambda r: (r[0], int(r[1])))
    for a, b in zip(rows, rows[1:], strict=False):
        if a[0] == b[0] and int(a[1]) == int(b[1]):
            raise ValueError(f"{generations_path}: duplicate row ({a[0]!r}, sample {a[1]})")

    items = [
        GradeItem(
            f"{pid}#{sample}", gold_of[pid], completion or "", None if fr is None else str(fr)
        )
        for pid, sample, completion, fr in rows
    ]
    audit = disagreements_path is not None
    pids = [r[0] for r in rows]
    with contextlib.ExitStack() as stack:
        pool = None
        if len(set(pids)) < len(pids):  # several samples of a problem: groups may compare
            # shared by grading and grouping; workers start when one of them needs them
            pool = stack.enter_context(Pool(settings, 0, min(settings.workers, len(items))))
        verdicts = grade_items(items, settings, progress=progress, audit=audit, pool=pool)
        groups, group_counts = answer_groups(
            pids, verdicts, settings, pool=pool, max_representatives=max_representatives
        )

    version = grader_version()
    columns: dict[str, pa.Array] = {
        "problem_id": pa.array([r[0] for r in rows], pa.string()),
        "sample": pa.array([int(r[1]) for r in rows], pa.int64()),
        "gold": pa.array([it.gold for it in items], pa.string()),
        "extracted": pa.array([v.extracted for v in verdicts], pa.string()),
        "verdict": pa.array([v.verdict for v in verdicts], pa.string()),
        "rule": pa.array([v.rule for v in verdicts], pa.string()),
        "grader": pa.array([GRADER_NAME] * len(rows), pa.string()),
        "grader_version": pa.array([version] * len(rows), pa.string()),
        "policy": pa.array([settings.policy_json()] * len(rows), pa.string()),
        "seconds": pa.array([v.seconds for v in verdicts], pa.float64()),
        "answer_group": pa.array(groups, pa.int64()),
    }
    if has_finish:
        columns["finish_reason"] = pa.array(
            [r[3] for r in rows], gen.schema.field("finish_reason").type
        )

    summary = _summary(verdicts, settings, audit)
    summary["answer_groups"] = group_counts.as_dict(max_representatives)
    if audit:
        found = disagreements(verdicts, [it.gold for it in items])
        keep = [i for i, _ in found]
        report = {
            "problem_id": pa.array([rows[i][0] for i in keep], pa.string()),
            "sample": pa.array([int(rows[i][1]) for i in keep], pa.int64()),
        }
        for name in (
            "gold",
            "extracted",
            "ours",
            "rule",
            "math_verify",
            "math_verify_extracted",
            "string_match",
            "category",
        ):
            report[name] = pa.array([d[name] for _, d in found], pa.string())
        write_table(pa.table(report), disagreements_path)
        summary["disagreements"] = len(found)
        summary["disagreement_categories"] = dict(Counter(d["category"] for _, d in found))
    write_table(pa.table(columns), out_path)
    return summary
