"""Student generation: output rows/columns, sampling, length cut-off, batch invariance,
resume after SIGKILL / SIGTERM, speed settings, the benchmark script."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402  (a core dependency: no skip without it)
from helpers import TINY_MODEL  # noqa: E402

from mathrecipes import decoding, generation  # noqa: E402
from mathrecipes.config import GenerationSpec, StudentSpec  # noqa: E402
from mathrecipes.generation import GenerationSpecError, generate_file  # noqa: E402
from mathrecipes.prompting import format_prompt  # noqa: E402
from mathrecipes.records import check_record, write_records  # noqa: E402
from mathrecipes.training import train_student  # noqa: E402

COLUMNS = [
    "problem_id",
    "sample",
    "prompt",
    "completion",
    "n_prompt_tokens",
    "n_completion_tokens",
    "finish_reason",
    "seconds",
]


def rows(n: int, seed: int, prefix: str, varied: bool = False) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        terms = [rng.randrange(10) for _ in range(rng.randrange(2, 5) if varied else 2)]
        total = sum(terms)
        expr = " + ".join(map(str, terms))
        words = " please" * rng.randrange(4) if varied else ""  # varied prompt lengths
        out.append(
            check_record(
                {
                    "id": f"{prefix}/{i:04d}",
                    "source": prefix,
                    "problem": f"What is {expr}?{words}",
                    "solution": f"Step 1: {expr} = {total}\n\\boxed{{{total}}}",
                    "answer": str(total),
                    "answer_type": "integer",
                },
                where=f"row {i}",
            )
        )
    return out


def gen_spec(**kw) -> dict:
    kw.setdefault("max_new_tokens", 24)
    kw.setdefault("batch_size", 8)
    return GenerationSpec(**kw).model_dump(mode="json", by_alias=True)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A tiny student trained briefly on sums (checkpoint folder)."""
    d = tmp_path_factory.mktemp("gen")
    train = d / "train.parquet"
    write_records(rows(300, 0, "train", varied=True), train)
    spec = StudentSpec(
        model=TINY_MODEL,
        tokenizer={"vocab_size": 300},
        training={
            "max_steps": 200,
            "lr": 3e-3,
            "warmup_steps": 5,
            "tokens_per_step": 800,
            "max_length": 128,
            "log_every": 20,
        },
    ).model_dump(mode="json", by_alias=True)
    ckpt = d / "student"
    train_student(str(train), str(ckpt), spec, seed=0, threads=1, progress=False)
    return str(ckpt)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.parquet"
    # ids written out of order on purpose: output must be sorted by (problem_id, sample)
    write_records(list(reversed(rows(21, 1, "bench", varied=True))), path)
    return str(path)


