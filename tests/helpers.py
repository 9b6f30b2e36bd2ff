"""What several test modules share (their fixtures are in ``conftest.py``); test modules import
from here, never from each other.

- required parts: :func:`require`, :func:`require_module` (skip on a laptop, fail in CI);
- Snakemake: :func:`run_snakemake`, :func:`planned_jobs`, :func:`J`;
- hand-weighted teachers: :func:`markov_llama`, :func:`markov_model`, :func:`chain_model` (writes
  :data:`CHAIN`, answer 7 or 8), :func:`sums` (problems it can get right), :func:`serve_as_chat`;
- synthesis shards: :func:`synthesis_spec`, :func:`run_shard`, :func:`row_meta`,
  :func:`hf_teacher`, :func:`assert_accounted`;
- the OpenAI-compatible server on loopback: :class:`Server` (``tests/openai_server.py``);
- students: :data:`TINY_MODEL`, :func:`arithmetic_rows`, :func:`student_spec`;
- provenance: :func:`documented_folder_hash` (the docs' command for a folder's hash).
"""

from __future__ import annotations

import importlib
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


# ------------------------------------------------------------------ required parts


def in_ci() -> bool:
    """True under CI (``CI=true``, as CI services and ``.ci/run`` set it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(present: bool, part: str) -> None:
    """Skip the test (or the module, at module level) when a part it needs is missing, and fail
    it instead under CI (``CI=true``), where every part is installed and a skip would hide a
    broken install: the shared data, the server packages (``transformers[serving]``), the
    embedding model (``.[embed]``). ``part`` says what is missing and how to get it.

    Not for what CI cannot have: the GPU and vllm tests (``tests/test_teacher_vllm.py``) skip on
    every CPU machine, CI's included, with ``pytest.mark.skipif``; the SLURM tier fails on a
    missing cluster only with ``MATHRECIPES_REQUIRE_SLURM=1`` (``.ci/run`` starts one)."""
    if present:
        return
    if in_ci():
        pytest.fail(f"CI=true and a required part is missing: {part}", pytrace=False)
    pytest.skip(f"missing: {part}", allow_module_level=True)


def require_module(name: str, install: str) -> ModuleType | None:
    """The module ``name``, imported, or :func:`require`'s skip (failure under CI)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require(False, f"the module {name} ({exc}); {install}")
        return None


def require_serving() -> None:
    """``transformers serve``'s own packages, which ``tests/openai_server.py`` runs."""
    for name in ("fastapi", "uvicorn"):
        require_module(name, 'pip install -e ".[test]" (transformers[serving])')


# ------------------------------------------------------------------ Snakemake


