"""Synthesis methods (distill, structure, rephrase) with the builtin and the hf teacher, prompt
files, config keys, and the rerun rule for prompt edits.

The hf teacher here is a real ``LlamaForCausalLM`` run by the real backend, with weights set by
hand so that it is a tiny Markov chain over tokens (``helpers.chain_model``): every layer adds
nothing to the residual stream, so the next token depends on the current token only. From the
end of any prompt it writes ``Step 1: add. \\boxed{7}`` or ``... \\boxed{8}``, the two equally
likely at ``{``: a teacher whose answer to everything is 7 or 8, as its sampling seed decides.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import (
    CHAIN,
    J,
    assert_accounted,
    chain_model,
    hf_teacher,
    planned_jobs,
    row_meta,
    run_shard,
    run_snakemake,
    sums,
    synthesis_spec,
)

from mathrecipes.config import ConfigError, SynthesisSpec, load_config
from mathrecipes.ingest import ingest
from mathrecipes.records import read_records, write_records
from mathrecipes.synthesis import (
    AnswerChecker,
    Prompt,
    PromptError,
    prompt_refs,
)
from mathrecipes.synthesis.distill import vote
from mathrecipes.synthesis.prompts import resolve_prompt_path
from mathrecipes.synthesis.structure import computation_of, goal_of, structure_by_rules
from mathrecipes.teachers.base import GenRequest
from mathrecipes.teachers.builtin import BuiltinTeacher

REPO = Path(__file__).resolve().parents[1]
BUILTIN = dict(
    source="builtin", generator="arithmetic", split="train", style="answer_only", n=80, seed=1,
    min_steps=2, max_steps=4, max_value=100, on_bad_row="fail",
)  # fmt: skip
TEACHER = {"backend": "builtin", "error_rate": 0.3, "seed": 0}


@pytest.fixture(scope="module")
def arith(tmp_path_factory):
    d = tmp_path_factory.mktemp("arith")
    ingest("arith", BUILTIN, d / "arith.parquet", d / "q.parquet", progress=False)
    return d / "arith.parquet"


# ------------------------------------------------------------------ prompts and config


def test_prompt_file_format(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text(
        "# a comment for the reader\n[system]\nBe careful.\n\n[user]\nSolve {problem}; "
        "box it: \\boxed{}.\n[assistant]\n\\boxed{1}\n[user]\n{problem} again ({answer})\n"
    )
    p = Prompt.load(f, path="prompts/p.txt")
    assert p.path == "prompts/p.txt" and len(p.sha256) == 64
    assert [role for role, _ in p.messages] == ["system", "user", "assistant", "user"]
    msgs = p.render(problem="What is {answer}?", answer="4")
    assert msgs[1] == ("user", "Solve What is {answer}?; box it: \\boxed{}.")  # verbatim values
    assert msgs[3] == ("user", "What is {answer}? again (4)")
    assert p.placeholders() == {"problem", "answer"}
    with pytest.raises(PromptError, match=r"missing placeholder\(s\) \{solution\}"):
        p.require("problem", "solution")
    plain_file = tmp_path / "plain.txt"
    plain_file.write_text("Solve: {problem}\n")
    assert Prompt.load(plain_file).messages == (("user", "Solve: {problem}"),)
    bad = tmp_path / "bad.txt"
    bad.write_text("[user]\n{problem}\n[assistant]\nok\n")
    with pytest.raises(PromptError, match=r"last message must be \[user\]"):
        Prompt.load(bad)
    for method in ("distill", "structure", "rephrase"):
        Prompt.load(REPO / "prompts" / method / "default.txt").require("problem")


def test_prompt_refs_defaults_and_resolution(tmp_path, monkeypatch):
    hf = {"backend": "hf", "model": "m", "temperature": 0.7}
    assert prompt_refs(synthesis_spec()) == {}  # builtin teacher: no prompt
    assert prompt_refs(synthesis_spec(teacher=hf)) == {"prompt": "prompts/distill/default.txt"}
    assert prompt_refs(synthesis_spec(method="structure")) == {}  # rule-based splitter
    assert prompt_refs(
        synthesis_spec(method="structure", splitter="teacher", teacher=hf, prompt="x.md")
    ) == {"prompt": "x.md"}
    assert prompt_refs(synthesis_spec(method="rephrase", teacher=hf)) == {
        "prompt": "prompts/rephrase/default.txt",
        "solve_prompt": "prompts/distill/default.txt",
    }
    monkeypatch.chdir(tmp_path)
    shipped = "prompts/distill/default.txt"
    assert resolve_prompt_path(shipped, [REPO]) == str(REPO / shipped)
    (tmp_path / "prompts" / "distill").mkdir(parents=True)
    (tmp_path / shipped).write_text("{problem}")
    assert resolve_prompt_path(shipped, [REPO]) == shipped  # the working directory's wins


def test_config_method_keys_and_teachers():
    hf = {"backend": "hf", "model": "m"}
    cases = {
        "'splitter' is a key of method structure, not distill": {"splitter": "rules"},
        "'samples' is a key of method distill, not rephrase": {"method": "rephrase", "samples": 2},
        "builtin teacher takes no prompt": {"prompt": "p.txt"},
        "samples > 1 needs teacher.temperature > 0": {"samples": 2, "teacher": hf},
        "keep: consistent needs samples >= 2": {"keep": "consistent"},
        "splitter: rules uses no teacher": {"method": "structure", "teacher": hf},
        "builtin teacher does not rewrite": {"method": "structure", "splitter": "teacher"},
        "solution: teacher needs verify: true": {"method": "rephrase", "verify": False},
    }
    for message, raw in cases.items():
        with pytest.raises(ValueError, match=message):
            SynthesisSpec.model_validate({"from": "a", **raw})
    # a method's parameters hold its own keys only
    assert set(synthesis_spec(method="structure")) == {
        "from",
        "method",
        "teacher",
        "shards",
        "prompt",
        "splitter",
    }
    got = synthesis_spec(method="rephrase", teacher={**hf, "temperature": 0.8}, n_rephrasings=3)
    assert got["teacher"]["backend"] == "hf" and got["n_rephrasings"] == 3 and "samples" not in got
    raw = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    raw["synthesis"]["distilled"]["teacher"] = {"backend": "hf", "max_new_tokens": 0}
    with pytest.raises(ConfigError) as err:
        load_config(raw)
    assert "config key 'synthesis.distilled.teacher.model': required key is missing" in str(
        err.value
    )
    assert "config key 'synthesis.distilled.teacher.max_new_tokens'" in str(err.value)


# ------------------------------------------------------------------ builtin teacher: distill


def test_builtin_distill_one_sample_keeps_what_the_teacher_solves(arith, tmp_path):
    """samples: 1 with the builtin teacher keeps exactly the rows it solves without a slip, with
    the solution it writes for the row's id (what distill did before samples existed)."""
    rows = read_records(arith)
    summary, kept, rejects = run_shard(tmp_path, "d", synthesis_spec(teacher=TEACHER), [arith])
    teacher = BuiltinTeacher(error_rate=0.3, seed=0)
    expected = {r["id"]: teacher.solve(r["problem"], key=r["id"]) for r in rows}
    assert {row_meta(r)["parent_id"]: r["solution"] for r in kept} == {
        i: out.solution for i, out in expected.items() if out.ok
    }
    assert {r["id"] for r in kept} == {f"d/{i}" for i, out in expected.items() if out.ok}
    assert {r["parent_id"]: r["reason"] for r in rejects} == {
        i: out.reason for i, out in expected.items() if not out.ok
    }
    assert_accounted(rows, kept, rejects, 1)
    assert summary["input_rows"] == summary["kept"] + summary["rejected"] == 80
    m = row_meta(kept[0])
    assert m["verified"] is True and m["pass_rate"] == 1.0 and m["n_samples"] == 1
    assert m["teacher"] == TEACHER and m["prompt"] is None and m["method"] == "distill"
    assert m["sampling"] == {"seed": 0, "key": m["parent_id"]} and m["root_id"] == m["parent_id"]


