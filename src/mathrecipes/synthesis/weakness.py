"""``weakness``: more data where the student is weak, by retrieval and by teacher-written problems.

Two steps. The first (:func:`find_seeds`, the ``weakness_seeds`` rule) runs once per entry:

1. a trained student (``probe.student`` trained on ``probe.recipe`` with ``probe.seed``) answers
   a training split (``probe.dataset``), and the project's grader grades it, as evaluation
   does; a problem whose share of correct samples is at most ``probe.max_pass_rate`` is a
   *failure* (a gold answer the grader cannot read is not one);
2. failures and the pool (the entry's ``from``) are embedded (``embedder``) and each failure
   gets its ``neighbours`` most similar pool rows with a cosine similarity of at least
   ``min_similarity``. A pool row is never its failure itself (same id or same problem text),
   and goes to one failure only: the most similar one (ties: the failure first by id), so no
   row is retrieved twice. The failures, each with its neighbours, are the entry's *seeds*.

The second is the method proper, sharded over the seeds like every method (:func:`weakness`):

- every retrieved neighbour becomes a kept row (the pool row's problem, solution and answer),
  with the failure as ``parent_id``, the pool row as ``retrieved_id`` and its similarity and
  rank;
- with ``similar: n > 0``, the teacher writes ``n`` new problems like the failure (``prompt``,
  default ``prompts/weakness/default.txt``), then solves each one ``solutions`` times with
  independent seeds (``solve_prompt``, default distill's prompt). A problem is kept only when
  every solution has a final answer and the grader finds them all equal; the kept row has the
  first solution and its answer. Otherwise it is rejected (``disagree``, ``unsolved``, ``empty``,
  ``duplicate``, ``unchanged`` ...).

A seed left with no kept row is accounted for by its rejects, or by a ``no_neighbour`` reject
when nothing was retrieved for it and nothing written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mathrecipes.answers import classify_answer_type
from mathrecipes.config import WeaknessSeedsSpec
from mathrecipes.grading import extract_answer
from mathrecipes.records import dumps_meta, loads_meta, read_many, read_records, write_records
from mathrecipes.synthesis.base import (
    INHERITED_META,
    Context,
    MethodResult,
    Sample,
    new_text_failure,
)
from mathrecipes.synthesis.rephrase import clean_rephrasing

log = logging.getLogger(__name__)

PASS_VERDICTS = ("correct",)
NOT_A_FAILURE = ("gold_unparseable",)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def pass_rates(grades: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Share of correct samples per problem id (None: the gold answer is unreadable)."""
    totals: dict[str, list[int]] = {}
    unreadable: set[str] = set()
    for g in grades:
        pid = str(g["problem_id"])
        t = totals.setdefault(pid, [0, 0])
        t[1] += 1
        t[0] += int(g["verdict"] in PASS_VERDICTS)
        if g["verdict"] in NOT_A_FAILURE:
            unreadable.add(pid)
    return {pid: (None if pid in unreadable else c / n) for pid, (c, n) in totals.items()}


