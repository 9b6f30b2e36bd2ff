import random

import pytest

from mathrecipes.builtin import arithmetic as A
from mathrecipes.teachers.builtin import BuiltinTeacher, Step, parse_problem, verify_step
from mathrecipes.textnorm import ngrams, words


def gen(**kw):
    args = dict(
        n=300, seed=1, split="train", style="answer_only", min_steps=2, max_steps=4, max_value=100
    )
    args.update(kw)
    return list(A.generate(**args))


def test_answers_are_correct_by_construction_and_in_range():
    for p in gen(n=500, max_steps=6):
        values = p.program.values()
        assert all(1 <= v < 100 for v in values), p.program
        assert A.sympy_answer(p.program) == int(p.answer)
        assert 2 <= len(p.program.ops) <= 6


def test_deterministic_and_prefix_stable():
    a = gen(n=50)
    b = gen(n=50)
    c = gen(n=80)
    assert [p.problem for p in a] == [p.problem for p in b]
    assert [p.problem for p in c[:50]] == [p.problem for p in a]
    assert [p.problem for p in gen(n=50, seed=2)] != [p.problem for p in a]


def test_styles_share_problems_and_differ_in_solution():
    qa = gen(n=20, style="answer_only")
    prose = gen(n=20, style="prose")
    assert [p.problem for p in qa] == [p.problem for p in prose]
    assert qa[0].solution == f"#### {qa[0].answer}"
    assert prose[0].solution.endswith(f"The answer is {prose[0].answer}.")
    assert "####" not in prose[0].solution


def test_difficulty_parameters():
    hard = gen(n=100, min_steps=5, max_steps=6, split="test")
    assert {len(p.program.ops) for p in hard} <= {5, 6}
    big = gen(n=100, max_value=1000)
    assert max(int(v) for p in big for v in p.program.values()) >= 100


def test_train_and_test_are_disjoint_by_construction():
    train = gen(n=3000)
    test = gen(n=300, split="test", seed=9)
    assert {A.program_split(p.program) for p in train} == {"train"}
    assert {A.program_split(p.program) for p in test} == {"test"}
    assert not {p.program.key() for p in train} & {p.program.key() for p in test}
    assert {A.pair_split(p.name, p.item) for p in test} == {"test"}
    assert {A.pair_split(p.name, p.item) for p in train} == {"train"}


def test_every_13_word_window_names_the_person_and_item():
    assert A.max_gap("name") < A.NGRAM_GUARD
    assert A.max_gap("item") < A.NGRAM_GUARD
    for p in gen(n=400, max_steps=6):
        for g in ngrams(words(p.problem), A.NGRAM_GUARD):
            assert p.name.lower() in g and p.item in g, (p.problem, g)


def test_no_13gram_shared_between_train_and_test():
    train = gen(n=4000)
    test = gen(n=400, split="test", seed=5)
    test_grams = {g for p in test for g in ngrams(words(p.problem), 13)}
    assert not any(g in test_grams for p in train for g in ngrams(words(p.problem), 13))
    # ... while 8-grams are shared (so the 13-gram check above is not vacuous).
    test8 = {g for p in test for g in ngrams(words(p.problem), 8)}
    assert any(g in test8 for p in train for g in ngrams(words(p.problem), 8))


def test_impossible_request_fails_clearly():
    with pytest.raises(ValueError, match="split"):
        gen(split="validation")


def test_teacher_recovers_every_program_from_text():
    teacher = BuiltinTeacher()
    for p in gen(n=400, max_steps=6):
        start, ops = parse_problem(p.problem)
        assert (start, tuple(ops)) == (p.program.start, p.program.ops)
        out = teacher.solve(p.problem, key=str(p.index))
        assert out.ok and out.answer == p.answer
        assert out.solution == A.structured_solution(p.program)
        lines = out.solution.splitlines()
        assert len(lines) == len(p.program.ops) + 1
        assert lines[-1] == f"\\boxed{{{p.answer}}}"


def test_teacher_rejects_text_it_cannot_parse():
    out = BuiltinTeacher().solve("Ava has 3 apples. Then something odd happens. How many?", key="x")
    assert not out.ok and out.reason.startswith("unparsed")


def test_teacher_slips_are_caught_by_step_verification():
    teacher = BuiltinTeacher(error_rate=0.5, seed=3)
    problems = gen(n=200)
    outs = [teacher.solve(p.problem, key=str(p.index)) for p in problems]
    bad = [o for o in outs if not o.ok]
    assert 0 < len(bad) < len(outs)
    assert all(o.reason.split(":")[0] in ("step_failed", "invalid_step") for o in bad)
    good = [(o, p) for o, p in zip(outs, problems, strict=True) if o.ok]
    assert all(o.answer == p.answer for o, p in good)
    again = [teacher.solve(p.problem, key=str(p.index)).ok for p in problems]
    assert again == [o.ok for o in outs]


def test_verify_step():
    assert verify_step(Step(12, "div", 4, 3))
    assert not verify_step(Step(12, "div", 5, 2))
    assert not verify_step(Step(7, "mul", 3, 22))
    assert verify_step(Step(7, "sub", 3, 4))


def test_sample_program_respects_bounds():
    rng = random.Random(0)
    for _ in range(200):
        prog = A.sample_program(rng, 4, 50)
        if prog is not None:
            assert all(1 <= v < 50 for v in prog.values())