def test_builtin_distill_k_samples_gives_a_real_pass_rate(arith, tmp_path):
    rows = read_records(arith)
    k = 4
    summary, kept, rejects = run_shard(
        tmp_path, "d", synthesis_spec(teacher=TEACHER, samples=k), [arith]
    )
    teacher = BuiltinTeacher(error_rate=0.3, seed=0)
    passes = {
        r["id"]: [teacher.solve(r["problem"], key=r["id"] if j == 0 else f"{r['id']}#{j}").ok
                  for j in range(k)]
        for r in rows
    }  # fmt: skip
    assert_accounted(rows, kept, rejects, k)
    for r in kept:
        m = row_meta(r)
        assert m["pass_rate"] == sum(passes[m["parent_id"]]) / k
        assert m["sample"] == passes[m["parent_id"]].index(True)  # the first passing sample
    kept_parents = {row_meta(r)["parent_id"] for r in kept}
    assert kept_parents == {i for i, p in passes.items() if any(p)}
    rates = {sum(p) / k for p in passes.values()}
    assert len(rates) >= 3 and 0 < summary["mean_pass_rate"] < 1  # a real spread
    # the builtin teacher writes the same text for every sample without a slip: duplicates
    dups = [r for r in rejects if r["reason"].startswith("duplicate")]
    assert len(dups) == sum(max(sum(p) - 1, 0) for p in passes.values())
    slips = [r for r in rejects if r["reason"].startswith(("step_failed", "invalid_step"))]
    assert len(slips) == sum(k - sum(p) for p in passes.values())


