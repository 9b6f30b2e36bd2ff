"""Prompt formats (plain | chat) and per-benchmark evaluation settings: templates, few-shot
examples, stop strings, per-benchmark sampling, and their config checks."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pyarrow.parquet as pq  # noqa: E402
from helpers import TINY_MODEL, arithmetic_rows, student_spec  # noqa: E402

from mathrecipes.config import (  # noqa: E402
    ConfigError,
    GenerationSpec,
    ModelSpec,
    StudentSpec,
    load_config,
)
from mathrecipes.prompting import (  # noqa: E402
    PLAIN,
    PromptFormat,
    PromptFormatError,
    draw_examples,
    eval_format,
    format_prompt,
    read_template,
    render_template,
)
from mathrecipes.records import write_records  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SYSTEM = "You are a careful math tutor."
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def errors_of(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    return str(info.value)


# ------------------------------------------------------------------ the default format


def test_default_template_file_reproduces_todays_prompt_byte_for_byte():
    template = read_template(str(REPO / "prompts/eval/default.txt"))
    for problem in ["What is 2 + 3?", "  A train leaves at 3 {pm}.\nHow far? \\boxed{x} ", "é"]:
        assert render_template(template, problem) == format_prompt(problem)
        assert PLAIN.prompt(None, problem) == format_prompt(problem)
        assert eval_format({}, [problem]).prompt(None, problem) == format_prompt(problem)
    assert format_prompt("x") == "Problem: x\nSolution:"


def test_default_config_keeps_its_job_params():
    """No new key reaches a default config's job params (nothing reruns on upgrade)."""
    cfg = load_config(default_config())
    old_keys = [k for k in GenerationSpec.model_fields if k not in ("stop", "benchmarks")]
    for b in cfg.benchmarks:
        assert list(cfg.generation.job_spec(b)) == old_keys
    assert all(s.prompt_settings() == {} for s in cfg.students.values())


def test_shipped_templates_have_their_placeholders():
    from mathrecipes.prompting import check_template

    for name, few_shot in [("default", False), ("boxed", False), ("boxed_chat", False),
                           ("gsm8k_fewshot", True)]:  # fmt: skip
        path = str(REPO / f"prompts/eval/{name}.txt")
        check_template(read_template(path), few_shot=few_shot, key="k", path=path)
    boxed = render_template(read_template(str(REPO / "prompts/eval/boxed.txt")), "What is 1+1?")
    assert boxed.endswith("within \\boxed{}.\nSolution:")


# ------------------------------------------------------------------ config checks


def test_scratch_student_with_chat_is_a_config_error_naming_the_key():
    raw = default_config()
    name = sorted(raw["students"])[0]
    raw["students"][name]["prompt_format"] = "chat"
    assert f"students.{name}.prompt_format" in errors_of(raw)
    raw["students"][name]["prompt_format"] = "plain"
    raw["students"][name]["system_prompt"] = "hi"
    assert "system_prompt needs prompt_format: chat" in errors_of(raw)


def test_per_benchmark_override_validation_errors_name_the_key():
    base = default_config()
    bench = sorted(base["benchmarks"])[0]
    dataset = sorted(base["datasets"])[0]

    def with_override(override, name=bench):
        raw = copy.deepcopy(base)
        raw["generation"]["benchmarks"] = {name: override}
        return raw

    assert "generation.benchmarks.nope" in errors_of(with_override({"n_samples": 1}, "nope"))
    assert f"generation.benchmarks.{bench}.bogus" in errors_of(with_override({"bogus": 1}))
    msg = errors_of(with_override({"n_samples": 4}))  # greedy by default
    assert f"benchmarks.{bench}: n_samples 4 > 1 needs temperature > 0" in msg
    msg = errors_of(with_override({"few_shot": {"from": "nope"}, "prompt": "x.txt"}))
    assert f"generation.benchmarks.{bench}.few_shot.from" in msg
    msg = errors_of(with_override({"few_shot": {"from": dataset}}))
    assert f"benchmarks.{bench}.few_shot needs a prompt template" in msg
    assert "empty stop string" in errors_of(with_override({"stop": [""]}))
    assert f"generation.benchmarks.{bench}.top_p" in errors_of(with_override({"top_p": 2}))
    # a valid override: only that benchmark's effective settings change
    cfg = load_config(with_override({"n_samples": 4, "temperature": 0.6, "stop": ["\n\n"]}))
    eff = cfg.generation.for_benchmark(bench)
    assert (eff.n_samples, eff.temperature, eff.stop) == (4, 0.6, ["\n\n"])
    others = [b for b in cfg.benchmarks if b != bench]
    assert all(cfg.generation.for_benchmark(b).n_samples == 1 for b in others)


