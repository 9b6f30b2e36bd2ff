"""The ``vllm`` teacher backend (an optional package) and what every local-model teacher shares.

Without vLLM (here: always, the import is blocked) a synthesis job with a vllm teacher or judge
fails before it reads a row, naming the config key and the fix. The config tests check the spec,
that its ``resources`` are not job parameters, and the request of a job with local models. The
``gpu`` test runs the real backend on the hand-weighted chain Llama of
``tests/helpers.py`` (it writes ``... \\boxed{7}`` or ``... \\boxed{8}``, as the
request's seed decides): seeded, independent of batching, cached, and through ``distill``.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import yaml

from mathrecipes.config import ConfigError, SynthesisSpec, VLLMTeacherSpec, load_config, plain
from mathrecipes.synthesis import synthesize_shard
from mathrecipes.synthesis.jobs import job_resources, local_models
from mathrecipes.teachers import make_teacher
from mathrecipes.teachers.operational import as_resources, split_operational, with_operational
from mathrecipes.teachers.vllm_backend import VLLMTeacherError

VLLM = {"backend": "vllm", "model": "Qwen/Qwen2.5-0.5B-Instruct", "temperature": 0.7}
OPENAI = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}


def spec(**kw) -> dict:
    """A synthesis spec as the workflow passes it (validated, defaults filled in)."""
    kw.setdefault("from", "arith")
    kw.setdefault("shards", 1)
    return plain(SynthesisSpec.model_validate(kw))


@pytest.fixture
def no_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError


# ------------------------------------------------------------------ vllm missing


def test_a_missing_vllm_fails_the_job_at_once_naming_the_key(no_vllm, tmp_path):
    out, rej = tmp_path / "s.parquet", tmp_path / "r.parquet"
    missing = [tmp_path / "never-read.parquet"]  # the error comes before any row is read
    with pytest.raises(VLLMTeacherError) as info:
        synthesize_shard("dist", spec(teacher=VLLM), missing, 0, out, rej, progress=False)
    msg = str(info.value)
    assert msg.startswith("synthesis.dist.teacher.backend is 'vllm' but the vllm package")
    assert "pip install 'mathrecipes[vllm]'" in msg and "CUDA" in msg
    assert "synthesis.dist.teacher.backend: hf" in msg  # the other way out
    assert not out.exists()
    judged = spec(method="rewrite", teacher=OPENAI, judge=VLLM)
    with pytest.raises(VLLMTeacherError, match=r"^synthesis\.rw\.judge\.backend is 'vllm'"):
        synthesize_shard("rw", judged, missing, 0, out, rej, progress=False)
    with pytest.raises(VLLMTeacherError, match=r"^teacher\.backend is 'vllm'"):
        make_teacher(VLLM)


def test_an_unused_vllm_teacher_needs_no_vllm(no_vllm, tmp_path):
    """A teacher passed in (tests) or one the method does not call is never built."""
    from mathrecipes.records import write_records

    rows = [{"id": "a/0", "source": "a", "problem": "p", "solution": "1 + 1 = 2\n\\boxed{2}",
             "answer": "2", "answer_type": "integer", "meta": "{}"}]  # fmt: skip
    write_records(rows, tmp_path / "in.parquet")
    # retrieval only (similar: 0) calls no teacher
    retrieval = spec(method="weakness", teacher=VLLM, probe={"dataset": "d", "student": "s",
                                                             "recipe": "r"})  # fmt: skip
    assert local_models(retrieval) == {}
    summary = synthesize_shard(
        "w", retrieval, [tmp_path / "in.parquet"], 0,
        tmp_path / "o.parquet", tmp_path / "r.parquet", progress=False,
    )  # fmt: skip
    assert summary["input_rows"] == 1


def test_a_tensor_parallel_teacher_gets_the_jobs_gpus(no_vllm, tmp_path):
    """The job's params hold no resources; the job's spec gets its GPUs back, so a model split
    over 2 GPUs validates in the job (and, here, fails only for want of vllm)."""
    entry = spec(teacher={**VLLM, "tensor_parallel_size": 2, "resources": {"gpus": 2}})
    params = {**entry, "teacher": split_operational(entry["teacher"])[0]}
    job = with_operational(params, {**as_resources(params["teacher"], "cache"), "gpu": 2})
    assert job["teacher"]["resources"] == {"gpus": 2}
    out, rej = tmp_path / "s.parquet", tmp_path / "r.parquet"
    with pytest.raises(VLLMTeacherError, match=r"^synthesis\.d\.teacher\.backend is 'vllm'"):
        synthesize_shard("d", job, [tmp_path / "never-read.parquet"], 0, out, rej, progress=False)


# ------------------------------------------------------------------ config


def test_vllm_teacher_config(repo):
    raw = yaml.safe_load((repo / "config.yaml").read_text())
    raw["synthesis"]["distilled"]["teacher"] = dict(VLLM, max_model_len=4096)
    got = load_config(raw).synthesis["distilled"].teacher
    assert isinstance(got, VLLMTeacherSpec)
    assert (got.dtype, got.gpu_memory_utilization, got.tensor_parallel_size) == ("auto", 0.9, 1)
    assert got.batch_size == 256 and got.max_new_tokens == 1024 and got.max_model_len == 4096
    assert got.resources.gpus == 1

    def error(t) -> str:
        raw["synthesis"]["distilled"]["teacher"] = t
        with pytest.raises(ConfigError) as info:
            load_config(raw)
        return str(info.value)

    key = "config key 'synthesis.distilled.teacher"
    assert f"{key}.max_tokens': unknown key" in error({**VLLM, "max_tokens": 9})
    assert f"{key}.gpu_memory_utilization'" in error({**VLLM, "gpu_memory_utilization": 1.5})
    assert f"{key}.model': required key is missing" in error({"backend": "vllm"})
    msg = error({**VLLM, "tensor_parallel_size": 2})
    assert "tensor_parallel_size (2) needs resources.gpus >= 2 (got 1)" in msg
    assert "(expected one of builtin, openai, hf, vllm)" in error({"backend": "vllmm"})
    raw["synthesis"]["distilled"]["teacher"] = {
        **VLLM, "tensor_parallel_size": 2, "resources": {"gpus": 2}
    }  # fmt: skip
    assert load_config(raw).synthesis["distilled"].teacher.tensor_parallel_size == 2


def test_local_model_resources_are_not_job_params():
    hf = {"backend": "hf", "model": "m", "resources": {"gpus": 1, "cpus": 6, "mem_mb": 8000}}
    judge = {**VLLM, "resources": {"gpus": 2, "cpus": 2, "runtime": 30}}
    entry = spec(method="rewrite", teacher=hf, judge=judge)
    params, settings = split_operational(entry["teacher"])
    assert "resources" not in params and settings["resources"]["cpus"] == 6
    assert set(local_models(entry)) == {"teacher", "judge"}
    # both models load in the one job: the larger of each setting
    assert job_resources(entry) == {"gpus": 2, "cpus": 6, "mem_mb": 32000, "runtime": 240}
    assert job_resources(spec(method="rewrite", teacher=OPENAI, judge=judge))["runtime"] == 30
    assert job_resources(spec(teacher=OPENAI)) is None
    assert job_resources(spec()) is None  # builtin


# ------------------------------------------------------------------ the real backend (GPU)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_vllm_backend_decodes_seeded_unbatched_cached_and_distills(tmp_path):
    from helpers import CHAIN, chain_model, sums

    from mathrecipes.records import read_records
    from mathrecipes.teachers.base import GenRequest
    from mathrecipes.teachers.vllm_backend import VLLMBackend

    template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:\n\n{% endif %}"
    )
    folder = chain_model(tmp_path / "teacher", chat_template=template)
    teacher = {"backend": "vllm", "model": str(folder), "max_new_tokens": 16, "temperature": 1.0,
               "batch_size": 8, "gpu_memory_utilization": 0.3}  # fmt: skip
    backend = VLLMBackend(teacher)  # one engine for the whole test (each takes GPU memory)

    def reqs(n, **kw):
        return [GenRequest(key=f"r{i}", messages=(("user", f"What is {i} + 4?"),), max_tokens=12,
                           temperature=1.0, seed=1000 + i, **kw) for i in range(n)]  # fmt: skip

    out = backend.generate(reqs(16), progress=False)
    assert all(r.ok and r.finish_reason == "stop" for r in out), out
    assert {r.text for r in out} == {CHAIN, CHAIN.replace("7", "8")}  # both answers occur
    assert out[0].usage["completion_tokens"] == 11  # 10 tokens and the eos
    # a request's sample depends on its seed only: alone, or in another batch, the same
    backend.spec.batch_size = 1
    assert [r.text for r in backend.generate(reqs(16), progress=False)] == [r.text for r in out]
    backend.spec.batch_size = 8
    assert [r.text for r in backend.generate(reqs(16), progress=False)] == [r.text for r in out]
    # the chat template made the prompt; limits as in the hf backend
    req = reqs(1)[0]
    text = "user: What is 0 + 4?\nassistant:\n\n"
    assert backend.prompt_ids(req) == backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    cut = backend.generate([GenRequest(key="c", prompt="x\n\n", max_tokens=3)], progress=False)
    assert cut[0].finish_reason == "length" and cut[0].text == "Step 1:"
    long = backend.generate([GenRequest(key="l", prompt="x " * 1020, max_tokens=8)], progress=False)
    assert long[0].error.startswith("prompt_too_long")
    # the response cache: a rerun generates nothing
    backend.cache_path = tmp_path / "cache" / "vllm-responses.sqlite"
    first = backend.generate(reqs(6), progress=False)
    again = backend.generate(reqs(6), progress=False)
    assert [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)
    assert backend.last_summary["generated"] == 0
    d = backend.describe()
    assert d["backend"] == "vllm" and d["fingerprint"] and d["chat_template"] is True
    assert d["max_model_len"] == 1024 and d["vllm"]
    # distill through the synthesis entry point: every sample kept or rejected, answers 7 or 8
    data = sums(tmp_path)
    out_path, rej_path = tmp_path / "d.parquet", tmp_path / "d.rejects.parquet"
    summary = synthesize_shard(
        "d", spec(teacher=teacher, samples=4, keep="all", per_problem=4), [data], 0,
        out_path, rej_path, progress=False, teacher=backend,
    )  # fmt: skip
    kept = read_records(out_path)
    assert summary["kept"] + summary["rejected"] == 4 * len(read_records(data))
    assert {r["solution"][-2] for r in kept} <= {"7", "8"} and kept