def test_builtin_distill_consistent_needs_no_gold(arith, tmp_path):
    rows = read_records(arith)
    gold = {r["id"]: r["answer"] for r in rows}
    blank = tmp_path / "nogold.parquet"
    write_records([{**r, "answer": ""} for r in rows], blank)
    k = 5
    sp = synthesis_spec(teacher=TEACHER, samples=k, keep="consistent", min_agreement=0.6)
    _, kept, rejects = run_shard(tmp_path, "c", sp, [blank])
    assert_accounted(rows, kept, rejects, k)
    teacher = BuiltinTeacher(error_rate=0.3, seed=0)
    ok = {
        r["id"]: sum(teacher.solve(r["problem"], key=r["id"] if j == 0 else f"{r['id']}#{j}").ok
                     for j in range(k))
        for r in rows
    }  # fmt: skip
    assert kept, "some rows reach the agreement threshold"
    for r in kept:
        m = row_meta(r)
        assert r["answer"] == gold[m["parent_id"]]  # the majority is the true answer
        assert m["agreement"] == ok[m["parent_id"]] / k >= 0.6
        assert m["pass_rate"] is None and m["verified"] is None and m["parent_answer"] is None
    low = {r["parent_id"] for r in rejects if r["reason"].startswith("no_consensus")}
    assert low == {i for i, n in ok.items() if 0 < n < 3}
    # keep: verified cannot work without gold
    _, kept, rejects = run_shard(tmp_path, "v", synthesis_spec(teacher=TEACHER), [blank])
    assert not kept and {r["reason"].split(":")[0] for r in rejects} >= {"no_gold"}


def test_vote_and_grader_clusters():
    checker = AnswerChecker()
    answers = ["1/2", "0.5", "\\frac{1}{2}", "3", "3.0", "7"]
    assert checker.clusters(answers) == [0, 0, 0, 1, 1, 2]
    labels = checker.clusters(["5", "5.0", "6"])
    v = vote(["5", "5.0", "6"], labels, 4, 0.5)
    assert (v.answer, v.count, v.why) == ("5", 2, None)
    assert vote(["5", "6"], [0, 1], 2, 0.5).why.startswith("no_consensus: tie between '5', '6'")
    assert "< min_agreement 0.6" in vote(["5", "5", "6"], [0, 0, 1], 5, 0.6).why
    assert vote([], [], 3, 0.5).label is None


# ------------------------------------------------------------------ structure and rephrase


def test_structure_rules_splitter():
    assert goal_of("Ann has 3 cats. She buys 2 more. How many cats does she have?") == (
        "How many cats does she have?"
    )
    gsm = (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72.\n#### 72"
    )
    text, steps = structure_by_rules("How many clips?", gsm, "72")
    assert steps == 2
    assert text.splitlines() == [
        "Goal: How many clips?",
        "Step 1: Natalia sold 48/2 = 24 clips in May.",
        "Computation: 48/2 = 24",
        "Result: 24",
        "Step 2: She sold 48+24 = 72.",
        "Computation: 48+24 = 72",
        "Result: 72",
        "Final answer: \\boxed{72}",
    ]
    assert computation_of("So $x = 2 \\cdot 3 = 6$ here.") == ("x = 2 \\cdot 3 = 6", "6")
    assert computation_of("No arithmetic in this sentence.") is None
    assert computation_of("Then $$rx+2=m$$ so $x=7$ here.") == ("x=7", "7")  # numeric preferred
    assert goal_of(r"Let \[f(x)=x^2.\]Find $f(3)$.") == "Find $f(3)$."
    assert structure_by_rules("Q?", "#### 42", "42")[1] == 0