def test_pass_at_k_needs_one_benchmark_with_k_samples():
    raw = default_config()
    bench = sorted(raw["benchmarks"])[0]
    raw["tables"]["metrics"] = ["accuracy", "pass@4"]
    assert "pass@4 needs at least 4 samples" in errors_of(raw)
    raw["generation"]["benchmarks"] = {bench: {"n_samples": 4, "temperature": 0.6}}
    load_config(raw)  # the other benchmarks leave pass@4 out (tables/compute.py)


# ------------------------------------------------------------------ few-shot examples


def test_few_shot_draw_excludes_the_benchmarks_problems(tmp_path):
    pool = arithmetic_rows(40, seed=3, prefix="pool")
    bench = [{"problem": "  " + r["problem"].upper() + "!! "} for r in pool[:30]]
    drawn = draw_examples(pool, [b["problem"] for b in bench], 5, seed=0)
    banned = {r["id"] for r in pool[:30]}
    # arithmetic_rows repeats problems: every pool row equal to a benchmark problem is out
    from mathrecipes.textnorm import normalize

    bench_norm = {normalize(b["problem"]) for b in bench}
    assert len(drawn) == 5 and not {r["id"] for r in drawn} & banned
    assert all(normalize(r["problem"]) not in bench_norm for r in drawn)
    assert drawn == draw_examples(list(reversed(pool)), [b["problem"] for b in bench], 5, 0)
    with pytest.raises(PromptFormatError, match="wants 50 examples"):
        draw_examples(pool, [b["problem"] for b in bench], 50, seed=0)

    # through eval_format: the template, its {examples}, and both mismatches
    pool_file, template = tmp_path / "pool.parquet", tmp_path / "t.txt"
    write_records(pool, pool_file)
    template.write_text("{examples}\n\nProblem: {problem}\nSolution:\n")
    settings = {"template": {"path": "t.txt"}, "few_shot": {"from": "pool", "n": 2, "seed": 1}}
    fmt = eval_format(
        settings, [b["problem"] for b in bench], prompt_file=str(template),
        few_shot_file=str(pool_file),
    )  # fmt: skip
    prompt = fmt.prompt(None, "What is 1 + 1?")
    assert prompt.count("Problem: ") == 3 and prompt.endswith("Problem: What is 1 + 1?\nSolution:")
    assert "\nSolution: " in prompt.split("\n\n")[0]
    with pytest.raises(PromptFormatError, match="has an \\{examples\\} placeholder but few_shot"):
        eval_format({"template": {"path": "t.txt"}}, [], prompt_file=str(template))
    (tmp_path / "plain.txt").write_text("Q: {problem}\nA:")
    with pytest.raises(PromptFormatError, match="no \\{examples\\} placeholder"):
        eval_format(settings, [], prompt_file=str(tmp_path / "plain.txt"),
                    few_shot_file=str(pool_file))  # fmt: skip


# ------------------------------------------------------------------ stop strings


@pytest.fixture(scope="module")
def random_student(tmp_path_factory) -> str:
    """A random tiny Llama with the scratch tokenizer, saved as a checkpoint folder."""
    from mathrecipes.training.model import build_scratch_model
    from mathrecipes.training.tokenizer import train_bpe_tokenizer

    texts = [f"What is {a} + {b}? The answer is {a + b}." for a in range(20) for b in range(20)]
    tok = train_bpe_tokenizer(texts, vocab_size=300)
    model = build_scratch_model(ModelSpec(**TINY_MODEL).model_dump(), tok, seed=0)
    path = tmp_path_factory.mktemp("random") / "student"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_stop_string_cuts_the_completion_where_the_model_produces_it(random_student, tmp_path):
    from mathrecipes.generation import generate_file

    bench = tmp_path / "bench.parquet"
    write_records(arithmetic_rows(4, seed=1, prefix="b"), bench)
    spec = GenerationSpec(max_new_tokens=16, batch_size=4).model_dump(mode="json")
    generate_file(random_student, str(bench), str(tmp_path / "free.parquet"), spec, 1, False)
    free = pq.read_table(tmp_path / "free.parquet").to_pylist()
    text = free[0]["completion"]
    assert free[0]["finish_reason"] == "length" and len(text) > 8
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    summary = generate_file(
        random_student, str(bench), str(tmp_path / "stop.parquet"), {**spec, "stop": [stop]},
        1, False,
    )  # fmt: skip
    cut = pq.read_table(tmp_path / "stop.parquet").to_pylist()
    assert cut[0]["completion"] == text[: text.find(stop)]
    assert cut[0]["finish_reason"] == "stop"
    assert cut[0]["n_completion_tokens"] < free[0]["n_completion_tokens"]
    for before, after in zip(free, cut, strict=True):
        if stop in before["completion"]:
            assert after["completion"] == before["completion"][: before["completion"].find(stop)]
            assert after["finish_reason"] == "stop"
        else:
            assert after == {**before, "seconds": after["seconds"]}
    assert summary["finish_reasons"]["stop"] >= 1