def read(path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_greedy_writes_expected_rows_and_columns(student, bench, tmp_path):
    out = tmp_path / "gen.parquet"
    summary = generate_file(student, bench, str(out), gen_spec(), progress=False)
    table = pq.read_table(out)
    assert table.column_names == COLUMNS
    types = {f.name: str(f.type) for f in table.schema}
    assert types == {
        "problem_id": "string",
        "sample": "int64",
        "prompt": "string",
        "completion": "string",
        "n_prompt_tokens": "int64",
        "n_completion_tokens": "int64",
        "finish_reason": "string",
        "seconds": "double",
    }
    got = table.to_pylist()
    assert [(r["problem_id"], r["sample"]) for r in got] == [
        (f"bench/{i:04d}", 0) for i in range(21)
    ]
    problems = {r["id"]: r["problem"] for r in rows(21, 1, "bench", varied=True)}
    for r in got:
        assert r["prompt"] == format_prompt(problems[r["problem_id"]])
        assert r["finish_reason"] in ("eos", "length")
        assert 1 <= r["n_completion_tokens"] <= 24
        if r["finish_reason"] == "length":
            assert r["n_completion_tokens"] == 24
        assert r["seconds"] > 0  # its batch's time was measured (not the speed: benchmarks/)
    assert sum(r["finish_reason"] == "eos" for r in got) >= 10  # the student learned to stop
    assert any("\\boxed{" in r["completion"] for r in got)
    assert summary["n_rows"] == 21
    assert summary["new_tokens"] == sum(r["n_completion_tokens"] for r in got)
    assert summary["finish_reasons"]["eos"] + summary["finish_reasons"]["length"] == 21

    again = tmp_path / "again.parquet"
    generate_file(student, bench, str(again), gen_spec(), progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(read(again)) == strip(got)


def test_greedy_is_batch_size_invariant(student, bench, tmp_path):
    one, eight = tmp_path / "b1.parquet", tmp_path / "b8.parquet"
    generate_file(student, bench, str(one), gen_spec(batch_size=1), progress=False)
    generate_file(student, bench, str(eight), gen_spec(batch_size=8), progress=False)
    a, b = read(one), read(eight)
    assert len({r["n_prompt_tokens"] for r in a}) > 1  # batches really were left-padded
    for x, y in zip(a, b, strict=True):
        assert (x["completion"], x["n_completion_tokens"], x["finish_reason"]) == (
            y["completion"],
            y["n_completion_tokens"],
            y["finish_reason"],
        )


def test_sampling_gives_n_rows_per_problem_and_is_seeded(student, bench, tmp_path):
    spec = gen_spec(temperature=1.0, top_p=0.95, n_samples=3, seed=5)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    summary = generate_file(student, bench, str(a), spec, progress=False)
    generate_file(student, bench, str(b), spec, progress=False)
    got = read(a)
    assert summary["n_rows"] == len(got) == 63
    assert [(r["problem_id"], r["sample"]) for r in got] == [
        (f"bench/{i:04d}", s) for i in range(21) for s in range(3)
    ]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(read(b)) == strip(got)
    assert len({r["completion"] for r in got}) > 21  # samples differ


def test_model_that_never_stops_ends_with_length(tmp_path, bench):
    """lm_head scores only two letters (one of them always positive): eos never wins."""
    from transformers import PreTrainedTokenizerFast  # noqa: F401  (tokenizer class import)

    from mathrecipes.training.model import build_scratch_model
    from mathrecipes.training.tokenizer import train_bpe_tokenizer

    tok = train_bpe_tokenizer(["What is 1 + 2? ab ba"] * 10, vocab_size=300)
    spec_model = StudentSpec(
        model=dict(TINY_MODEL, tie_word_embeddings=False), training={"max_steps": 1}
    ).model.model_dump()
    model = build_scratch_model(spec_model, tok, seed=0)
    a, b = tok.convert_tokens_to_ids("a"), tok.convert_tokens_to_ids("b")
    with torch.no_grad():
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[a, 0] = 10.0
        model.lm_head.weight[b, 0] = -10.0
    ckpt = tmp_path / "chatty"
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)

    out = tmp_path / "chatty.parquet"
    summary = generate_file(str(ckpt), bench, str(out), gen_spec(max_new_tokens=13), progress=False)
    got = read(out)
    assert all(r["finish_reason"] == "length" for r in got)
    assert all(r["n_completion_tokens"] == 13 for r in got)
    assert all(len(r["completion"]) == 13 and set(r["completion"]) <= {"a", "b"} for r in got)
    assert summary["finish_reasons"] == {"eos": 0, "length": 21}
    assert summary["new_tokens"] == 21 * 13


def test_bad_generation_spec(student, bench, tmp_path):
    spec = gen_spec()
    del spec["top_p"]
    with pytest.raises(GenerationSpecError, match="top_p"):
        generate_file(student, bench, str(tmp_path / "x.parquet"), spec, progress=False)


def strip_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_new_speed_settings_keep_cpu_outputs_and_apply(student, bench, tmp_path):
    """auto dtype/attention on a CPU is float32 + eager (what generation ran before); explicit
    bfloat16 + sdpa are used as asked."""
    auto, explicit = tmp_path / "auto.parquet", tmp_path / "explicit.parquet"
    base = generate_file(student, bench, str(auto), gen_spec(), progress=False, threads=1)
    assert (base["dtype"], base["attn_implementation"]) == ("float32", "eager")
    spec = gen_spec(dtype="float32", attn_implementation="eager")
    generate_file(student, bench, str(explicit), spec, progress=False, threads=1)
    assert strip_seconds(read(explicit)) == strip_seconds(read(auto))
    bf16 = tmp_path / "bf16.parquet"
    s = generate_file(
        student,
        bench,
        str(bf16),
        gen_spec(dtype="bfloat16", attn_implementation="sdpa"),
        progress=False,
        threads=1,
    )
    assert (s["dtype"], s["attn_implementation"], s["n_rows"]) == ("bfloat16", "sdpa", 21)


def test_hf_backend_matches_model_generate(student, bench):
    """The hf backend's decode loop gives the tokens of transformers' model.generate (static
    cache, greedy), which is what generation ran before it."""
    from mathrecipes.training.data import encode_prompts

    tok, model = decoding.load_student(student, "cpu")
    g = generation.validate_generation_spec(gen_spec())
    config = generation.make_generation_config(g, tok)
    prompts = encode_prompts(tok, [r["problem"] for r in rows(21, 1, "bench", varied=True)])
    eos = tok.eos_token_id
    decoder = decoding.HFDecoder(model, eos=eos, pad=tok.pad_token_id, max_new_tokens=24)

    def cut(seq):
        return seq[: seq.index(eos) + 1] if eos in seq else seq

    for start in range(0, 21, 8):
        seqs = prompts[start : start + 8]
        input_ids, mask = decoding.left_pad(seqs, tok.pad_token_id)
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
        expected = [cut(r) for r in out[:, input_ids.shape[1] :].tolist()]
        assert [cut(r) for r in decoder.generate(seqs)] == expected


@pytest.mark.slow
def test_compiled_decoding_matches_eager(student, bench, tmp_path):
    """compile: true (torch.compile of the decoding step; inductor on a CPU) gives the rows of
    the eager loop, with padded last batches and rounded-up cache lengths."""
    eager, compiled = tmp_path / "eager.parquet", tmp_path / "compiled.parquet"
    generate_file(student, bench, str(eager), gen_spec(), progress=False, threads=1)
    s = generate_file(
        student, bench, str(compiled), gen_spec(compile=True), progress=False, threads=1
    )
    assert s["compile"] is True
    assert strip_seconds(read(compiled)) == strip_seconds(read(eager))


def test_vllm_backend_without_vllm_names_the_key(student, bench, tmp_path):
    try:
        import vllm  # noqa: F401

        pytest.skip("vllm is installed")
    except ImportError:
        pass
    with pytest.raises(GenerationSpecError, match=r"generation\.backend.*vllm.*not installed"):
        generate_file(
            student,
            bench,
            str(tmp_path / "x.parquet"),
            gen_spec(backend="vllm"),
            progress=False,
            threads=1,
        )
    with pytest.raises(ValueError, match="attn_implementation"):
        gen_spec(backend="vllm", attn_implementation="sdpa")


# ------------------------------------------------------------------ resume

RUNNER = """
import json, sys, time
from mathrecipes import generation

checkpoint, benchmark, out, spec, delay, resume_dir = sys.argv[1:]
if float(delay):  # slow each batch down so that the test can stop the job halfway
    original = generation.HFDecoder.generate

    def generate(self, seqs, seed=0):
        time.sleep(float(delay))
        return original(self, seqs, seed)

    generation.HFDecoder.generate = generate
summary = generation.generate_file(
    checkpoint, benchmark, out, json.loads(spec), threads=1, progress=False, resume_dir=resume_dir
)
print(json.dumps(summary))
"""


def saved_batches(progress: Path) -> int:
    """Complete batch lines in a progress file (the header excluded)."""
    if not progress.exists():
        return 0
    return max(progress.read_bytes().count(b"\n") - 1, 0)


KILL_SPEC = gen_spec(temperature=1.0, top_p=0.95, n_samples=2, seed=7, batch_size=3)


@pytest.fixture(scope="module")
def kill_reference(student, bench, tmp_path_factory):
    """Rows of an uninterrupted run of KILL_SPEC (21 problems x 2 samples: 14 batches)."""
    path = tmp_path_factory.mktemp("reference") / "reference.parquet"
    generate_file(student, bench, str(path), KILL_SPEC, progress=False, threads=1)
    return strip_seconds(read(path))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_job_resumes_without_losing_or_duplicating_rows(
    student, bench, kill_reference, tmp_path, sig
):
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    resume, out = tmp_path / "resume", tmp_path / "out.parquet"
    progress = resume / "progress.jsonl"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    command = [sys.executable, str(runner), student, bench, str(out), json.dumps(KILL_SPEC)]
    job = subprocess.Popen(
        [*command, "0.3", str(resume)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 180
    while saved_batches(progress) < 2:
        assert job.poll() is None, job.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "no progress written"
        time.sleep(0.02)
    seen = saved_batches(progress)
    job.send_signal(sig)
    _, err = job.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert job.returncode == -signal.SIGKILL
    else:  # our handler: the batch in flight is saved, then the job fails (not killed)
        assert job.returncode == 1, err.decode()[-3000:]
        assert b"GenerationInterrupted" in err
        assert progress.read_bytes().endswith(b"\n")
    saved = saved_batches(progress)
    assert seen <= saved < 14
    assert not out.exists()

    summary = generate_file(
        student, bench, str(out), KILL_SPEC, progress=False, threads=1, resume_dir=str(resume)
    )
    assert summary["recovered_rows"] == 3 * saved
    assert summary["n_rows"] == 42
    got = read(out)
    assert len({(r["problem_id"], r["sample"]) for r in got}) == 42  # none lost or duplicated
    assert strip_seconds(got) == kill_reference
    assert not resume.exists()  # progress deleted once the parquet is written


class Crash(RuntimeError):
    pass


ORIGINAL_GENERATE = generation.HFDecoder.generate


def crash_after(monkeypatch, n_batches: int) -> list[int]:
    """Make the hf decoder raise on its (n_batches + 1)-th call; returns the call counter."""
    original = ORIGINAL_GENERATE
    calls = [0]

    def generate(self, seqs, seed=0):
        calls[0] += 1
        if calls[0] > n_batches:
            raise Crash("simulated crash")
        return original(self, seqs, seed)

    monkeypatch.setattr(generation.HFDecoder, "generate", generate)
    return calls


def test_torn_last_line_is_dropped_and_only_missing_batches_run(
    student, bench, tmp_path, monkeypatch
):
    spec = gen_spec(batch_size=4)  # 21 problems: 6 batches
    reference = tmp_path / "reference.parquet"
    generate_file(student, bench, str(reference), spec, progress=False, threads=1)
    resume, out = tmp_path / "resume", tmp_path / "out.parquet"

    crash_after(monkeypatch, 2)
    with pytest.raises(Crash):
        generate_file(
            student, bench, str(out), spec, progress=False, threads=1, resume_dir=str(resume)
        )
    progress = resume / "progress.jsonl"
    assert saved_batches(progress) == 2
    with open(progress, "ab") as fh:  # what a kill in the middle of a write leaves
        fh.write(b'{"batch": 2, "rows": [{"problem_id": "bench/00')

    calls = crash_after(monkeypatch, 99)
    summary = generate_file(
        student, bench, str(out), spec, progress=False, threads=1, resume_dir=str(resume)
    )
    assert calls[0] == 4  # batches 2..5 only
    assert summary["recovered_rows"] == 8
    assert strip_seconds(read(out)) == strip_seconds(read(reference))
    assert not resume.exists()


def test_stale_progress_is_discarded(student, bench, tmp_path, monkeypatch, caplog):
    """Progress saved for another spec (here another max_new_tokens) is never reused."""
    spec = gen_spec(batch_size=4)
    reference = tmp_path / "reference.parquet"
    generate_file(student, bench, str(reference), spec, progress=False, threads=1)
    resume, out = tmp_path / "resume", tmp_path / "out.parquet"

    crash_after(monkeypatch, 3)
    with pytest.raises(Crash):
        generate_file(
            student,
            bench,
            str(out),
            gen_spec(batch_size=4, max_new_tokens=5),
            progress=False,
            threads=1,
            resume_dir=str(resume),
        )
    assert saved_batches(resume / "progress.jsonl") == 3

    calls = crash_after(monkeypatch, 99)
    with caplog.at_level(logging.WARNING, logger="mathrecipes.generation"):
        summary = generate_file(
            student, bench, str(out), spec, progress=False, threads=1, resume_dir=str(resume)
        )
    assert any("stale" in r.getMessage() for r in caplog.records)
    assert calls[0] == 6
    assert summary["recovered_rows"] == 0
    assert strip_seconds(read(out)) == strip_seconds(read(reference))


def test_bench_generate_small_runs_without_workflow_packages():
    """The benchmark's CPU smoke run, with the packages a GPU image lacks made unimportable."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_generate.py"
    code = (
        "import runpy, sys\n"
        "for m in ('snakemake', 'polars', 'datasets', 'math_verify', 'pydantic'):\n"
        "    sys.modules[m] = None\n"
        f"sys.argv = [{str(script)!r}, '--small', '--json', '--reps', '1', '--threads', '1']\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    results = report["results"]
    assert (report["batch"], report["new_tokens"]) == (4, 16)
    for name in ("hf_generate_dynamic", "hf_generate_static", "mathrecipes_hf"):
        assert results[name]["new_tokens_per_s"] > 0
    assert results["mathrecipes_hf"]["agree"] == 1.0  # float32: the same tokens as generate
    assert "skipped" in results["mathrecipes_hf_compile"]  # CUDA only
