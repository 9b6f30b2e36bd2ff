"""Every synthesis method through Snakemake against a real OpenAI-compatible server.

``tests/configs/synth_openai.yaml`` (distill with k samples and ``keep: verified``, on problems
the teacher never gets right and on problems it gets right half the time, distill with ``keep:
consistent``, ``structure`` with the teacher as splitter, ``rephrase`` with verifying solves,
``rewrite`` and ``extract`` of raw text chunks with an LLM judge, ``weakness``) runs as the
``all_synthesis`` target against ``transformers serve`` on loopback (``tests/openai_server.py``).
Both served models are hand-weighted Markov Llamas (``tests/helpers.py``). The distill and
structure entries talk to the chain teacher (:func:`helpers.chain_model`), which answers every
problem with :data:`helpers.CHAIN` ending in ``\\boxed{7}`` or ``\\boxed{8}``: its samples are
kept exactly where the policy says (the gold answer, the majority, an unchanged answer), so the
kept path runs through Snakemake and the openai backend and every kept row carries the served
teacher. Rephrase, rewrite, extract and weakness (teacher and judge) talk to a second server
whose model writes one of :data:`WRITER_TEXTS` whatever the prompt, so that their later steps
run: the verifying solve, the judge, the near-duplicate removal. The test checks the accounting
(every input row is in exactly one shard, every sample is one kept or one rejected row with its
provenance) and that a rerun of the finished synthesis sends no request, counted by the servers.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers import (
    CHAIN,
    KEY_ENV,
    SUMS,
    J,
    Server,
    chain_model,
    markov_model,
    planned_jobs,
    require_serving,
    run_snakemake,
    serve_as_chat,
    sum_rows,
)

from mathrecipes.records import NO_ANSWER, read_records
from mathrecipes.synthesis import REJECT_FIELDS, Prompt, shard_of

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "configs" / "synth_openai.yaml"
# samples per input row: each is one kept or one rejected row (extract: one pair per chunk, as
# every text of the writer holds one)
PER_ROW = {"distilled": 3, "verified": 3, "relabeled": 3, "structured": 1, "rephrased": 2}
PER_ROW.update(rewritten=1, extracted=1)  # weakness: check_weakness
SAMPLING = {"max_tokens", "temperature", "top_p", "seed"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
ANSWERED = ("problem", "solution", "answer")  # the fields of a sums.jsonl row (and its id)
# What the writer model writes, whatever the prompt (the request's seed picks one): a rephrasing
# (its "Question:" label is removed), a solve and an extracted pair (answer 7 or 8), an article,
# and a judge's verdict (score 5 passes min_score 4, score 2 does not).
WRITER = "Question: what is three plus four? Solution : count up \\boxed{A} Score B"
WRITER_TEXTS = [WRITER.replace("A", a).replace("B", b) for a in "78" for b in "52"]
ROLES = ("teacher", "judge")
CHAINS = {CHAIN, CHAIN.replace("7", "8")}  # what the chain teacher writes
PLANTED = f"sk-planted-{secrets.token_hex(16)}"  # an API key that must appear in no file

pytestmark = [pytest.mark.slow, pytest.mark.heavy]  # `pytest -m heavy` (not in the default run)

require_serving()  # `transformers serve`: a skip without it, a failure under CI


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory) -> Path:
    """The chain teacher, served: CHAIN with 7 or 8 after any chat (sampled at the branch)."""
    return serve_as_chat(chain_model(tmp_path_factory.mktemp("chain") / "tiny-teacher"))


@pytest.fixture(scope="module")
def writer_dir(tmp_path_factory) -> Path:
    """A tiny Llama that writes one of WRITER_TEXTS after any chat, sampling at the branch
    points."""
    folder = tmp_path_factory.mktemp("writer") / "tiny-writer"
    return serve_as_chat(markov_model(folder, WRITER_TEXTS))


@pytest.fixture(scope="module")
def synth_run(chain_dir, writer_dir, pkg_env, tmp_path_factory):
    """The config run once against live servers; yields (work, raw config, config path, env,
    servers by model folder)."""
    work = tmp_path_factory.mktemp("synth")
    servers = {"tiny-teacher": Server(chain_dir, work), "tiny-writer": Server(writer_dir, work)}
    try:
        for srv in servers.values():
            srv.start(wait=False)
        for srv in servers.values():
            srv.wait_ready()
        raw = yaml.safe_load(CONFIG.read_text())
        notes = raw["datasets"]["notes"]
        notes["path"] = str(REPO / notes["path"])
        with open(work / raw["datasets"]["sums"]["path"], "w") as fh:
            for i, r in enumerate(sum_rows()):
                fh.write(json.dumps({"id": str(i), **{k: r[k] for k in ANSWERED}}) + "\n")
        for entry in raw["synthesis"].values():  # a copy each (the YAML shares one by an alias)
            for role in ROLES:
                if role in entry:
                    srv = servers[entry[role]["model"]]
                    entry[role] = {
                        **entry[role],
                        "model": str(srv.model),
                        "base_url": f"{srv.url}/v1",
                        "api_key_env": KEY_ENV,  # sent to the server, written nowhere
                    }
        config = work / "c.yaml"
        config.write_text(yaml.safe_dump(raw, sort_keys=False))
        _, env = pkg_env  # a copy of the package: edits to the tree meanwhile change nothing
        env = {**env, KEY_ENV: PLANTED}
        start = time.monotonic()
        proc = run_snakemake(
            work, "--configfile", str(config), "--cores", "2", "all_synthesis", env=env
        )
        (work / "snakemake.out").write_text(proc.stdout + proc.stderr)  # searched for the key
        by_model = {str(srv.model): srv for srv in servers.values()}
        print(f"first run: {time.monotonic() - start:.1f} s, {received(by_model)} requests")
        yield work, raw, config, env, by_model
    finally:
        for srv in servers.values():
            srv.stop()


def received(servers: dict) -> int:
    return sum(srv.stats()["received"] for srv in servers.values())


def reasons(dry_run_output: str) -> list[str]:
    return [line.strip() for line in dry_run_output.splitlines() if "reason:" in line]


def meta(row) -> dict:
    return json.loads(row["meta"])


def test_every_row_kept_or_rejected_with_provenance(synth_run):
    work, raw, _, _, servers = synth_run
    res = work / "results"
    inputs = {
        d: read_records(res / "datasets" / f"{d}.parquet") for d in ("arith", "sums", "notes")
    }
    assert len(inputs["arith"]) == 10
    assert not {r["answer"] for r in inputs["arith"]} & {"7", "8"}  # the chain teacher never fits
    by_id = sorted(inputs["sums"], key=lambda r: int(r["id"].split("/")[1]))
    assert [(r["problem"], r["answer"]) for r in by_id] == [
        (f"What is {a} + {b}?", str(a + b)) for a, b in SUMS
    ]
    # the raw text: 3 documents cut into 7 chunks of at most 400 characters, without answers
    assert len(inputs["notes"]) == 7 and {r["answer_type"] for r in inputs["notes"]} == {NO_ANSWER}
    assert all(len(r["problem"]) <= 400 and r["answer"] == "" for r in inputs["notes"])
    sent, kept_by = 0, {}
    for name, entry in raw["synthesis"].items():
        if entry["method"] == "weakness":
            sent += check_weakness(name, entry, res, inputs[entry["from"]], servers)
            continue
        rows = inputs[entry["from"]]
        n_shards, k = entry["shards"], PER_ROW[name]
        srv = servers[entry["teacher"]["model"]]
        seen: list[tuple[str, int]] = []
        all_kept, all_rejects = [], []
        for shard in range(n_shards):
            base = res / "synth" / name / f"shard-{shard}"
            kept = read_records(f"{base}.parquet")
            rejects = pq.read_table(f"{base}.rejects.parquet").to_pylist()
            manifest = json.loads(Path(f"{base}.manifest.json").read_text())
            summary = manifest["summary"]
            mine = {r["id"] for r in rows if shard_of(r["id"], n_shards) == shard}
            assert summary["input_rows"] == len(mine)
            assert (summary["kept"], summary["rejected"]) == (len(kept), len(rejects))
            prompt = Prompt.load(REPO / "prompts" / entry["method"] / "default.txt")
            for r in kept:
                m = meta(r)
                assert m["parent_id"] in mine and m["root_id"] == m["parent_id"]
                assert m["method"] == entry["method"]
                assert m["teacher"]["backend"] == "openai"
                assert m["teacher"]["model"] == entry["teacher"]["model"]
                assert SHA256.match(m["prompt"]["sha256"])
                assert set(m["sampling"]) >= SAMPLING
                seen.append((m["parent_id"], m["sample"]))
            for r in rejects:
                assert set(r) == set(REJECT_FIELDS) and r["parent_id"] in mine
                assert r["method"] == entry["method"]
                kind, _, why = r["reason"].partition(": ")
                assert kind and why, r["reason"]
                teacher = json.loads(r["teacher"])
                assert teacher["backend"] == "openai" and teacher["model"] == str(srv.model)
                assert SHA256.match(r["prompt_sha256"])
                sampling = json.loads(r["sampling"])
                assert set(sampling) >= SAMPLING
                assert sampling["max_tokens"] == entry["teacher"]["max_tokens"]
                seen.append((r["parent_id"], r["attempt"]))
            # the first prompt of every method is its default file, and its hash is recorded
            assert summary["prompts"]["prompt"]["sha256"] == prompt.sha256
            assert summary["teacher"]["base_url"] == f"{srv.url}/v1"
            # connection settings are not params; they are in the manifest as settings
            assert "base_url" not in manifest["params"]["teacher"]
            concurrency = entry["teacher"]["concurrency"]
            assert manifest["operational"]["teacher"]["concurrency"] == concurrency
            usage = summary["usage"]
            sent += usage["requests"] - usage["cached"]
            all_kept += kept
            all_rejects += rejects
            if entry["method"] == "rephrase":
                check_rephrase_solves(entry, len(mine), kept, rejects, usage, rows)
            if entry["method"] in ("rewrite", "extract"):
                check_judged(entry, len(mine), kept, rejects, summary)
        # every sample of every input row is exactly one kept or one rejected row
        assert sorted(seen) == sorted((r["id"], j) for r in rows for j in range(k)), name
        if entry["method"] in ("distill", "structure"):
            kept_by[name] = check_chain_teacher(entry, rows, all_kept, all_rejects)
    assert sent == received(servers) > 0  # the servers saw each request once
    # the kept path ran: rows were kept where the teacher's answer fits, none where it cannot
    assert kept_by["distilled"] == 0  # no arith gold is 7 or 8
    assert kept_by["verified"] > 0 and kept_by["structured"] > 0
    assert kept_by["relabeled"] == len(inputs["arith"])  # 3 samples of 7 or 8: always a majority


def check_chain_teacher(entry, rows, kept, rejects) -> int:
    """What the chain teacher wrote for each sample (CHAIN with 7 or 8, in full), and that the
    entry's policy kept exactly what it should of it; returns the number of kept rows."""
    k = entry.get("samples", 1)
    wrote = {(meta(r)["parent_id"], meta(r)["sample"]): r["solution"] for r in kept}
    wrote |= {(r["parent_id"], r["attempt"]): r["output"] for r in rejects}
    assert set(wrote.values()) <= CHAINS, set(wrote.values()) - CHAINS
    answers = {row["id"]: [wrote[row["id"], j][-2] for j in range(k)] for row in rows}
    gold = {row["id"]: row["answer"] for row in rows}
    mine: dict[str, list] = {}
    for r in kept:
        mine.setdefault(meta(r)["parent_id"], []).append(r)
    assert all(len(v) == 1 for v in mine.values())  # per_problem: 1
    kinds = {r["reason"].split(":")[0] for r in rejects}
    if entry["method"] == "structure":  # kept when the rewritten answer is the original one
        assert set(mine) == {i for i, a in answers.items() if a[0] == gold[i]}
        for i, (r,) in mine.items():
            m = meta(r)
            assert r["solution"] == CHAIN.replace("7", gold[i]) and r["answer"] == gold[i]
            assert m["splitter"] == "teacher" and m["original_answer"] == gold[i]
        assert kinds <= {"answer_changed"}
    elif entry["keep"] == "verified":  # kept when a sample has the gold answer: the first one
        assert set(mine) == {i for i, a in answers.items() if gold[i] in a}
        for i, (r,) in mine.items():
            m = meta(r)
            assert r["answer"] == gold[i] and m["verified"] is True
            assert m["sample"] == answers[i].index(gold[i])
            assert m["pass_rate"] == answers[i].count(gold[i]) / k
        assert kinds <= {"answer_mismatch", "duplicate"}
    else:  # consistent: the majority of 3 answers, each 7 or 8, whatever the gold
        assert set(mine) == set(gold)
        for i, (r,) in mine.items():
            top = max("78", key=answers[i].count)
            assert r["answer"] == top and meta(r)["agreement"] == answers[i].count(top) / k
        assert kinds <= {"minority", "duplicate"}
    return len(kept)