# ------------------------------------------------------------------ chat students


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> str:
    """A tiny Hub-layout model whose tokenizer has a chat template (bos and eos in it)."""
    from mathrecipes.training.model import build_scratch_model
    from mathrecipes.training.tokenizer import train_bpe_tokenizer

    texts = [f"What is {a} + {b}? The answer is {a + b}." for a in range(20) for b in range(20)]
    texts += [f"system: {SYSTEM}", "user: assistant: #### Step"]
    tok = train_bpe_tokenizer(texts, vocab_size=300)
    tok.chat_template = CHAT_TEMPLATE
    model = build_scratch_model(ModelSpec(**TINY_MODEL).model_dump(), tok, seed=0)
    path = tmp_path_factory.mktemp("chat") / "tiny-chat"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_chat_format_renders_prompt_and_target_through_the_template(chat_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_model)
    fmt = PromptFormat.of({"format": "chat", "system": SYSTEM})
    record = {"problem": " What is 2 + 3? ", "solution": "2 + 3 = 5\n#### 5", "answer": "5"}
    prompt = fmt.prompt(tok, record["problem"])
    assert prompt == f"<s>system: {SYSTEM}\nuser: What is 2 + 3?\nassistant: "
    assert fmt.target(tok, record) == "2 + 3 = 5\n#### 5</s>\n"
    bad = PromptFormat.of({"format": "chat"})
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}|{% endfor %}" + (
        "{% if add_generation_prompt %}GO{% endif %}"
    )
    with pytest.raises(PromptFormatError, match="not render the prompt .* as a prefix"):
        bad.target(tok, record)
    tok.chat_template = None
    with pytest.raises(PromptFormatError, match="tokenizer of my-model has no chat template"):
        bad.check_tokenizer(tok, "my-model")


def test_chat_student_is_trained_and_evaluated_through_the_same_template(chat_model, tmp_path):
    """Done means: a chat student fine-tuned through the real training code, generating and
    scoring through the real evaluation code, sees byte-identical prompts everywhere."""
    from transformers import AutoTokenizer

    from mathrecipes.generation import generate_file
    from mathrecipes.likelihood import score_file
    from mathrecipes.training import train_student
    from mathrecipes.training.data import encode_examples

    records = arithmetic_rows(40, seed=0, prefix="train")
    train, bench = tmp_path / "train.parquet", tmp_path / "bench.parquet"
    write_records(records, train)
    write_records(records[:3], bench)
    spec = student_spec(max_steps=3, init=chat_model)
    spec.update(prompt_format="chat", system_prompt=SYSTEM)
    s = StudentSpec.model_validate(spec)
    ckpt = tmp_path / "ckpt"
    train_student(str(train), str(ckpt), spec, seed=0, threads=1, progress=False)

    tok = AutoTokenizer.from_pretrained(ckpt)
    fmt = PromptFormat.of(s.prompt_settings())
    examples = encode_examples(tok, records[:3], 128, fmt)  # what training fed the model
    prompt = {"format": "chat", "system": SYSTEM}
    gen_spec = GenerationSpec(max_new_tokens=8, batch_size=4).model_dump(mode="json")
    out = tmp_path / "gen.parquet"
    generate_file(str(ckpt), str(bench), str(out), {**gen_spec, "prompt": prompt}, 1, False)
    generated = {r["problem_id"]: r for r in pq.read_table(out).to_pylist()}
    for i, r in enumerate(records[:3]):
        ids, n_prompt = examples.ids[i], examples.n_prompt[i]
        train_prompt = tok.decode(ids[:n_prompt], skip_special_tokens=False)
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": r["problem"]}]  # fmt: skip
        rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert train_prompt == generated[r["id"]]["prompt"] == rendered
        assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id  # one bos
        assert generated[r["id"]]["n_prompt_tokens"] == n_prompt
        assert tok.decode(ids[n_prompt:], skip_special_tokens=False).endswith("</s>\n")
        assert ids.count(tok.eos_token_id) == 1  # the template's eos, none appended

    lik_spec = {"batch_size": 4, "dtype": "auto", "attn_implementation": "auto", "prompt": prompt}
    summary = score_file(str(ckpt), str(bench), str(tmp_path / "lik.parquet"), lik_spec,
                         threads=1, progress=False)  # fmt: skip
    scored = pq.read_table(tmp_path / "lik.parquet").to_pylist()
    target_tokens = [len(ids) - n for ids, n in zip(examples.ids, examples.n_prompt, strict=True)]
    assert [r["tokens"] for r in sorted(scored, key=lambda r: r["problem_id"])] == target_tokens
    assert summary["scored"] == 3

    # a plain prompt for this chat student's checkpoint is a different text
    plain_out = tmp_path / "plain.parquet"
    generate_file(str(ckpt), str(bench), str(plain_out), gen_spec, 1, False)
    assert pq.read_table(plain_out).column("prompt")[0].as_py().startswith("Problem: ")