def test_structure_rules_after_distill_chain(arith, tmp_path):
    """distill (builtin) -> structure (rules): labelled steps, same answers; an answer-only
    solution has no steps to structure."""
    _, distilled, _ = run_shard(
        tmp_path, "d", synthesis_spec(teacher={**TEACHER, "error_rate": 0.0}), [arith]
    )
    structure = synthesis_spec(method="structure", **{"from": "d"})
    _, kept, rejects = run_shard(tmp_path, "s", structure, [tmp_path / "d.parquet"])
    assert_accounted(distilled, kept, rejects, 1)
    assert len(kept) == len(distilled) and not rejects
    by_parent = {r["id"]: r for r in distilled}
    for r in kept:
        m = row_meta(r)
        parent = by_parent[m["parent_id"]]
        lines = r["solution"].splitlines()
        assert lines[0].startswith("Goal: How many") and lines[0].endswith("?")
        assert lines[-1] == f"Final answer: \\boxed{{{parent['answer']}}}"
        assert m["steps"] == len(parent["solution"].splitlines()) - 1
        assert lines[1] == f"Step 1: Compute {parent['solution'].split(' = ')[0]}."
        assert lines[2] == f"Computation: {parent['solution'].splitlines()[0]}"
        assert r["answer"] == parent["answer"] and r["problem"] == parent["problem"]
        assert m["root_id"] == row_meta(parent)["parent_id"] and m["teacher"] is None
        assert m["splitter"] == "rules" and m["original_answer"] == parent["answer"]
    _, kept, rejects = run_shard(tmp_path, "raw", synthesis_spec(method="structure"), [arith])
    assert not kept and {r["reason"].split(":")[0] for r in rejects} == {"no_steps"}


def test_builtin_rephrase_keeps_the_answer(arith, tmp_path):
    rows = read_records(arith)
    sp = synthesis_spec(method="rephrase", n_rephrasings=2, teacher={**TEACHER, "error_rate": 0.1})
    summary, kept, rejects = run_shard(tmp_path, "r", sp, [arith])
    assert_accounted(rows, kept, rejects, 2)
    teacher = BuiltinTeacher()
    by_id = {r["id"]: r for r in rows}
    assert len(kept) > len(rows)  # most rows get two new wordings
    for r in kept:
        m = row_meta(r)
        parent = by_id[m["parent_id"]]
        assert r["id"] == f"r/{parent['id']}#{m['sample']}"
        assert r["problem"] != parent["problem"] and r["answer"] == parent["answer"]
        assert teacher.solve(r["problem"], key="x").answer == parent["answer"]
        assert r["solution"].endswith(f"\\boxed{{{parent['answer']}}}")  # the verifying solve
        assert m["verified"] is True and m["solve_sampling"]["key"].endswith("/solve")
    reasons = {r["reason"].split(":")[0] for r in rejects}
    assert reasons <= {"unverified", "duplicate", "unchanged"} and "unverified" in reasons


# ------------------------------------------------------------------ the hf teacher


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory):
    return chain_model(tmp_path_factory.mktemp("chain") / "teacher")