def check_weakness(name, entry, res, pool, servers) -> int:
    """The probe student's failures are the seeds; every seed's neighbour is kept as retrieved,
    every written problem (``similar`` per seed) is kept when its two solutions (7 or 8 from the
    writer) agree, or rejected with its reason; returns the requests sent."""
    seeds = read_records(res / "synth" / name / "seeds.parquet")
    graded = pq.read_table(res / "probes/nano/base/seed-0/arith.grades.parquet").to_pylist()
    assert {s["id"] for s in seeds} == {
        g["problem_id"] for g in graded if g["verdict"] != "correct"
    }
    assert seeds, "the 2-step student should fail some arith problems"
    pool_ids = {r["id"] for r in pool}
    srv = servers[entry["teacher"]["model"]]
    written, rejected_written, sent, kinds = [], [], 0, set()
    for shard in range(entry["shards"]):
        base = res / "synth" / name / f"shard-{shard}"
        kept = read_records(f"{base}.parquet")
        rejects = pq.read_table(f"{base}.rejects.parquet").to_pylist()
        summary = json.loads(Path(f"{base}.manifest.json").read_text())["summary"]
        mine = {s["id"] for s in seeds if shard_of(s["id"], entry["shards"]) == shard}
        for r in kept:
            m = meta(r)
            assert m["parent_id"] in mine and m["method"] == "weakness"
            if m["kind"] == "retrieved":
                assert m["retrieved_id"] in pool_ids and m["retrieved_id"] != m["parent_id"]
                assert r["id"] == f"{name}/{m['retrieved_id']}" and m["teacher"] is None
            else:
                assert m["kind"] == "written" and m["teacher"]["model"] == str(srv.model)
                assert r["answer"] in ("7", "8") and len(m["solve_sampling"]) == 2
                assert SHA256.match(m["prompt"]["sha256"]) and m["solutions_agreeing"] == 2
                written.append((m["parent_id"], m["sample"]))
        for r in rejects:
            assert set(r) == set(REJECT_FIELDS) and r["parent_id"] in mine
            kind = r["reason"].split(":")[0]
            kinds.add(kind)
            if kind != "no_neighbour":
                rejected_written.append((r["parent_id"], r["attempt"]))
        sent += summary["usage"]["requests"] - summary["usage"]["cached"]
    assert kinds <= {"disagree", "duplicate", "unsolved", "no_neighbour"}, kinds
    # every written problem is one kept or one rejected row
    want = sorted((s["id"], j) for s in seeds for j in range(entry["similar"]))
    assert sorted(written + rejected_written) == want
    assert written or "disagree" in kinds  # the solves ran and were compared
    return sent


