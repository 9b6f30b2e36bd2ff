"""A served model evaluated beside the students, through Snakemake, against a real server.

``tests/configs/references.yaml`` trains one tiny student and points ``references.served`` at
``transformers serve`` on loopback (``tests/openai_server.py``, started by ``helpers.Server``)
serving the chain model (:func:`helpers.chain_model`: it answers every problem with
:data:`helpers.CHAIN` ending in 7 or 8). Nothing is mocked: the counts asserted are the server's.

- the reference answers the benchmark, is graded, and is a row of its own in the tables, whose
  provenance names the model and the endpoint;
- the server demands the key (``require_key``) that the environment variable holds, and that key
  appears in no file of the working folder (results, logs, .snakemake) nor in Snakemake's output;
- the server is SIGKILLed mid-benchmark and restarted: the rerun completes with exactly one
  answer per (problem, sample), and no request the first server answered is sent again but for
  the ones in flight at the kill.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import yaml
from helpers import KEY_ENV, Server, chain_model, require_serving, run_snakemake, serve_as_chat

REPO = Path(__file__).resolve().parents[1]
READY_S = 600  # a server's start on a loaded machine (two cores shared) can take minutes
CONFIG = REPO / "tests" / "configs" / "references.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.heavy]  # `pytest -m heavy` (not in the default run)

require_serving()  # `transformers serve`: a skip without it, a failure under CI


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory) -> Path:
    return serve_as_chat(chain_model(tmp_path_factory.mktemp("chain") / "tiny-teacher"))


def write_config(work: Path, srv: Server, **served) -> tuple[Path, dict]:
    raw = yaml.safe_load(CONFIG.read_text())
    raw["references"]["served"].update(
        model=str(srv.model), base_url=f"{srv.url}/v1", api_key_env=KEY_ENV, **served
    )
    config = work / "c.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config, raw


def rows_and_samples(raw: dict) -> tuple[int, int]:
    return raw["benchmarks"]["sums"]["n"], raw["generation"]["n_samples"]


def generations(work: Path) -> pl.DataFrame:
    return pl.read_parquet(work / "results/generations/reference/served/sums.parquet")


def test_a_served_model_is_a_row_of_the_tables_and_its_key_is_written_nowhere(
    chain_dir, pkg_env, tmp_path
):
    work, served_dir = tmp_path / "work", tmp_path / "server"
    work.mkdir()
    served_dir.mkdir()
    srv = Server(chain_dir, served_dir).start(wait=False)
    srv.wait_ready(READY_S)
    try:
        srv.control(require_key=True)  # 401 unless the bearer token is the server's key
        config, raw = write_config(work, srv)
        _, env = pkg_env
        env = {**env, KEY_ENV: srv.key}
        proc = run_snakemake(work, "--configfile", str(config), "--cores", "2", env=env)
        n, k = rows_and_samples(raw)

        gen = generations(work)
        assert gen.height == n * k and gen.select("problem_id", "sample").n_unique() == n * k
        assert set(gen["finish_reason"]) <= {"eos", "length"}
        assert (gen["n_completion_tokens"] > 0).all() and (gen["n_prompt_tokens"] > 0).all()
        assert gen["completion"].str.contains("boxed").all()
        assert gen["prompt"].str.starts_with("Problem: ").all()  # the students' prompt
        # every sample was one request, authorised, with its own seed
        got = srv.records("received")
        assert len(got) == n * k and all(r["auth"] for r in got)
        assert len({(r["input"], r["seed"]) for r in got}) == n * k
        grades = pl.read_parquet(work / "results/grades/reference/served/sums.parquet")
        assert grades.height == n * k

        tables = work / "results" / "tables"
        scores = pl.read_csv(tables / "scores.csv")
        ref = scores.filter(pl.col("student") == "reference")
        assert ref.height == 1
        row = ref.row(0, named=True)
        assert (row["recipe"], row["benchmark"], row["problems"]) == ("served", "sums", n)
        assert row["samples"] == k and row["seeds"] is None and row["verdict"] is None
        assert row["accuracy_lo"] <= row["accuracy"] <= row["accuracy_hi"]
        assert scores.filter(pl.col("student") == "nano").height == 1  # the student's row
        prov = json.loads((tables / "provenance.json").read_text())["reference/served/sums"]
        assert prov["reference"]["model"] == str(srv.model)
        assert prov["reference"]["base_url"] == f"{srv.url}/v1"
        md = (tables / "scores.md").read_text()
        assert f"`{srv.model}` at {srv.url}/v1" in md

        # how the server is reached is not a job parameter: nothing to do after editing it
        config, _ = write_config(work, srv, concurrency=5, max_retries=3, timeout_s=30)
        dry = run_snakemake(work, "--configfile", str(config), "-n", env=env)
        assert "Nothing to be done" in dry.stdout + dry.stderr

        # the planted key: in no file of the working folder, nor in Snakemake's output
        key = srv.key.encode()
        files = [p for p in work.rglob("*") if p.is_file()]
        assert len(files) > 50
        assert not [str(p) for p in files if key in p.read_bytes()]
        for text in (proc.stdout, proc.stderr, dry.stdout, dry.stderr):
            assert srv.key not in text
    finally:
        srv.stop()


def test_server_killed_mid_benchmark_then_the_rerun_completes(chain_dir, pkg_env, tmp_path):
    work, served_dir = tmp_path / "work", tmp_path / "server"
    work.mkdir()
    served_dir.mkdir()
    first = Server(chain_dir, served_dir).start(wait=False)
    first.wait_ready(READY_S)
    restarted: list[Server] = []
    try:
        first.control(delay=0.2)  # a benchmark that takes a while
        config, raw = write_config(work, first)
        n, k = rows_and_samples(raw)
        concurrency = raw["references"]["served"]["concurrency"]
        _, env = pkg_env
        env = {**env, KEY_ENV: first.key}

        def kill():
            deadline = time.monotonic() + 300
            while first.stats()["answered"] < 6 and time.monotonic() < deadline:
                time.sleep(0.02)
            first.kill()

        killer = threading.Thread(target=kill)
        killer.start()
        proc = run_snakemake(
            work, "--configfile", str(config), "--cores", "1", "all_references",
            env=env, check=False,
        )  # fmt: skip
        killer.join()
        assert proc.returncode != 0  # the retries ran out: the job failed, no parquet
        assert not (work / "results/generations/reference/served/sums.parquet").exists()
        before = first.records("answered", pid=first.proc.pid)
        assert 6 <= len(before) < n * k

        second = Server(chain_dir, served_dir, port=first.port).start(wait=False)
        restarted.append(second)
        second.wait_ready(READY_S)
        run_snakemake(work, "--configfile", str(config), "--cores", "1", "all_references", env=env)

        gen = generations(work)
        assert gen.height == n * k and gen.select("problem_id", "sample").n_unique() == n * k
        assert (gen["completion"].str.len_chars() > 0).all()

        # the record of an answer holds its prompt, not its seed: the k samples of a problem
        # share a prompt, so count per prompt
        answered = Counter(r["input"] for r in before)
        received = second.records("received", pid=second.proc.pid)
        resent = [(r["input"], r["seed"]) for r in received]
        assert len(resent) == len(set(resent))  # none sent twice to the new server
        again = Counter(prompt for prompt, _ in resent)
        # what the first server answered is not asked again, but for the requests in flight
        # at the kill (their answers may have been lost with it); nothing is lost
        twice = sum(max(0, answered[p] + again[p] - k) for p in answered | again)
        assert twice <= concurrency
        assert all(answered[p] + again[p] >= k for p in set(gen["prompt"]))
        assert len(resent) <= n * k - sum(answered.values()) + concurrency
        print(f"answered before the kill {len(before)}, sent after {len(resent)}, twice {twice}")
        grades = pl.read_parquet(work / "results/grades/reference/served/sums.parquet")
        assert grades.select("problem_id", "sample").n_unique() == grades.height == n * k
    finally:
        first.kill()
        for s in restarted:
            s.stop()