def weakness_seeds(
    name: str,
    spec: WeaknessSeedsSpec | Mapping[str, Any],
    probe_path: str | Path,
    grades_path: str | Path,
    pool_paths: Sequence[str | Path],
    out_path: str | Path,
    *,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the seeds of weakness entry ``name`` (the ``weakness_seeds`` job): its probe
    split's rows, the student's grades on them, the pool's rows, embedded with the spec's
    ``embedder``. Returns the summary and the embedder's description, for the manifest."""
    import pyarrow.parquet as pq

    from mathrecipes.embedding import Embedder

    spec = WeaknessSeedsSpec.model_validate(spec)
    embedder = Embedder(
        spec.embedder.model,
        batch_size=spec.embedder.batch_size,
        key=f"synthesis.{name}.embedder.model",
    )
    grades = pq.read_table(grades_path, columns=["problem_id", "sample", "verdict"]).to_pylist()
    seeds, summary = find_seeds(
        spec,
        read_records(probe_path),
        grades,
        read_many(pool_paths),
        embedder,
        progress=progress,
    )
    write_records(seeds, out_path)
    return summary, embedder.describe()


def find_seeds(
    spec: WeaknessSeedsSpec | Mapping[str, Any],
    probe_rows: Sequence[Mapping[str, str]],
    grades: Sequence[Mapping[str, Any]],
    pool_rows: Sequence[Mapping[str, str]],
    embedder: Any,
    *,
    progress: bool = False,
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The seeds of a weakness entry (canonical records: the failures, each with its
    neighbours in ``meta["weakness"]``) and a summary for the manifest. ``spec`` holds the
    retrieval keys (:class:`~mathrecipes.config.WeaknessSeedsSpec`; a whole entry will do)."""
    spec = WeaknessSeedsSpec.model_validate(spec)
    max_pass = spec.probe.max_pass_rate
    k = spec.neighbours
    min_sim = spec.min_similarity
    rates = pass_rates(grades)
    samples: dict[str, int] = {}
    for g in grades:
        samples[str(g["problem_id"])] = samples.get(str(g["problem_id"]), 0) + 1
    graded = [r for r in probe_rows if r["id"] in rates]
    failures = [
        r for r in graded if rates[r["id"]] is not None and rates[r["id"]] <= max_pass + 1e-12
    ]
    failures.sort(key=lambda r: r["id"])
    pool = sorted(pool_rows, key=lambda r: r["id"])

    assigned: dict[int, tuple[float, int]] = {}  # pool index -> (similarity, failure index)
    if k > 0 and failures and pool:
        import numpy as np

        from mathrecipes.embedding import nearest

        q = embedder.encode([r["problem"] for r in failures], progress=progress)
        p = embedder.encode([r["problem"] for r in pool], progress=progress)
        # a few extra candidates: the failure itself may be in the pool
        idx, sims = nearest(q, p, k + 2)
        pool_norm = [_norm(r["problem"]) for r in pool]
        candidates = []  # (-sim, failure index, pool index)
        for fi, fail in enumerate(failures):
            own = _norm(fail["problem"])
            taken = 0
            for pi, sim in zip(idx[fi], sims[fi], strict=True):
                if taken == k:
                    break
                pi = int(pi)
                if pool[pi]["id"] == fail["id"] or pool_norm[pi] == own:
                    continue
                if sim < min_sim:
                    break
                candidates.append((-float(np.float32(sim)), fi, pi))
                taken += 1
        for neg_sim, fi, pi in sorted(candidates):
            if pi not in assigned:
                assigned[pi] = (-neg_sim, fi)
    neighbours: dict[int, list[dict[str, Any]]] = {}
    for pi, (sim, fi) in sorted(assigned.items(), key=lambda kv: (kv[1][1], -kv[1][0], kv[0])):
        row = pool[pi]
        lst = neighbours.setdefault(fi, [])
        lst.append(
            {
                "id": row["id"],
                "source": row.get("source", ""),
                "problem": row["problem"],
                "solution": row.get("solution", ""),
                "answer": row.get("answer", ""),
                "answer_type": row.get("answer_type") or "text",
                "meta": row.get("meta") or "",
                "similarity": round(sim, 6),
                "rank": len(lst),
            }
        )
    seeds = []
    for fi, fail in enumerate(failures):
        meta = loads_meta(fail.get("meta") or "")
        meta["weakness"] = {
            "pass_rate": rates[fail["id"]],
            "samples": samples[fail["id"]],
            "neighbours": neighbours.get(fi, []),
        }
        seeds.append({**{f: fail[f] for f in fail}, "meta": dumps_meta(meta)})
    retrieved = sum(len(v) for v in neighbours.values())
    summary = {
        "probe_rows": len(probe_rows),
        "graded": len(graded),
        "ungraded": len(probe_rows) - len(graded),
        "gold_unreadable": sum(1 for v in rates.values() if v is None),
        "failures": len(failures),
        "pool_rows": len(pool),
        "retrieved": retrieved,
        "failures_without_neighbour": sum(1 for fi in range(len(failures)) if fi not in neighbours),
        "mean_similarity": (
            round(sum(a[0] for a in assigned.values()) / len(assigned), 6) if assigned else None
        ),
    }
    return seeds, summary


def _seed_info(row: Mapping[str, str]) -> dict[str, Any]:
    return dict(loads_meta(row.get("meta") or "").get("weakness") or {})


def weakness(ctx: Context, rows: list[dict[str, str]]) -> MethodResult:
    spec = ctx.spec
    n_similar = spec.similar
    n_solutions = spec.solutions
    embedder = spec.embedder.model_dump()
    result = MethodResult()

    # 1. retrieved neighbours: kept as they are, with the failure as parent
    retrieved = 0
    for row in rows:
        info = _seed_info(row)
        for nb in info.get("neighbours", []):
            s = Sample(row, int(nb["rank"]), f"{row['id']}#n{nb['rank']}")
            meta = {
                **ctx.provenance(s),
                "teacher": None,
                "prompt": None,
                "sampling": None,
                "kind": "retrieved",
                "retrieved_id": nb["id"],
                "retrieved_source": nb["source"],
                "similarity": nb["similarity"],
                "rank": nb["rank"],
                "embedder": embedder,
                "seed_pass_rate": info.get("pass_rate"),
            }
            nb_meta = loads_meta(nb.get("meta") or "")
            meta["root_id"] = nb_meta.get("root_id") or nb["id"]
            for key in INHERITED_META:  # the retrieved row's, not the failure's
                meta.pop(key, None)
                if key in nb_meta:
                    meta[key] = nb_meta[key]
            result.kept.append(
                {
                    "id": f"{ctx.name}/{nb['id']}",
                    "source": ctx.name,
                    "problem": nb["problem"],
                    "solution": nb["solution"],
                    "answer": nb["answer"],
                    "answer_type": nb["answer_type"],
                    "meta": dumps_meta(meta),
                }
            )
            retrieved += 1

    # 2. teacher-written similar problems, kept when independent solutions agree
    written = _write_similar(ctx, rows, n_similar, n_solutions, result) if n_similar else 0

    have_kept = {loads_meta(r["meta"])["parent_id"] for r in result.kept}
    have_rejects = {r["parent_id"] for r in result.rejected}
    for row in rows:
        if row["id"] not in have_kept and row["id"] not in have_rejects:
            s = Sample(row, 0, f"{row['id']}#none")
            why = "no_neighbour: nothing retrieved for this failure"
            if not n_similar:
                why += " and similar: 0"
            result.rejected.append(ctx.reject(s, why, output=""))
    result.kept.sort(key=lambda r: r["id"])
    result.stats.update({"retrieved": retrieved, "written_kept": written})
    return result


def _write_similar(
    ctx: Context,
    rows: list[dict[str, str]],
    n_similar: int,
    n_solutions: int,
    result: MethodResult,
) -> int:
    samples: list[Sample] = []
    jobs = []
    for row in rows:
        for j in range(n_similar):
            s = Sample(row, j, f"{row['id']}#w{j}", prompt_key="prompt")
            values = {
                "problem": row["problem"],
                "solution": row["solution"],
                "answer": row["answer"],
            }
            jobs.append((s, values))
            samples.append(s)
    ctx.generate(jobs)

    fresh: list[Sample] = []
    seen: dict[tuple[str, str], int] = {}
    for s in samples:
        text = clean_rephrasing(s.text)
        failure = new_text_failure(s, text, s.parent["problem"], seen, "written problem")
        if failure is not None:
            result.rejected.append(ctx.reject(s, failure))
            continue
        s.extra["problem"] = text
        fresh.append(s)

    solve_jobs = []
    solves: dict[int, list[Sample]] = {}
    for s in fresh:
        group = []
        for m in range(n_solutions):
            solve = Sample(s.parent, s.index, f"{s.key}/solve{m}", prompt_key="solve_prompt")
            solve_jobs.append(
                (solve, {"problem": s.extra["problem"], "solution": "", "answer": ""})
            )
            group.append(solve)
        solves[id(s)] = group
    ctx.generate(solve_jobs)

    agreeing: list[tuple[Sample, list[str]]] = []
    for s in fresh:
        group = solves[id(s)]
        failure = next((g.failure() for g in group if g.failure() is not None), None)
        if failure is not None:
            result.rejected.append(ctx.reject(s, f"unsolved: {failure}", output=_dump(s, group)))
            continue
        answers = [(extract_answer(g.text)[0] or "").strip() for g in group]
        if not all(answers):
            missing = [m for m, a in enumerate(answers) if not a]
            why = f"unsolved: no final answer in solution(s) {missing}"
            result.rejected.append(ctx.reject(s, why, output=_dump(s, group)))
            continue
        agreeing.append((s, answers))

    clusters = ctx.checker.many_clusters([answers for _, answers in agreeing])
    kept = 0
    for (s, answers), labels in zip(agreeing, clusters, strict=True):
        group = solves[id(s)]
        if len(set(labels)) > 1:
            why = f"disagree: the {len(answers)} solutions answer {answers}"
            result.rejected.append(ctx.reject(s, why, output=_dump(s, group)))
            continue
        first = group[0]
        meta = {
            "kind": "written",
            "solve_prompt": ctx.prompt_ref("solve_prompt"),
            "solve_sampling": [g.sampling for g in group],
            "solutions_agreeing": len(group),
            "seed_pass_rate": _seed_info(s.parent).get("pass_rate"),
        }
        answer = answers[0]
        row = ctx.keep(
            s,
            several=True,
            problem=s.extra["problem"],
            solution=first.text.strip(),
            answer=answer,
            meta=meta,
        )
        # "#w<j>" even for one problem per seed: "<entry>/<id>" is a retrieved pool row's id
        row["id"] = f"{ctx.name}/{s.parent['id']}#w{s.index}"
        row["answer_type"] = classify_answer_type(answer, problem=s.extra["problem"])
        result.kept.append(row)
        kept += 1
    return kept


def _dump(s: Sample, group: Sequence[Sample]) -> str:
    """A rejected written problem's output: the problem and every solution, as JSON."""
    return json.dumps(
        {"problem": s.extra.get("problem", s.text), "solutions": [g.text for g in group]},
        ensure_ascii=False,
    )
