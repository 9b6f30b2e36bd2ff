"""Every synthesis method through Snakemake against a real OpenAI-compatible server.

``tests/configs/synth_openai.yaml`` (distill with k samples and ``keep: verified``, distill with
``keep: consistent``, ``structure`` with the teacher as splitter, ``rephrase`` with verifying
solves) runs as the ``all_synthesis`` target against ``transformers serve`` on loopback
(``tests/openai_server.py``, the tiny random model of ``tests/test_teacher_openai.py``). Its
outputs are junk: the test checks the plumbing and the accounting (every input row is in exactly
one shard, every sample is one kept or one rejected row with its provenance) and that a rerun of
the finished synthesis sends no request, counted by the server.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from test_teacher_openai import Server, model_dir  # noqa: F401 (a fixture)
from test_workflow import J, pkg_env, planned_jobs, run_snakemake  # noqa: F401 (a fixture)

from mathrecipes.records import read_records
from mathrecipes.synthesis import REJECT_FIELDS, Prompt, shard_of

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "configs" / "synth_openai.yaml"
# samples per input row: each is one kept or one rejected row
PER_ROW = {"distilled": 3, "relabeled": 3, "structured": 1, "rephrased": 2}
SAMPLING = {"max_tokens", "temperature", "top_p", "seed"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synth_run(model_dir, pkg_env, tmp_path_factory):  # noqa: F811
    """The config run once against a live server; yields (work, config, env, server)."""
    work = tmp_path_factory.mktemp("synth")
    srv = Server(model_dir, work).start()
    raw = yaml.safe_load(CONFIG.read_text())
    for entry in raw["synthesis"].values():  # a copy each (the YAML shares one by an alias)
        entry["teacher"] = {
            **entry["teacher"],
            "model": str(model_dir),
            "base_url": f"{srv.url}/v1",
        }
    config = work / "c.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    _, env = pkg_env  # a copy of the package: edits to the tree meanwhile change no fingerprint
    start = time.monotonic()
    run_snakemake(work, "--configfile", str(config), "--cores", "2", "all_synthesis", env=env)
    print(f"first run: {time.monotonic() - start:.1f} s, {srv.stats()['received']} requests")
    try:
        yield work, raw, config, env, srv
    finally:
        srv.stop()


def reasons(dry_run_output: str) -> list[str]:
    return [line.strip() for line in dry_run_output.splitlines() if "reason:" in line]


def meta(row) -> dict:
    return json.loads(row["meta"])


def test_every_row_kept_or_rejected_with_provenance(synth_run):
    work, raw, _, _, srv = synth_run
    res = work / "results"
    rows = read_records(res / "datasets" / "arith.parquet")
    assert len(rows) == 10
    sent = 0
    for name, entry in raw["synthesis"].items():
        n_shards, k = entry["shards"], PER_ROW[name]
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
                assert set(sampling) >= SAMPLING and sampling["max_tokens"] == 16
                seen.append((r["parent_id"], r["attempt"]))
            # the first prompt of every method is its default file, and its hash is recorded
            assert summary["prompts"]["prompt"]["sha256"] == prompt.sha256
            assert summary["teacher"]["base_url"] == f"{srv.url}/v1"
            # connection settings are not params; they are in the manifest as settings
            assert "base_url" not in manifest["params"]["teacher"]
            assert manifest["operational"]["teacher"]["concurrency"] == 4
            usage = summary["usage"]
            sent += usage["requests"] - usage["cached"]
            kept_total += len(kept)
        # every sample of every input row is exactly one kept or one rejected row
        assert sorted(seen) == sorted((r["id"], j) for r in rows for j in range(k)), name
        if entry["method"] == "distill" and entry["keep"] == "verified":
            assert kept_total <= len(rows)  # per_problem: 1
    assert sent == srv.stats()["received"] > 0  # the server saw each request once


def test_a_rerun_sends_no_request(synth_run):
    work, raw, config, env, srv = synth_run
    before = srv.stats()["received"]
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
    assert srv.stats()["received"] == before
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
