"""Every synthesis method through Snakemake against a real OpenAI-compatible server.

``tests/configs/synth_openai.yaml`` (distill with k samples and ``keep: verified``, distill with
``keep: consistent``, ``structure`` with the teacher as splitter, ``rephrase`` with verifying
solves, ``rewrite`` and ``extract`` of raw text chunks with an LLM judge) runs as the
``all_synthesis`` target against ``transformers serve`` on loopback (``tests/openai_server.py``).
The distill and structure entries talk to the tiny random model of ``tests/test_teacher_openai.py``,
whose outputs are junk; rephrase, rewrite and extract (teacher and judge) to a second server whose
model writes one of :data:`WRITER_TEXTS` whatever the prompt (a Markov chain, as in
``tests/test_synthesis_rewrite.py``), so that their later steps run: the verifying solve, the
judge, the near-duplicate removal. The test checks the plumbing and the accounting (every input
row is in exactly one shard, every sample is one kept or one rejected row with its provenance)
and that a rerun of the finished synthesis sends no request, counted by the servers.
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
from test_synthesis_rewrite import markov_model
from test_teacher_openai import Server, model_dir  # noqa: F401 (a fixture)
from test_workflow import J, pkg_env, planned_jobs, run_snakemake  # noqa: F401 (a fixture)

from mathrecipes.records import NO_ANSWER, read_records
from mathrecipes.synthesis import REJECT_FIELDS, Prompt, shard_of

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "configs" / "synth_openai.yaml"
# samples per input row: each is one kept or one rejected row (extract: one pair per chunk, as
# every text of the writer holds one)
PER_ROW = {"distilled": 3, "relabeled": 3, "structured": 1, "rephrased": 2}
PER_ROW.update(rewritten=1, extracted=1)  # weakness: check_weakness
SAMPLING = {"max_tokens", "temperature", "top_p", "seed"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# What the writer model writes, whatever the prompt (the request's seed picks one): a rephrasing
# (its "Question:" label is removed), a solve and an extracted pair (answer 7 or 8), an article,
# and a judge's verdict (score 5 passes min_score 4, score 2 does not).
WRITER = "Question: what is three plus four? Solution : count up \\boxed{A} Score B"
WRITER_TEXTS = [WRITER.replace("A", a).replace("B", b) for a in "78" for b in "52"]
ROLES = ("teacher", "judge")
KEY_ENV = "MATHRECIPES_TEST_TEACHER_KEY"
PLANTED = f"sk-planted-{secrets.token_hex(16)}"  # an API key that must appear in no file

pytestmark = [pytest.mark.slow, pytest.mark.heavy]  # `pytest -m heavy` (not in the default run)


@pytest.fixture(scope="module")
def writer_dir(tmp_path_factory) -> Path:
    """A tiny Llama that writes one of WRITER_TEXTS after any prompt ending in a blank line (its
    chat template ends every message with one), sampling at the branch points."""
    from transformers import AutoTokenizer, GenerationConfig

    folder = markov_model(tmp_path_factory.mktemp("writer") / "tiny-writer", WRITER_TEXTS)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n\n{% endfor %}"
    tok.save_pretrained(folder)
    gen = GenerationConfig.from_pretrained(folder)
    gen.do_sample = True  # else the server decodes greedily whatever the temperature
    gen.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def synth_run(model_dir, writer_dir, pkg_env, tmp_path_factory):  # noqa: F811
    """The config run once against live servers; yields (work, raw config, config path, env,
    servers by model folder)."""
    work = tmp_path_factory.mktemp("synth")
    servers = {"tiny-teacher": Server(model_dir, work), "tiny-writer": Server(writer_dir, work)}
    try:
        for srv in servers.values():
            srv.start(wait=False)
        for srv in servers.values():
            srv.wait_ready()
        raw = yaml.safe_load(CONFIG.read_text())
        notes = raw["datasets"]["notes"]
        notes["path"] = str(REPO / notes["path"])
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
    inputs = {d: read_records(res / "datasets" / f"{d}.parquet") for d in ("arith", "notes")}
    assert len(inputs["arith"]) == 10
    # the raw text: 3 documents cut into 7 chunks of at most 400 characters, without answers
    assert len(inputs["notes"]) == 7 and {r["answer_type"] for r in inputs["notes"]} == {NO_ANSWER}
    assert all(len(r["problem"]) <= 400 and r["answer"] == "" for r in inputs["notes"])
    sent = 0
    for name, entry in raw["synthesis"].items():
        if entry["method"] == "weakness":
            sent += check_weakness(name, entry, res, inputs[entry["from"]], servers)
            continue
        rows = inputs[entry["from"]]
        n_shards, k = entry["shards"], PER_ROW[name]
        srv = servers[entry["teacher"]["model"]]
        seen: list[tuple[str, int]] = []
        kept_total = 0
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
            kept_total += len(kept)
            if entry["method"] == "rephrase":
                check_rephrase_solves(entry, len(mine), kept, rejects, usage)
            if entry["method"] in ("rewrite", "extract"):
                check_judged(entry, len(mine), kept, rejects, summary)
        # every sample of every input row is exactly one kept or one rejected row
        assert sorted(seen) == sorted((r["id"], j) for r in rows for j in range(k)), name
        if entry["method"] == "distill" and entry["keep"] == "verified":
            assert kept_total <= len(rows)  # per_problem: 1
    assert sent == received(servers) > 0  # the servers saw each request once


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


def check_rephrase_solves(entry, n_rows, kept, rejects, usage):
    """Every rephrasing the writer wrote is new (its label removed), so every one but a
    duplicate of the row's other rephrasing was solved by the teacher (solve_prompt) and graded:
    kept, or rejected because the solve's answer (7 or 8) is not the gold one."""
    n = entry["n_rephrasings"]
    duplicates = [r for r in rejects if r["reason"].startswith("duplicate: ")]
    solved = n_rows * n - len(duplicates)
    assert solved >= 1 and usage["requests"] == n_rows * n + solved  # one solve request each
    assert {r["reason"].split(":")[0] for r in rejects} <= {"duplicate", "answer_not_preserved"}
    assert len(kept) + len(rejects) - len(duplicates) == solved
    solve_sha = Prompt.load(REPO / "prompts" / "distill" / "default.txt").sha256
    for r in kept:
        m = meta(r)
        assert m["verified"] and m["solve_prompt"]["sha256"] == solve_sha
        assert set(m["solve_sampling"]) >= SAMPLING and r["answer"] in ("7", "8")
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