def test_hf_backend_decodes_seeded_batched_and_cached(chain_dir, tmp_path):
    from mathrecipes.teachers.hf_backend import HFBackend

    def reqs(n, **kw):
        return [GenRequest(key=f"r{i}", messages=(("user", f"What is {i} + 4?"),), max_tokens=12,
                           temperature=1.0, seed=1000 + i, **kw) for i in range(n)]  # fmt: skip

    backend = HFBackend(hf_teacher(chain_dir, batch_size=8))
    out = backend.generate(reqs(16), progress=False)
    assert {r.text for r in out} == {CHAIN, CHAIN.replace("7", "8")}  # both answers occur
    assert all(r.ok and r.finish_reason == "stop" for r in out)
    assert out[0].usage["completion_tokens"] == 11  # 10 tokens and the eos
    # a request's sample depends on its seed only, not on its batch
    alone = HFBackend(hf_teacher(chain_dir, batch_size=1)).generate(reqs(16), progress=False)
    assert [r.text for r in alone] == [r.text for r in out]
    assert [r.text for r in backend.generate(reqs(16), progress=False)] == [r.text for r in out]
    # greedy: the lower token id of the tie, always
    greedy = backend.generate(
        [GenRequest(key="g", prompt="x\n\n", max_tokens=12, temperature=0.0)], progress=False
    )
    assert greedy[0].text in (CHAIN, CHAIN.replace("7", "8"))
    # limits: cut at max_tokens, a prompt too long for the model's 1024 positions
    cut = backend.generate([GenRequest(key="c", prompt="x\n\n", max_tokens=3)], progress=False)
    assert cut[0].finish_reason == "length" and cut[0].text == "Step 1:"
    long = GenRequest(key="l", prompt="x " * 1020, max_tokens=8)
    long = backend.generate([long], progress=False)
    assert long[0].error.startswith("prompt_too_long")
    # the response cache: a second backend (a rerun) generates nothing
    cached = HFBackend(hf_teacher(chain_dir), cache_dir=tmp_path / "cache")
    first = cached.generate(reqs(6), progress=False)
    again = HFBackend(hf_teacher(chain_dir), cache_dir=tmp_path / "cache").generate(
        reqs(6), progress=False
    )
    assert [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)
    d = backend.describe()
    assert d["backend"] == "hf" and d["fingerprint"] and d["chat_template"] is False


def test_hf_backend_uses_the_chat_template(tmp_path):
    from mathrecipes.teachers.hf_backend import HFBackend

    template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:\n\n{% endif %}"
    )
    folder = chain_model(tmp_path / "chat", chat_template=template)
    backend = HFBackend(hf_teacher(folder))
    chat = (("system", "Be brief."), ("user", "What is 3 + 4?"))
    req = GenRequest(key="a", messages=chat, max_tokens=12)
    text = backend.tokenizer.apply_chat_template(req.chat(), add_generation_prompt=True,
                                                 tokenize=False)  # fmt: skip
    assert text == "system: Be brief.\nuser: What is 3 + 4?\nassistant:\n\n"
    assert backend.prompt_ids(req) == backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert backend.generate([req], progress=False)[0].text.startswith("Step 1: add.")
    assert backend.describe()["chat_template"] is True


def test_hf_distill_verified_and_consistent(chain_dir, tmp_path):
    data = sums(tmp_path)
    rows = read_records(data)
    k = 6
    sp = synthesis_spec(teacher=hf_teacher(chain_dir), samples=k)
    summary, kept, rejects = run_shard(tmp_path, "d", sp, [data], cache_dir=tmp_path / "cache")
    assert_accounted(rows, kept, rejects, k)
    texts = {}  # (row, sample) -> the answer the teacher wrote
    for r in rejects:
        texts[r["parent_id"], r["attempt"]] = r["output"][-2]
    for r in kept:
        texts[row_meta(r)["parent_id"], row_meta(r)["sample"]] = r["solution"][-2]
    assert set(texts.values()) == {"7", "8"}
    for row in rows:
        answers = [texts[row["id"], j] for j in range(k)]
        rate = sum(a == row["answer"] for a in answers) / k
        mine = [r for r in kept if row_meta(r)["parent_id"] == row["id"]]
        assert len(mine) == (rate > 0)
        if mine:
            assert row_meta(mine[0])["pass_rate"] == rate and mine[0]["answer"] == row["answer"]
    assert 0 < summary["mean_pass_rate"] < 1
    assert summary["usage"]["requests"] == len(rows) * k
    mismatch = [r for r in rejects if r["reason"].startswith("answer_mismatch")]
    assert mismatch and all(r["prompt"] == "prompts/distill/default.txt" for r in rejects)
    m = row_meta(kept[0])
    sha = Prompt.load(REPO / "prompts/distill/default.txt").sha256
    assert m["prompt"] == {"path": "prompts/distill/default.txt", "sha256": sha}
    assert m["teacher"]["model"] == str(chain_dir) and m["teacher"]["fingerprint"]
    assert set(m["sampling"]) == {"max_tokens", "temperature", "top_p", "seed"}
    assert json.loads(rejects[0]["teacher"]) == m["teacher"] and rejects[0]["prompt_sha256"] == sha
    # a rerun answers from the cache: the same rows
    _, again, _ = run_shard(tmp_path, "d", sp, [data], cache_dir=tmp_path / "cache")
    assert again == kept

    # consistent: the majority of 7s and 8s, whatever the gold says
    sp = synthesis_spec(
        teacher=hf_teacher(chain_dir), samples=k, keep="consistent", min_agreement=0.5
    )
    _, kept, rejects = run_shard(tmp_path, "c", sp, [data], cache_dir=tmp_path / "cache")
    assert_accounted(rows, kept, rejects, k)
    for row in rows:
        answers = [texts[row["id"], j] for j in range(k)]
        top = max(answers.count("7"), answers.count("8"))
        mine = [r for r in kept if row_meta(r)["parent_id"] == row["id"]]
        if answers.count("7") == answers.count("8"):
            assert not mine
        else:
            assert {r["answer"] for r in mine} == {max("78", key=answers.count)}
            assert row_meta(mine[0])["agreement"] == top / k
    kinds = {r["reason"].split(":")[0] for r in rejects}
    assert kinds <= {"minority", "duplicate", "no_consensus"} and "duplicate" in kinds