def run_snakemake(workdir: Path, *args: str, env: dict | None = None, check: bool = True):
    """The repository's Snakefile run in ``workdir`` (its ``.snakemake`` folder goes there)."""
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def planned_jobs(output: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """(rule, wildcards) of every job in a dry-run report."""
    jobs = set()
    rule = None
    wildcards: tuple = ()
    for line in output.splitlines() + [""]:
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            if rule:
                jobs.add((rule, wildcards))
            rule, wildcards = m.group(1), ()
            continue
        w = re.match(r"^\s+wildcards: (.*)$", line)
        if w and rule:
            wildcards = tuple(sorted(tuple(kv.split("=", 1)) for kv in w.group(1).split(", ")))
    if rule:
        jobs.add((rule, wildcards))
    return jobs


def J(rule: str, **wc) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A job as :func:`planned_jobs` lists it."""
    return (rule, tuple(sorted((k, str(v)) for k, v in wc.items())))


# ------------------------------------------------------------------ hand-weighted teachers


def markov_llama(tok, after: dict[int, list[int]], max_positions: int):
    """A 1-layer Llama whose next token depends on the current token only: after token ``t``
    one of ``after[t]``, equally likely (layers add nothing to the residual stream, which is
    the current token's one-hot embedding)."""
    import torch

    from mathrecipes.training.model import build_scratch_model

    dims = {t: i for i, t in enumerate(after)}
    assert len(dims) <= 64, "more states than hidden dimensions"
    model_spec = dict(hidden_size=64, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, max_position_embeddings=max_positions,
                      rope_theta=10000.0, tie_word_embeddings=False)  # fmt: skip
    model = build_scratch_model(model_spec, tok, seed=0)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.lm_head.weight.zero_()
        for t, nexts in after.items():
            model.model.embed_tokens.weight[t, dims[t]] = 1.0
            for n in nexts:
                model.lm_head.weight[n, dims[t]] = 10.0
    return model


def markov_model(folder: Path, texts: list[str]) -> Path:
    """A Llama whose next token depends on the current token only: after a prompt ending in a
    blank line it writes one of ``texts`` (then its eos), branching wherever two texts part.
    Checks that the chain writes exactly ``texts`` and nothing else."""
    from mathrecipes.training.tokenizer import train_bpe_tokenizer

    tok = train_bpe_tokenizer(
        [*texts, "Some prompt.\n\n"] * 20, vocab_size=2000, model_max_length=4096
    )
    starts = [tok.convert_tokens_to_ids(t) for t in ("Ċ", "ĊĊ")]
    starts = [t for t in starts if t is not None and t != tok.unk_token_id]
    after: dict[int, list[int]] = {}

    def link(a: int, b: int) -> None:
        if b not in after.setdefault(a, []):
            after[a].append(b)

    for text in texts:
        path = tok(text, add_special_tokens=False)["input_ids"]
        for s in starts:
            link(s, path[0])
        for a, b in zip(path, path[1:], strict=False):
            link(a, b)
        link(path[-1], tok.eos_token_id)
    # the chain writes exactly `texts`: enumerate its paths
    outputs, stack = set(), [(starts[0], [])]
    while stack:
        t, seq = stack.pop()
        assert len(seq) < 200, "the chain has a cycle"
        for n in after[t]:
            if n == tok.eos_token_id:
                outputs.add(tok.decode(seq))
            else:
                stack.append((n, [*seq, n]))
    assert outputs == set(texts), outputs
    model = markov_llama(tok, after, max_positions=4096)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


CHAIN = "Step 1: add. \\boxed{7}"


def chain_model(folder: Path, chat_template: str | None = None) -> Path:
    """A Llama that writes :data:`CHAIN` (its 7, or an 8: equally likely, as the sampling seed
    decides) after any prompt ending in a line break, then its eos: a teacher whose answer to
    everything is 7 or 8."""
    from mathrecipes.training.tokenizer import train_bpe_tokenizer

    texts = [CHAIN, CHAIN.replace("7", "8"), "What is 3 + 4?\n\n", "Rephrase it.\n\n"] * 20
    tok = train_bpe_tokenizer(texts, vocab_size=300)
    path = tok(CHAIN, add_special_tokens=False)["input_ids"]
    eight = tok.convert_tokens_to_ids("8")
    assert len(set(path)) == len(path) and eight not in path
    after = {a: [b] for a, b in zip(path, path[1:], strict=False)}
    after[path[-1]] = [tok.eos_token_id]
    after[path[-3]] = [path[-2], eight]  # "{" -> "7" | "8"
    after[eight] = [path[-1]]
    for end in ("Ċ", "ĊĊ"):  # a prompt's trailing blank line
        if tok.convert_tokens_to_ids(end) is not None:
            after[tok.convert_tokens_to_ids(end)] = [path[0]]
    model = markov_llama(tok, after, max_positions=1024)
    if chat_template:
        tok.chat_template = chat_template
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def serve_as_chat(folder: Path) -> Path:
    """Make a Markov model folder servable by ``transformers serve``: a chat template that ends
    every message with a blank line (where the chain starts), and sampling on (else the server
    decodes greedily whatever the request's temperature, always taking the first branch)."""
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n\n{% endfor %}"
    tok.save_pretrained(folder)
    gen = GenerationConfig.from_pretrained(folder)
    gen.do_sample = True
    gen.save_pretrained(folder)
    return folder


# (a, b) of "What is a + b?": gold 7 or 8 (the chain teacher is right half the time) or 10 (never)
SUMS = [(3, 4), (4, 4), (5, 5), (2, 5), (1, 7), (6, 4)]


def sum_rows(source: str = "s") -> list[dict[str, str]]:
    """The :data:`SUMS` problems as canonical records ``<source>/<i>``."""
    return [
        {"id": f"{source}/{i}", "source": source, "problem": f"What is {a} + {b}?",
         "solution": f"{a} + {b} = {a + b}\n\\boxed{{{a + b}}}", "answer": str(a + b),
         "answer_type": "integer", "meta": "{}"}
        for i, (a, b) in enumerate(SUMS)
    ]  # fmt: skip


def sums(tmp_path: Path) -> Path:
    """:func:`sum_rows` written to ``tmp_path/sums.parquet``."""
    from mathrecipes.records import write_records

    write_records(sum_rows(), tmp_path / "sums.parquet")
    return tmp_path / "sums.parquet"


# ------------------------------------------------------------------ synthesis shards


def synthesis_spec(**kw) -> dict:
    """A synthesis spec as the workflow passes it (validated, defaults filled in); ``from``
    defaults to ``arith``, ``shards`` to 1."""
    from mathrecipes.config import SynthesisSpec, plain

    kw.setdefault("from", "arith")
    kw.setdefault("shards", 1)
    return plain(SynthesisSpec.model_validate(kw))


def run_shard(tmp_path: Path, name: str, spec: dict, inputs: list, **kw):
    """``synthesize_shard`` of shard 0 into ``tmp_path``: (summary, kept rows, rejected rows)."""
    from mathrecipes.records import read_records
    from mathrecipes.synthesis import synthesize_shard

    out, rej = tmp_path / f"{name}.parquet", tmp_path / f"{name}.rejects.parquet"
    summary = synthesize_shard(name, spec, inputs, 0, out, rej, progress=False, **kw)
    return summary, read_records(out), pq.read_table(rej).to_pylist()


def row_meta(row: dict) -> dict:
    return json.loads(row["meta"])


def hf_teacher(folder: Path, **kw) -> dict:
    """An ``hf`` teacher spec for a local model folder (sampling, 16 new tokens)."""
    return {"backend": "hf", "model": str(folder), "max_new_tokens": 16, "temperature": 1.0,
            "batch_size": 4, **kw}  # fmt: skip


def assert_accounted(rows, kept, rejects, per_row: int) -> None:
    """Every sample of every input row is one kept or one rejected row."""
    from mathrecipes.synthesis import REJECT_FIELDS

    seen = [(row_meta(r)["parent_id"], row_meta(r)["sample"]) for r in kept]
    seen += [(r["parent_id"], r["attempt"]) for r in rejects]
    assert sorted(seen) == sorted((r["id"], j) for r in rows for j in range(per_row))
    assert all(r["reason"].split(":")[0] and ": " in r["reason"] for r in rejects)
    assert all(set(r) == set(REJECT_FIELDS) for r in rejects)


# ------------------------------------------------------------------ the OpenAI-compatible server

SERVER = REPO / "tests" / "openai_server.py"
KEY_ENV = "MATHRECIPES_TEST_TEACHER_KEY"  # the variable that holds the teacher's API key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``tests/openai_server.py`` (``transformers serve`` serving ``model``) as a subprocess on
    127.0.0.1:port; with ``require_key`` on it expects :attr:`key` (a fresh one per server)."""

    def __init__(self, model: Path, workdir: Path, port: int | None = None) -> None:
        self.model, self.workdir = model, workdir
        self.port = port or free_port()
        self.key = f"sk-planted-{secrets.token_hex(12)}"
        self.record = workdir / f"server-{self.port}.jsonl"
        self.log = workdir / f"server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Server:
        env = {
            **os.environ,
            KEY_ENV: self.key,
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        args = [sys.executable, str(SERVER), str(self.model), "--port", str(self.port)]
        args += ["--record", str(self.record), "--require-key-env", KEY_ENV]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 300.0) -> None:
        import httpx2

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx2.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout} s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def stats(self) -> dict:
        import httpx2

        return httpx2.get(f"{self.url}/_stats", timeout=5).json()

    def control(self, **kw) -> None:
        import httpx2

        httpx2.post(f"{self.url}/_control", json=kw, timeout=5).raise_for_status()

    def reset(self, **kw) -> None:
        self.control(**{"delay": 0.0, "fail": [], "require_key": False, "reset": True, **kw})

    def records(self, event: str = "received", pid: int | None = None) -> list[dict]:
        if not self.record.exists():
            return []
        lines = [json.loads(line) for line in self.record.read_text().splitlines()]
        return [r for r in lines if r["event"] == event and pid in (None, r["pid"])]


# ------------------------------------------------------------------ students

TINY_MODEL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 128,
}


def arithmetic_rows(n: int, seed: int = 0, prefix: str = "t") -> list[dict[str, str]]:
    from mathrecipes.records import check_record

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randrange(10), rng.randrange(10)
        rows.append(
            check_record(
                {
                    "id": f"{prefix}/{i:04d}",
                    "source": prefix,
                    "problem": f"What is {a} + {b}?",
                    "solution": f"Step 1: {a} + {b} = {a + b}\n\\boxed{{{a + b}}}",
                    "answer": str(a + b),
                    "answer_type": "integer",
                },
                where=f"row {i}",
            )
        )
    return rows


def student_spec(**training: Any) -> dict:
    """A tiny scratch student (:data:`TINY_MODEL`), 30 steps unless ``epochs`` or ``max_steps``
    are given; other keyword arguments are ``training`` keys (``model``, ``init`` override
    those)."""
    from mathrecipes.config import StudentSpec

    training.setdefault("lr", 3e-3)
    training.setdefault("warmup_steps", 5)
    training.setdefault("tokens_per_step", 600)
    training.setdefault("log_every", 5)
    training.setdefault("max_length", 128)
    if "epochs" not in training:
        training.setdefault("max_steps", 30)
    model = training.pop("model", TINY_MODEL)
    init = training.pop("init", "scratch")
    return StudentSpec(
        init=init, model=model, tokenizer={"vocab_size": 300}, training=training
    ).model_dump(mode="json", by_alias=True)


# ------------------------------------------------------------------ provenance


def documented_folder_hash(folder: Path) -> str:
    """Run the one-liner docs/tables.md gives for reproducing a folder's hash, on ``folder``."""
    import shlex

    docs = (REPO / "docs" / "tables.md").read_text()
    lines = [ln for ln in docs.splitlines() if ln.startswith("cd ") and "sha256sum" in ln]
    assert len(lines) == 1, "docs/tables.md gives one folder-hash command"
    command = f"cd {shlex.quote(str(folder))} && " + lines[0].split(" && ", 1)[1]
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]