def check_rephrase_solves(entry, n_rows, kept, rejects, usage, rows):
    """Every rephrasing the writer wrote is new (its label removed), so every one but a
    duplicate of the row's other rephrasing was solved by the teacher (solve_prompt) and graded:
    kept when the solve's answer (7 or 8) is the row's gold one, else rejected."""
    n = entry["n_rephrasings"]
    duplicates = [r for r in rejects if r["reason"].startswith("duplicate: ")]
    solved = n_rows * n - len(duplicates)
    assert solved >= 1 and usage["requests"] == n_rows * n + solved  # one solve request each
    assert {r["reason"].split(":")[0] for r in rejects} <= {"duplicate", "answer_not_preserved"}
    assert len(kept) + len(rejects) - len(duplicates) == solved
    solve_sha = Prompt.load(REPO / "prompts" / "distill" / "default.txt").sha256
    gold = {row["id"]: row["answer"] for row in rows}
    for r in kept:
        m = meta(r)
        assert m["verified"] and m["solve_prompt"]["sha256"] == solve_sha
        assert set(m["solve_sampling"]) >= SAMPLING and r["answer"] == gold[m["parent_id"]]
        assert r["problem"].startswith("what is three plus four?")


def check_judged(entry, n_rows, kept, rejects, summary):
    """Each chunk's output is a finished, parseable text, so every chunk reached the judge (one
    teacher and one judge request each) and ended kept (a score of at least min_score), as
    ``low_score`` (2 < min_score) or as ``near_duplicate`` of a kept row with the same text."""
    assert summary["usage"]["requests"] == 2 * n_rows
    judge, min_score = entry["judge"], entry.get("min_score", 4)
    assert summary["judge"]["model"] == judge["model"] and summary["min_score"] == min_score
    kinds = [r["reason"].split(":")[0] for r in rejects]
    assert set(kinds) <= {"low_score", "near_duplicate"}
    for r in rejects:
        if r["reason"].startswith("low_score"):
            assert f"judge score 2 < min_score {min_score}" in r["reason"]
    if min_score <= 2:  # every output passed the judge; the writer has 4 texts: the rest are dups
        assert "low_score" not in kinds and kinds.count("near_duplicate") >= n_rows - 4
    judge_sha = Prompt.load(REPO / "prompts" / "judge" / f"{entry['method']}.txt").sha256
    texts = set()
    for r in kept:
        m = meta(r)
        assert m["judge"]["score"] in (2, 5) and m["judge"]["score"] >= min_score
        assert m["judge"]["prompt"]["sha256"] == judge_sha
        assert m["judge"]["teacher"]["model"] == judge["model"]
        assert m["judge"]["sampling"]["seed"] != m["sampling"]["seed"]
        assert set(m["judge"]["sampling"]) >= SAMPLING and m["text_field"] == "problem"
        texts.add(r["solution"] if entry["method"] == "rewrite" else r["problem"])
        if entry["method"] == "rewrite":  # the article keeps its chunk's (missing) answer
            assert (r["answer"], r["answer_type"]) == ("", NO_ANSWER)
            assert r["solution"] in WRITER_TEXTS
        else:
            assert (r["answer"], r["answer_type"]) in (("7", "integer"), ("8", "integer"))
            assert r["problem"] == "what is three plus four?"
    assert len(texts) == len(kept)  # no two kept rows of a shard are near duplicates