def test_hf_structure_rejects_a_changed_answer(chain_dir, tmp_path):
    data = sums(tmp_path)
    rows = read_records(data)
    sp = synthesis_spec(method="structure", splitter="teacher", teacher=hf_teacher(chain_dir))
    _, kept, rejects = run_shard(tmp_path, "s", sp, [data])
    assert_accounted(rows, kept, rejects, 1)
    for r in kept:
        assert r["solution"] == CHAIN.replace("7", r["answer"]) and r["answer"] in "78"
    for r in rejects:
        assert r["reason"].startswith("answer_changed: rewritten '")
        assert r["prompt"] == "prompts/structure/default.txt"
    assert {r["parent_id"] for r in rejects} >= {"s/2", "s/5"}  # gold 10 is never written
    short = synthesis_spec(
        method="structure", splitter="teacher", teacher=hf_teacher(chain_dir, max_new_tokens=4)
    )
    _, kept, rejects = run_shard(tmp_path, "t", short, [data])
    assert not kept and {r["reason"].split(":")[0] for r in rejects} == {"truncated"}


def test_hf_rephrase_verifies_with_the_solve_prompt(chain_dir, tmp_path):
    data = sums(tmp_path)
    rows = read_records(data)
    sp = synthesis_spec(method="rephrase", teacher=hf_teacher(chain_dir), n_rephrasings=2)
    _, kept, rejects = run_shard(tmp_path, "r", sp, [data])
    assert_accounted(rows, kept, rejects, 2)
    # the two wordings of a row are "... \boxed{7}" and "... \boxed{8}" or the same text twice
    kinds = {r["reason"].split(":")[0] for r in rejects}
    assert kinds <= {"duplicate", "answer_not_preserved"}
    for r in kept:
        m = row_meta(r)
        assert r["problem"].startswith("Step 1: add.") and r["answer"] in ("7", "8")
        assert m["prompt"]["path"] == "prompts/rephrase/default.txt"
        assert m["solve_prompt"]["path"] == "prompts/distill/default.txt"


def test_a_changed_or_unusable_prompt_fails_the_job(chain_dir, tmp_path):
    data = sums(tmp_path)
    prompt = tmp_path / "p.txt"
    prompt.write_text("[user]\n{problem}\n")
    sp = synthesis_spec(teacher=hf_teacher(chain_dir), prompt=str(prompt))
    with pytest.raises(PromptError, match="differs from the planned"):
        run_shard(tmp_path, "d", sp, [data], prompt_sha256={"prompt": "0" * 64})
    prompt.write_text("[user]\nSolve it.\n")
    with pytest.raises(PromptError, match=r"synthesis\.d\.prompt .*p\.txt: missing placeholder"):
        run_shard(tmp_path, "d", sp, [data])


# ------------------------------------------------------------------ the rerun rule


