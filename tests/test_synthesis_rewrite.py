"""Synthesis methods ``rewrite`` (textbook-style articles) and ``extract`` (question / solution
pairs), each judged by an LLM with a rubric and a threshold, then MinHash near-dup removal.

The teachers are real ``LlamaForCausalLM`` models run by the real ``hf`` backend, with weights
set by hand so that each is a tiny Markov chain over tokens (``helpers.markov_model``, the
construction of ``helpers.chain_model``): whatever the prompt, the writer writes
one of a few fixed texts, chosen at the branch points by the request's sampling seed.

- the rewrite writer: ARTICLE ending in ``\\boxed{7}`` or ``\\boxed{8}`` (two near duplicates:
  they differ in their last word only);
- the extract writer: a ``Question: ... Solution : ... \\boxed{7|8}`` pair, or ``NONE``;
- the judge: ``Clear lesson. Score: 5`` or ``... Score: 2``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import markov_model

from mathrecipes.neardup import near_duplicates
from mathrecipes.records import read_records, write_records
from mathrecipes.synthesis import REJECT_FIELDS, Prompt, load_prompts, prompt_refs, synthesize_shard
from mathrecipes.synthesis.extract import parse_pairs
from mathrecipes.synthesis.judging import parse_score, source_text

REPO = Path(__file__).resolve().parents[1]
ARTICLE = (
    "Background: adding joins groups. Definition, sums total addends; formula a+b=c "
    "Example three plus four makes \\boxed{7}"
)
PAIR = "Question: what is three plus four? Solution : count up \\boxed{7}"
JUDGE = "Clear lesson. Score: 5"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("markov")
    eight = [ARTICLE, ARTICLE.replace("{7}", "{8}")]
    return {
        "article": markov_model(d / "article", eight),
        "pairs": markov_model(d / "pairs", [PAIR, PAIR.replace("{7}", "{8}"), "NONE"]),
        "judge": markov_model(d / "judge", [JUDGE, JUDGE.replace("5", "2")]),
    }


def hf(folder, **kw) -> dict:
    return {"backend": "hf", "model": str(folder), "max_new_tokens": 48, "temperature": 1.0,
            "top_p": 1.0, "batch_size": 8, "dtype": "float32", "seed": 0, **kw}  # fmt: skip


def spec(method, models, **kw) -> dict:
    """The spec as the workflow passes it (defaults filled in, as SynthesisSpec does)."""
    out = {
        "from": "chunks",
        "method": method,
        "teacher": hf(models["article" if method == "rewrite" else "pairs"]),
        "shards": 1,
        "prompt": None,
        "text_field": "problem",
        "judge": hf(models["judge"]),
        "judge_prompt": None,
        "min_score": 4,
        "near_dedup": {"enabled": True, "threshold": 0.8, "num_perm": 128, "ngram": 5},
    }
    if method == "extract":
        out["max_pairs"] = 8
    return {**out, **kw}


def no_dedup(**kw) -> dict:
    return {"enabled": False, "threshold": 0.8, "num_perm": 128, "ngram": 5, **kw}


def chunks(tmp_path, n=16) -> Path:
    topics = ["fractions", "primes", "angles", "ratios", "areas", "sums", "powers", "digits"]
    rows = [
        {"id": f"c/{i:02d}", "source": "c", "answer": "1", "answer_type": "integer", "meta": "{}",
         "problem": f"Notes on {topics[i % 8]}, part {i}: some raw text about {topics[i % 8]}.",
         "solution": ""}
        for i in range(n)
    ]  # fmt: skip
    write_records(rows, tmp_path / "chunks.parquet")
    return tmp_path / "chunks.parquet"


def run(tmp_path, name, sp, inputs):
    out, rej = tmp_path / f"{name}.parquet", tmp_path / f"{name}.rejects.parquet"
    summary = synthesize_shard(
        name, sp, inputs, 0, out, rej, progress=False, cache_dir=tmp_path / "cache"
    )
    return summary, read_records(out), pq.read_table(rej).to_pylist()


def meta(row) -> dict:
    return json.loads(row["meta"])


def kinds(rejects) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rejects:
        out[r["reason"].split(":")[0]] = out.get(r["reason"].split(":")[0], 0) + 1
    return out


def sha(path: str) -> str:
    return Prompt.load(REPO / path).sha256


# ------------------------------------------------------------------ parsing and prompts


def test_parse_pairs_and_scores():
    out = (
        "<think>Question: not this</think>Here they are.\n**Question 1:** What is 2+2?\n"
        "**Solution 1:** 2+2=4, so \\boxed{4}.\n\nQuestion 2: A question without a solution.\n"
        "question: Find $x$ if $x-1=2$.\nSolution: $x=3$. The answer is \\boxed{3}."
    )
    assert parse_pairs(out) == [
        ("What is 2+2?", "2+2=4, so \\boxed{4}."),
        ("Find $x$ if $x-1=2$.", "$x=3$. The answer is \\boxed{3}."),
    ]
    assert parse_pairs("NONE") == [] and parse_pairs("Solution: 5") == []
    assert parse_pairs(PAIR) == [("what is three plus four?", "count up \\boxed{7}")]
    assert parse_score("Good. Score: 4") == 4
    assert parse_score("Score: 2 at first; on reflection **Score:** 5") == 5
    assert parse_score("Final: \\boxed{3}") == 3 and parse_score("Excellent.") is None
    row = {"problem": " P ", "solution": "S"}
    assert source_text(row, "both") == "P\n\nS" and source_text(row, "solution") == "S"
    assert source_text({"problem": "P", "solution": ""}, "both") == "P"


def test_default_prompts_and_judge_prompt_refs(models):
    for method in ("rewrite", "extract"):
        sp = spec(method, models)
        refs = prompt_refs(sp)
        assert refs == {
            "prompt": f"prompts/{method}/default.txt",
            "judge_prompt": f"prompts/judge/{method}.txt",
        }
        files = {k: REPO / v for k, v in refs.items()}
        prompts = load_prompts("x", sp, files)  # the placeholders each one needs are there
        assert prompts["judge_prompt"].placeholders() >= {"text"}
    bad = spec("rewrite", models, judge_prompt="prompts/judge/extract.txt")
    with pytest.raises(ValueError, match=r"synthesis\.x\.judge_prompt .*\{article\}"):
        load_prompts("x", bad, {"prompt": REPO / "prompts/rewrite/default.txt",
                                "judge_prompt": REPO / "prompts/judge/extract.txt"})  # fmt: skip


# ------------------------------------------------------------------ rewrite


def test_rewrite_judge_threshold_filters_and_provenance(models, tmp_path):
    data = chunks(tmp_path)
    rows = read_records(data)
    sp = spec("rewrite", models, near_dedup=no_dedup())
    summary, kept, rejects = run(tmp_path, "rw", sp, [data])
    # every input row: exactly one kept article or one rejected row
    assert sorted([meta(r)["parent_id"] for r in kept] + [r["parent_id"] for r in rejects]) == [
        r["id"] for r in rows
    ]
    assert all(set(r) == set(REJECT_FIELDS) and r["attempt"] == 0 for r in rejects)
    assert kinds(rejects) == {"low_score": len(rejects)} and kept and rejects
    for r in rejects:  # the judge said 2: below min_score 4
        assert r["reason"].startswith("low_score: judge score 2 < min_score 4; judge said ")
        assert r["output"] in (ARTICLE, ARTICLE.replace("{7}", "{8}"))
        assert r["prompt"] == "prompts/rewrite/default.txt"
        assert r["prompt_sha256"] == sha("prompts/rewrite/default.txt")
        assert json.loads(r["teacher"])["model"] == str(models["article"])
    by_id = {r["id"]: r for r in rows}
    for r in kept:
        m = meta(r)
        parent = by_id[m["parent_id"]]
        assert r["id"] == f"rw/{parent['id']}" and r["problem"] == parent["problem"]
        assert r["solution"] in (ARTICLE, ARTICLE.replace("{7}", "{8}"))
        assert r["answer"] == parent["answer"] and r["answer_type"] == "integer"
        assert m["method"] == "rewrite" and m["root_id"] == parent["id"]
        assert m["teacher"]["model"] == str(models["article"]) and m["teacher"]["fingerprint"]
        assert m["prompt"] == {"path": "prompts/rewrite/default.txt",
                               "sha256": sha("prompts/rewrite/default.txt")}  # fmt: skip
        assert set(m["sampling"]) == {"max_tokens", "temperature", "top_p", "seed"}
        j = m["judge"]
        assert j["score"] == 5 and j["min_score"] == 4 and j["output"] == JUDGE
        assert j["teacher"]["model"] == str(models["judge"])
        assert j["prompt"] == {"path": "prompts/judge/rewrite.txt",
                               "sha256": sha("prompts/judge/rewrite.txt")}  # fmt: skip
        assert j["sampling"]["seed"] != m["sampling"]["seed"]
        assert m["text_field"] == "problem"
    assert summary["input_rows"] == len(rows) == summary["kept"] + summary["rejected"]
    assert summary["judge"]["model"] == str(models["judge"]) and summary["min_score"] == 4
    assert summary["usage"]["requests"] == 2 * len(rows)  # one article and one judgement each
    assert set(summary["prompts"]) == {"prompt", "judge_prompt"}

    # the threshold is what filters: at min_score 2 nothing is rejected, at 6 everything
    _, low, low_rej = run(tmp_path, "rw2", {**sp, "min_score": 2}, [data])
    assert len(low) == len(rows) and not low_rej
    _, high, high_rej = run(tmp_path, "rw6", {**sp, "min_score": 6}, [data])
    assert not high and kinds(high_rej) == {"low_score": len(rows)}


def test_rewrite_near_duplicates_are_removed(models, tmp_path):
    data = chunks(tmp_path)
    rows = read_records(data)
    _, judged, _ = run(tmp_path, "all", spec("rewrite", models, near_dedup=no_dedup()), [data])
    texts = {r["id"]: r["solution"] for r in judged}
    assert len(set(texts.values())) == 2  # both articles passed the judge: the 7 and the 8
    # the two articles differ in one word: near duplicates at 0.8, not at 0.95
    pair = [{"id": "a", "t": ARTICLE}, {"id": "b", "t": ARTICLE.replace("{7}", "{8}")}]
    assert len(near_duplicates(pair, field="t")[1]) == 1
    assert not near_duplicates(pair, field="t", threshold=0.95)[1]

    summary, kept, rejects = run(tmp_path, "nd", spec("rewrite", models), [data])
    first = min(texts)
    assert [r["id"] for r in kept] == ["nd/" + first.split("/", 1)[1]]
    dups = [r for r in rejects if r["reason"].startswith("near_duplicate")]
    assert len(dups) == len(judged) - 1 and summary["near_duplicates_removed"] == len(dups)
    assert all(r["reason"].startswith(f"near_duplicate: of {kept[0]['id']} ") for r in dups)
    assert len(kept) + len(rejects) == len(rows)

    # at 0.95 only exact copies go: the earliest row of each article stays
    strict = spec("rewrite", models, near_dedup={**no_dedup(enabled=True), "threshold": 0.95})
    _, kept, rejects = run(tmp_path, "nd95", strict, [data])
    earliest = {}
    for i in sorted(texts):
        earliest.setdefault(texts[i], i)
    assert sorted(meta(r)["parent_id"] for r in kept) == sorted(
        i.replace("all/", "") for i in earliest.values()
    )


# ------------------------------------------------------------------ extract


def test_extract_pairs_judged_deduplicated_and_chained(models, tmp_path):
    data = chunks(tmp_path)
    rows = read_records(data)
    sp = spec("extract", models, near_dedup=no_dedup())
    summary, kept, rejects = run(tmp_path, "ex", sp, [data])
    # every chunk: its one pair kept or rejected, or one no_pairs row (the writer said NONE)
    accounted = [(meta(r)["parent_id"], meta(r)["sample"]) for r in kept]
    accounted += [(r["parent_id"], r["attempt"]) for r in rejects]
    assert sorted(accounted) == [(r["id"], 0) for r in rows]
    counts = kinds(rejects)
    assert set(counts) == {"no_pairs", "low_score"} and kept
    for r in rejects:
        if r["reason"].startswith("no_pairs"):
            assert r["output"] == "NONE"
    for r in kept:
        m = meta(r)
        assert r["id"] == f"ex/{m['parent_id']}#0" and r["problem"] == "what is three plus four?"
        assert r["solution"] in ("count up \\boxed{7}", "count up \\boxed{8}")
        assert r["answer"] == r["solution"][-2] and r["answer_type"] == "integer"
        assert m["pair"] == 0 and m["n_pairs"] == 1 and m["answer_rule"] == "boxed"
        assert (
            m["judge"]["score"] == 5 and m["judge"]["prompt"]["path"] == "prompts/judge/extract.txt"
        )
        assert m["prompt"]["sha256"] == sha("prompts/extract/default.txt")
    assert {r["answer"] for r in kept} == {"7", "8"}
    assert summary["kept"] + summary["rejected"] == len(rows)

    # near dedup: every pair asks the same question, so one stays (the earliest row id)
    _, one, rej = run(tmp_path, "ex1", spec("extract", models), [data])
    assert [r["id"] for r in one] == [min(r["id"] for r in kept).replace("ex/", "ex1/")]
    dups = [r for r in rej if r["reason"].startswith("near_duplicate")]
    assert len(dups) == len(kept) - 1 and all(f"of {one[0]['id']} " in r["reason"] for r in dups)

    # chained: extract from the rewrite entry's articles (text_field: solution)
    run(tmp_path, "rw", spec("rewrite", models, near_dedup=no_dedup()), [data])
    chain = spec("extract", models, near_dedup=no_dedup(), text_field="solution", min_score=2)
    chain["from"] = "rw"
    _, kept2, rejects2 = run(tmp_path, "ex2", chain, [tmp_path / "rw.parquet"])
    articles = read_records(tmp_path / "rw.parquet")
    assert len(kept2) + len(rejects2) == len(articles) and kept2
    for r in kept2:
        m = meta(r)
        assert m["parent_id"].startswith("rw/c/") and m["root_id"] == m["parent_id"][3:]
        assert m["parent_source"] == "rw" and m["text_field"] == "solution"


def test_extract_failures_reject_the_chunk(models, tmp_path):
    data = chunks(tmp_path, n=4)
    sp = spec("extract", models, teacher=hf(models["pairs"], max_new_tokens=3))
    _, kept, rejects = run(tmp_path, "cut", sp, [data])
    assert not kept and set(kinds(rejects)) <= {"truncated", "no_pairs"}
    assert "truncated" in kinds(rejects) and len(rejects) == 4


# ------------------------------------------------------------------ config


def test_config_keys_of_rewrite_and_extract(models):
    from mathrecipes.config import SynthesisSpec, plain

    teacher = hf(models["article"])
    got = plain(
        SynthesisSpec.model_validate({"from": "a", "method": "rewrite", "teacher": teacher})
    )
    assert set(got) == {"from", "method", "teacher", "shards", "prompt", "text_field", "judge",
                        "judge_prompt", "min_score", "near_dedup"}  # fmt: skip
    assert got["near_dedup"] == {"enabled": True, "threshold": 0.8, "num_perm": 128, "ngram": 5}
    assert got["judge"] is None and got["min_score"] == 4
    ex = plain(SynthesisSpec.model_validate(
        {"from": "a", "method": "extract", "teacher": teacher, "judge": hf(models["judge"]),
         "max_pairs": 3, "text_field": "both"}))  # fmt: skip
    assert ex["judge"]["model"] == str(models["judge"]) and ex["max_pairs"] == 3
    cases = {
        "builtin teacher does not write text": {"method": "rewrite"},
        "'max_pairs' is a key of method extract, not rewrite": {
            "method": "rewrite", "teacher": teacher, "max_pairs": 2},
        "'min_score' is a key of method rewrite/extract, not distill": {"min_score": 2},
        "builtin teacher cannot judge": {
            "method": "extract", "teacher": teacher, "judge": {"backend": "builtin"}},
    }  # fmt: skip
    for message, raw in cases.items():
        with pytest.raises(ValueError, match=message):
            SynthesisSpec.model_validate({"from": "a", **raw})