def test_the_planted_api_key_is_in_no_file(synth_run):
    """Every file of the run (shards, rejects, manifests, logs, the response caches, Snakemake's
    metadata and its output) is searched for the key the teachers were given."""
    work, raw, *_ = synth_run
    assert all(e["teacher"]["api_key_env"] == KEY_ENV for e in raw["synthesis"].values())
    files = [p for p in work.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".parquet", ".json", ".log", ".sqlite", ".out"} <= kinds, kinds

    def text(p: Path) -> str:  # a parquet file's values are compressed: search them decoded
        if p.suffix == ".parquet":
            return json.dumps(pq.read_table(p).to_pylist(), default=str)
        return p.read_bytes().decode("utf-8", "replace")

    leaks = [str(p) for p in files if PLANTED in text(p)]
    assert not leaks, f"the API key is written in {leaks}"
    print(f"planted key searched in {len(files)} files: 0 hits")


def test_a_rerun_sends_no_request(synth_run):
    work, raw, config, env, servers = synth_run
    before = received(servers)
    res = work / "results" / "synth"
    files = sorted(res.glob("*/shard-*.parquet"))
    first = {f: pq.read_table(f).to_pylist() for f in files}

    nothing = run_snakemake(work, "--configfile", str(config), "-n", "all_synthesis", env=env)
    assert planned_jobs(nothing.stdout) == set(), reasons(nothing.stdout)
    # forced: every shard runs again, answered from the response cache
    start = time.monotonic()
    run_snakemake(
        work, "--configfile", str(config), "--cores", "2", "-R", "synthesize_shard",
        "all_synthesis", env=env,
    )  # fmt: skip
    print(f"forced rerun: {time.monotonic() - start:.1f} s")
    nothing = run_snakemake(work, "--configfile", str(config), "-n", "all_synthesis", env=env)
    assert planned_jobs(nothing.stdout) == set(), reasons(nothing.stdout)
    assert received(servers) == before
    assert {f: pq.read_table(f).to_pylist() for f in files} == first
    for name, entry in raw["synthesis"].items():
        for shard in range(entry["shards"]):
            path = res / name / f"shard-{shard}.manifest.json"
            usage = json.loads(path.read_text())["summary"]["usage"]
            assert usage["cached"] == usage["requests"], (name, shard)

    # and a connection setting edit plans nothing
    edited = yaml.safe_load(config.read_text())
    for entry in edited["synthesis"].values():
        entry["teacher"].update(concurrency=1, timeout_s=5.0)
    path = work / "edited.yaml"
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    dry = run_snakemake(work, "--configfile", str(path), "-n", "all_synthesis", env=env)
    assert planned_jobs(dry.stdout) == set(), reasons(dry.stdout)
    edited["synthesis"]["structured"]["teacher"]["max_tokens"] = 17
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    dry = run_snakemake(work, "--configfile", str(path), "-n", "all_synthesis", env=env)
    assert planned_jobs(dry.stdout) == {
        J("synthesize_shard", synth="structured", shard=0),
        J("all_synthesis"),
    }