@pytest.mark.heavy  # real synthesis runs before and after the edit: 1-3 minutes
def test_prompt_edit_reruns_only_the_entries_that_use_it(tmp_path, chain_dir):
    work = tmp_path / "work"
    (work / "prompts").mkdir(parents=True)
    shutil.copytree(chain_dir, work / "teacher")
    for name in ("a", "b"):
        shutil.copy(REPO / "prompts" / "distill" / "default.txt", work / "prompts" / f"{name}.txt")
    raw = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    raw["datasets"] = {"arith": {**BUILTIN, "n": 20}}
    del raw["benchmarks"]["ood_test"]
    raw["benchmarks"]["id_test"]["n"] = 4
    teacher = hf_teacher("teacher", max_new_tokens=12)
    raw["synthesis"] = {
        "dist_a": {"from": "arith", "teacher": teacher, "prompt": "prompts/a.txt", "keep": "all",
                   "shards": 1},
        "dist_b": {"from": "arith", "teacher": teacher, "prompt": "prompts/b.txt", "keep": "all",
                   "shards": 1},
        "chained": {"from": "dist_a", "teacher": TEACHER, "shards": 1},
        "ruled": {"from": "chained", "method": "structure", "shards": 1},
    }  # fmt: skip
    raw["recipes"] = {
        "r_a": {"mix": [{"from": "dist_a"}]},
        "r_b": {"mix": [{"from": "dist_b"}]},
        "r_ruled": {"mix": [{"from": "ruled"}]},
    }
    raw["tables"]["baseline"] = "r_a"
    config = work / "c.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run_snakemake(work, "--configfile", str(config), "--cores", "2", "all_recipes", env=env)
    manifest = json.loads((work / "results/synth/dist_a/shard-0.manifest.json").read_text())
    sha = Prompt.load(work / "prompts" / "a.txt").sha256
    assert manifest["summary"]["prompts"]["prompt"]["sha256"] == sha
    assert str(Path("prompts") / "a.txt") in manifest["inputs"]
    assert len(read_records(work / "results/synth/ruled/shard-0.parquet")) > 0
    nothing = run_snakemake(work, "--configfile", str(config), "-n", "all_recipes", env=env)
    assert planned_jobs(nothing.stdout) == set()

    with open(work / "prompts" / "a.txt", "a") as fh:
        fh.write("\nShow your work.\n")
    dry = run_snakemake(work, "--configfile", str(config), "-n", "all_recipes", env=env)
    assert planned_jobs(dry.stdout) == {
        J("synthesize_shard", synth="dist_a", shard=0),
        J("synthesize_shard", synth="chained", shard=0),
        J("synthesize_shard", synth="ruled", shard=0),
        J("select_recipe", recipe="r_a"),
        J("select_recipe", recipe="r_ruled"),
        J("all_recipes"),
    }


def test_row_seeded_sampling_draws_what_the_student_decoder_draws(tmp_path):
    """Each row of a batch gets the tokens HFDecoder gives it alone with the same seed (its
    filtering and draws, one generator per row), with a random model and top-p sampling."""
    import random

    from mathrecipes.decoding import HFDecoder, RowSeededDecoder
    from mathrecipes.training.model import build_scratch_model
    from mathrecipes.training.tokenizer import train_bpe_tokenizer

    tok = train_bpe_tokenizer(
        [f"What is {i} + {i + 3}? It is {2 * i + 3}." for i in range(50)], 300
    )
    model_spec = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, max_position_embeddings=128, rope_theta=10000.0,
                      tie_word_embeddings=True)  # fmt: skip
    model = build_scratch_model(model_spec, tok, seed=3).eval()
    rng = random.Random(0)
    seqs = [[rng.randrange(3, len(tok)) for _ in range(rng.randrange(3, 12))] for _ in range(6)]
    seeds = [rng.randrange(2**31) for _ in seqs]
    kw = dict(eos=tok.eos_token_id, pad=0, max_new_tokens=10, temperature=0.9, top_p=0.8)

    def upto_eos(ids):
        return ids[: ids.index(kw["eos"]) + 1] if kw["eos"] in ids else ids

    batch = RowSeededDecoder(model, **kw).generate_rows(seqs, seeds)
    ref = HFDecoder(model, **kw)
    alone = [ref.generate([s], seed=seed)[0] for s, seed in zip(seqs, seeds, strict=True)]
    assert [upto_eos(b) for b in batch] == [upto_eos(a) for a in alone]
    assert len({tuple(b) for b in batch}) == len(seqs)
    other = RowSeededDecoder(model, **kw).generate_rows(seqs, [s + 1 for s in seeds])
    assert other != batch
