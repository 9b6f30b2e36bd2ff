"""Student generation: output rows/columns, sampling, length cut-off, batch invariance."""

from __future__ import annotations

import os
import random

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

torch = pytest.importorskip("torch")

import pyarrow.parquet as pq  # noqa: E402

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
TINY_MODEL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 128,
}


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
    train_student(str(train), str(ckpt), spec, seed=0, progress=False)
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
        assert r["seconds"] >= 0
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
