"""Tests of mathrecipes.grading: extraction, verdicts, hard timeouts, the pool, grade_file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections import deque
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mathrecipes
from mathrecipes.grading import (
    GRADER_NAME,
    VERDICTS,
    GradeItem,
    GradeSettings,
    Verdict,
    extract_answer,
    grade_file,
    grade_items,
    grader_version,
    settings,
    summarize,
)
from mathrecipes.grading import pool as pool_module
from mathrecipes.grading.pool import Pool
from mathrecipes.records import check_record, write_records

SRC_DIR = Path(settings.__file__).resolve().parents[2]
TOWER_ANSWER = "5^{5^{5^{5}}}"  # hangs sympy inside verify (Math-Verify #65)
TOWER = f"\\boxed{{{TOWER_ANSWER}}}"


def _grading_children() -> list[int]:
    """PIDs of this process's children that run a grading worker or that have exited without
    being reaped (zombies, whose command line is gone)."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if ppid == me and (state == "Z" or b"mathrecipes.grading" in cmdline):
            found.append(int(entry.name))
    return sorted(found)


def _grade_in(pool: Pool, pairs: list[tuple[str, str]]) -> list[tuple[str, str | None]]:
    """Our grader's ``(verdict, how)`` of (gold, extracted answer) pairs, graded in ``pool``."""
    found: dict[int, tuple[str, str | None]] = {}
    pool.run(
        deque((i, True, False) for i in range(len(pairs))),
        prepare=lambda task: (task[0], *pairs[task[0]], True, None),
        on_ours=lambda i, verdict, how, gold_ok, seconds: found.setdefault(i, (verdict, how)),
        on_plain=lambda *result: None,
        gold_known_ok=lambda gold: False,
    )
    return [found[i] for i in range(len(pairs))]


# ---------------------------------------------------------------------------------------------
# extract_answer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("So x = 1/2.\n\\boxed{\\frac{1}{2}}", ("\\frac{1}{2}", "boxed")),
        ("\\boxed{\\frac{\\frac{1}{2}}{3}}", ("\\frac{\\frac{1}{2}}{3}", "boxed")),
        ("\\boxed{\\{1,2\\}}", ("\\{1,2\\}", "boxed")),
        ("Hence $\\boxed 5$.", ("5", "boxed")),
        ("Hence \\boxed 5.", ("5", "boxed")),
        ("\\boxed {12}", ("12", "boxed")),
        ("\\fbox{7}", ("7", "boxed")),
        ("\\boxed{840}. Again: \\boxed{840}", ("840", "boxed")),
        ("first \\boxed{3} then \\boxed{2}", ("2", "boxed")),
        ("\\[\\boxed{42}\\]", ("42", "boxed")),
        ("\\boxed{$7$}", ("7", "boxed")),
        ("\\boxed{3} and later \\boxed{}", ("3", "boxed")),
        ("cut off \\boxed{5", (None, "none")),
        ("#### 1,234", ("1,234", "gsm8k")),
        ("3 + 4 = 7\n#### 7\n", ("7", "gsm8k")),
        ("#### $1,234", ("1,234", "gsm8k")),
        ("The answer is 7.", ("7", "answer_is")),
        ("The answer is: $\\frac{1}{2}$.", ("\\frac{1}{2}", "answer_is")),
        ("The answer is **73**.", ("73", "answer_is")),
        ("So the answer is $5$ dollars.", ("5", "answer_is")),
        ("ANSWER: 12", ("12", "answer_is")),
        (
            "Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.",
            ("\\frac{3}{4}", "final_answer"),
        ),
        ("The final answer is 9", ("9", "final_answer")),
        ("Final Answer:\n$$42$$", ("42", "final_answer")),
        ("The answer is 3. Wait, no. The answer is 4.", ("4", "answer_is")),
        ("The answer is 3.\n\\boxed{4}", ("4", "boxed")),  # boxed outranks phrases
        ("#### 3\nThe answer is 4", ("3", "gsm8k")),  # as does ####
        ("<think>maybe \\boxed{1}</think>The answer is: 2", ("2", "answer_is")),
        ("<think>\\boxed{1}</think><think>x</think> \\boxed{2}", ("2", "boxed")),
        ("reasoning without opening tag</think>\n\\boxed{9}", ("9", "boxed")),
        ("<think>long reasoning \\boxed{1} that never", (None, "unclosed_think")),
        ("\\boxed{2} <think>again", (None, "unclosed_think")),
        ("3 + 4 = 7, so 7 it is", (None, "none")),  # no last-number fallback
        ("", (None, "none")),
    ],
)
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_extract_answer_searches_only_the_completion():
    # A recited few-shot exemplar earlier in the completion loses to the last answer.
    completion = "Q: 1+1?\nThe answer is 2.\n\nQ: 2+3?\nThe answer is 5."
    assert extract_answer(completion) == ("5", "answer_is")


# ---------------------------------------------------------------------------------------------
# Settings, versions, summaries
# ---------------------------------------------------------------------------------------------


def test_settings_from_dict_ignores_none_and_coerces():
    s = GradeSettings.from_dict({"timeout_s": None, "workers": 3, "float_rounding": 4})
    assert s == GradeSettings(timeout_s=5.0, workers=3, float_rounding=4, numeric_precision=15)
    assert isinstance(GradeSettings.from_dict({"timeout_s": 2}).timeout_s, float)


def test_settings_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="timeout_seconds"):
        GradeSettings.from_dict({"timeout_seconds": 3})


@pytest.mark.parametrize(
    "kwargs", [{"workers": 0}, {"timeout_s": 0}, {"timeout_s": "5"}, {"workers": 1.5}]
)
def test_settings_reject_bad_values(kwargs):
    with pytest.raises(ValueError):
        GradeSettings(**kwargs)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"percent": "lenient"}, "percent"),
        ({"workers": "2"}, "workers"),
        ({"rel_tol": -1}, "rel_tol"),
    ],
)
def test_settings_from_dict_errors_name_the_key(settings, key):
    with pytest.raises(ValueError, match=f"grading setting {key}: "):
        GradeSettings.from_dict(settings)


def test_settings_load_without_math_verify_or_the_pool():
    # the config imports the settings: they must not drag in the grader's machinery
    code = (
        "import sys, mathrecipes.config, mathrecipes.grading.settings\n"
        "heavy = {'math_verify', 'sympy', 'mathrecipes.grading.pool', 'mathrecipes.grading.engine'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_grader_version_names_dependencies_and_source_hash():
    version = grader_version()
    from importlib.metadata import version as dist_version

    import math_verify  # noqa: F401  (must be installed for the version to be meaningful)

    assert version.startswith(mathrecipes.__version__ + "+")
    assert f"math-verify-{dist_version('math-verify')}" in version
    assert version.endswith(f"+grading-{settings.source_digest()}")


def test_grader_version_covers_every_module_of_the_grader(tmp_path):
    copy = tmp_path / "mathrecipes"
    shutil.copytree(SRC_DIR / "mathrecipes", copy, ignore=shutil.ignore_patterns("__pycache__"))
    digest = settings.source_digest(copy)
    assert digest == settings.source_digest()
    for name in ("grading/pool.py", "grading/audit.py", "grading/groups.py", "latex.py"):
        with open(copy / name, "a") as fh:
            fh.write("\n# an edit\n")
        edited = settings.source_digest(copy)
        assert edited != digest, name
        digest = edited


def test_summarize():
    s = summarize(["correct", "correct", "incorrect", "gold_unparseable", "no_answer", "timeout"])
    assert s == {
        "n": 6,
        "correct": 2,
        "incorrect": 1,
        "no_answer": 1,
        "timeout": 1,
        "gold_unparseable": 1,
        "accuracy": 2 / 5,
    }
    assert summarize([])["accuracy"] is None
    assert summarize(["gold_unparseable"])["accuracy"] is None
    with pytest.raises(ValueError, match="maybe"):
        summarize(["maybe"])


def test_grade_items_empty_starts_nothing():
    assert grade_items([], GradeSettings()) == []


# ---------------------------------------------------------------------------------------------
# Verdicts (one pool for all cases)
# ---------------------------------------------------------------------------------------------

# case id: (gold, completion, verdict, rule)
CASES = {
    "int": ("42", "\\boxed{42}", "correct", "boxed"),
    "int_wrong": ("42", "\\boxed{41}", "incorrect", "boxed"),
    "leading_zeros": ("016", "So \\boxed{16}.", "correct", "boxed"),
    "frac_vs_decimal": ("\\frac{1}{2}", "\\boxed{0.5}", "correct", "boxed"),
    "thousands_pred": ("1000", "\\boxed{1,000}", "correct", "boxed"),
    "thousands_gold": ("1,000", "\\boxed{1000}", "correct", "boxed"),
    "thousands_space": ("1000", "\\boxed{1 000}", "correct", "boxed"),
    "thousands_thin_space": ("1000", "\\boxed{1\\,000}", "correct", "boxed"),
    "gsm8k": ("1234", "3 + 4 = 7\n#### 1,234", "correct", "gsm8k"),
    "minerva": (
        "\\frac{3}{4}",
        "Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.",
        "correct",
        "final_answer",
    ),
    "unit_words": ("18", "The answer is 18 dollars.", "correct", "answer_is"),
    "percent_words": ("0.28", "The answer is 28 percent.", "correct", "answer_is"),
    "text_gold_bare_pred": ("\\text{odd}", "\\boxed{odd}", "correct", "boxed"),
    # sympy reads bare "Evelyn" as E*e*l*n*v*y (E is Euler's number): the text rule rescues it
    "text_bare_case": ("Evelyn", "The answer is evelyn.", "correct", "answer_is+text"),
    "text_bare_wrong": ("Evelyn", "The answer is Evelina.", "incorrect", "answer_is"),
    "text_gold_text_pred": ("\\text{odd}", "\\boxed{\\text{Odd}}", "correct", "boxed"),
    "text_gold_wrong": ("\\text{odd}", "\\boxed{\\text{even}}", "incorrect", "boxed"),
    "sqrt": ("3\\sqrt{13}", "\\boxed{\\sqrt{117}}", "correct", "boxed"),
    "percent": ("28\\%", "\\boxed{28\\%}", "correct", "boxed"),
    "interval_ends": ("[0,1)", "\\boxed{(0,1)}", "incorrect", "boxed"),
    "float_tolerance": ("\\frac{1}{12}", "\\boxed{0.0833333}", "correct", "boxed"),
    "last_box_wins": ("2", "\\boxed{3} no wait \\boxed{2}", "correct", "boxed"),
    "last_box_wins_2": ("3", "\\boxed{3} no wait \\boxed{2}", "incorrect", "boxed"),
    "think_stripped": ("2", "<think>\\boxed{1}</think>The answer is 2", "correct", "answer_is"),
    "unclosed_think": ("2", "<think>so \\boxed{2}", "no_answer", "unclosed_think"),
    "no_anchor": ("7", "3 + 4 = 7", "no_answer", "none"),
    "gold_empty": ("", "\\boxed{1}", "gold_unparseable", "boxed"),
    "gold_broken_frac": ("\\frac{", "\\boxed{1}", "gold_unparseable", "boxed"),
    "gold_symbols": ("@@", "\\boxed{1}", "gold_unparseable", "boxed"),
    # no answer and an unusable gold: still excluded, so accuracy denominators agree
    "gold_broken_no_answer": ("\\frac{", "nothing here", "gold_unparseable", "none"),
    "gold_fresh_no_answer": ("\\text{(C)}", "nothing here", "no_answer", "none"),
}


@pytest.fixture(scope="module")
def graded() -> dict[str, Verdict]:
    keys = list(CASES)
    items = [GradeItem(k, CASES[k][0], CASES[k][1]) for k in keys]
    verdicts = grade_items(items, GradeSettings(timeout_s=10, workers=2))
    assert [v.key for v in verdicts] == keys  # input order
    return {v.key: v for v in verdicts}


@pytest.mark.parametrize("case", list(CASES))
def test_verdict(graded, case):
    gold, completion, verdict, rule = CASES[case]
    got = graded[case]
    assert (got.verdict, got.rule) == (verdict, rule), got
    assert got.extracted == extract_answer(completion)[0]
    assert got.verdict in VERDICTS
    assert got.seconds >= 0.0


def test_identical_pairs_are_graded_once_and_agree(capsys):
    items = [GradeItem(str(i), "7", "\\boxed{7}") for i in range(6)]
    items += [GradeItem("x", "7", "\\boxed{8}")]
    verdicts = grade_items(items, GradeSettings(workers=1), progress=True)
    assert "grading" in capsys.readouterr().err  # the tqdm bar
    assert [v.verdict for v in verdicts] == ["correct"] * 6 + ["incorrect"]
    assert [v.key for v in verdicts] == [it.key for it in items]
    assert sum(v.seconds == 0.0 for v in verdicts[:6]) == 5  # memo hits did no work


# ---------------------------------------------------------------------------------------------
# Hard timeouts, crashes, errors, interrupts
# ---------------------------------------------------------------------------------------------


def test_power_tower_times_out_and_the_rest_is_graded():
    items = [
        GradeItem("before", "3", "\\boxed{3}"),
        GradeItem("tower", "5", TOWER),
        GradeItem("after1", "4", "\\boxed{4}"),
        GradeItem("after2", "\\frac{1}{2}", "\\boxed{0.5}"),
        GradeItem("after3", "4", "\\boxed{5}"),
    ]
    # One worker: everything after the tower needs the respawned worker.
    verdicts = grade_items(items, GradeSettings(timeout_s=2, workers=1))
    by_key = {v.key: v for v in verdicts}
    assert by_key["tower"].verdict == "timeout"
    assert by_key["tower"].rule == "boxed"  # the gold parsed; the comparison hung
    assert by_key["tower"].seconds >= 2.0  # it had its whole time limit
    assert [by_key[k].verdict for k in ("before", "after1", "after2", "after3")] == [
        "correct",
        "correct",
        "correct",
        "incorrect",
    ]
    assert _grading_children() == []  # the killed worker was reaped, the others stopped


def test_a_timed_out_worker_is_killed_and_the_pool_grades_on():
    with Pool(GradeSettings(timeout_s=2, workers=1), 1) as pool:
        first = pool.workers[0].proc
        assert _grade_in(pool, [("3", "3"), ("5", "5")]) == [("correct", None)] * 2
        # A second run in the same worker: its gold "5" is cached there (not reported again),
        # so the timeout is still the comparison's, not the gold's.
        assert _grade_in(pool, [("5", TOWER_ANSWER), ("4", "4")]) == [
            ("timeout", None),
            ("correct", None),
        ]
        assert first.returncode == -signal.SIGKILL  # killed, and reaped: its status was collected
        second = pool.workers[0].proc
        assert second.pid != first.pid and second.poll() is None
        assert _grading_children() == [second.pid]  # no zombie, no stray worker
        # The pool outlives the run: its fresh worker grades the next batch.
        assert _grade_in(pool, [("\\frac{1}{2}", "0.5")]) == [("correct", None)]
        assert pool.workers[0].proc is second
    assert second.returncode is not None
    assert _grading_children() == []


def test_a_worker_that_dies_is_reaped_and_replaced(monkeypatch):
    monkeypatch.setattr(pool_module, "BOOTSTRAP", FAULTY_BOOTSTRAP)
    with Pool(GradeSettings(timeout_s=10, workers=1), 1) as pool:
        first = pool.workers[0].proc
        assert _grade_in(pool, [("5", "CRASHME"), ("5", "5")]) == [
            ("timeout", "worker_crash"),
            ("correct", None),
        ]
        assert first.returncode == 7  # it exited on its own (os._exit(7)) and was reaped
        assert _grading_children() == [pool.workers[0].proc.pid]
    assert _grading_children() == []


# Worker bootstrap with injected faults, keyed on the text that math_verify.parse receives.
FAULTY_BOOTSTRAP = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, sys.argv[1])
    import math_verify
    _parse = math_verify.parse
    def parse(pred, *args, **kwargs):
        if "RAISEME" in pred:
            raise ZeroDivisionError("injected")
        if "HANGME" in pred:
            time.sleep(3600)
        if "CRASHME" in pred:
            os._exit(7)
        return _parse(pred, *args, **kwargs)
    math_verify.parse = parse
    from mathrecipes.grading.engine import worker_main
    worker_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    """
)


def test_crashes_errors_and_gold_timeouts(monkeypatch):
    monkeypatch.setattr(pool_module, "BOOTSTRAP", FAULTY_BOOTSTRAP)
    items = [
        GradeItem("crash", "5", "\\boxed{CRASHME}"),
        GradeItem("ok1", "5", "\\boxed{5}"),
        GradeItem("pred_error", "5", "\\boxed{RAISEME}"),
        GradeItem("gold_error", "RAISEME", "\\boxed{5}"),
        GradeItem("pred_hang", "6", "\\boxed{HANGME}"),
        GradeItem("gold_hang", "HANGME", "\\boxed{5}"),
        GradeItem("gold_hang_again", "HANGME", "\\boxed{6}"),
        GradeItem("gold_hang_no_answer", "HANGME", "no answer"),
        GradeItem("ok2", "7", "\\boxed{8}"),
    ]
    verdicts = grade_items(items, GradeSettings(timeout_s=1.5, workers=2))
    got = {v.key: (v.verdict, v.rule) for v in verdicts}
    assert got == {
        "crash": ("timeout", "worker_crash"),
        "ok1": ("correct", "boxed"),
        "pred_error": ("incorrect", "error:ZeroDivisionError"),
        "gold_error": ("gold_unparseable", "error:ZeroDivisionError"),
        "pred_hang": ("timeout", "boxed"),
        "gold_hang": ("gold_unparseable", "gold_timeout"),
        "gold_hang_again": ("gold_unparseable", "gold_timeout"),
        "gold_hang_no_answer": ("gold_unparseable", "gold_timeout"),
        "ok2": ("incorrect", "boxed"),  # graded after three workers were killed or died
    }
    assert _grading_children() == []


def test_keyboard_interrupt_stops_all_workers(monkeypatch):
    # A worker that sleeps for an hour on HANGME (not the power tower, whose cost depends on the
    # machine's memory): the interrupt always comes while it runs.
    monkeypatch.setattr(pool_module, "BOOTSTRAP", FAULTY_BOOTSTRAP)
    items = [GradeItem("hang", "5", "\\boxed{HANGME}")] + [
        GradeItem(str(i), str(i), f"\\boxed{{{i}}}") for i in range(5)
    ]
    # Python keeps SIGINT ignored when it starts ignored (a background job of a shell without
    # job control): give it the usual KeyboardInterrupt handler for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(2.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        verdicts = grade_items(items, GradeSettings(timeout_s=60, workers=2))
    except KeyboardInterrupt:
        pass
    else:
        pytest.fail(f"grade_items returned before the interrupt: {verdicts}")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert _grading_children() == []  # the hung worker too: killed and reaped


def test_worker_that_cannot_start_is_an_error(monkeypatch):
    monkeypatch.setattr(pool_module, "BOOTSTRAP", "import sys; sys.exit(3)")
    with pytest.raises(RuntimeError, match="code 3 during start-up"):
        # (an integer gold against an integer answer would be decided without a worker)
        grade_items([GradeItem("a", "\\frac{1}{2}", "\\boxed{0.5}")], GradeSettings(workers=2))
    assert _grading_children() == []


def test_pool_works_from_a_script_without_main_guard(tmp_path):
    # Snakemake runs `script:` files as plain `python file.py` with top-level code;
    # multiprocessing spawn/forkserver children would re-execute that code.
    script = tmp_path / "snakemake_like.py"
    script.write_text(
        "from mathrecipes.grading import GradeItem, GradeSettings, grade_items\n"
        "items = [GradeItem('a', '2', '\\\\boxed{2}'), GradeItem('b', '3', '\\\\boxed{4}')]\n"
        "print([v.verdict for v in grade_items(items, GradeSettings(workers=2))])\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['correct', 'incorrect']"


# ---------------------------------------------------------------------------------------------
# grade_file
# ---------------------------------------------------------------------------------------------


def _write_benchmark(path: Path, answers: dict[str, str]) -> None:
    rows = [
        check_record(
            {"id": pid, "source": "t", "problem": f"problem {pid}", "answer": ans},
            where=f"row {pid}",
        )
        for pid, ans in answers.items()
    ]
    write_records(rows, path)


def _write_generations(path: Path, rows: list[tuple[str, int, str]], finish: bool = True) -> None:
    cols = {
        "problem_id": pa.array([r[0] for r in rows], pa.string()),
        "sample": pa.array([r[1] for r in rows], pa.int64()),
        "prompt": pa.array(["prompt"] * len(rows), pa.string()),
        "completion": pa.array([r[2] for r in rows], pa.string()),
        "n_completion_tokens": pa.array([len(r[2]) for r in rows], pa.int64()),
    }
    if finish:
        cols["finish_reason"] = pa.array(
            ["length" if "never" in r[2] else "stop" for r in rows], pa.string()
        )
    pq.write_table(pa.table(cols), path)


GEN_ROWS = [
    ("p2", 1, "\\boxed{0.5}"),
    ("p1", 10, "#### 7"),
    ("p1", 2, "The answer is 8."),
    ("p3", 0, "\\boxed{1}"),
    ("p1", 0, "\\boxed{7}"),
    ("p2", 0, "<think>this never ends"),
    ("p1", 1, "3 + 4 = 7"),
]
EXPECTED = [  # sorted by (problem_id, sample), samples numerically
    ("p1", 0, "7", "7", "correct", "boxed", "stop"),
    ("p1", 1, "7", None, "no_answer", "none", "stop"),
    ("p1", 2, "7", "8", "incorrect", "answer_is", "stop"),
    ("p1", 10, "7", "7", "correct", "gsm8k", "stop"),
    ("p2", 0, "\\frac{1}{2}", None, "no_answer", "unclosed_think", "length"),
    ("p2", 1, "\\frac{1}{2}", "0.5", "correct", "boxed", "stop"),
    ("p3", 0, "\\frac{", "1", "gold_unparseable", "boxed", "stop"),
]


def test_grade_file_end_to_end(tmp_path):
    bench = tmp_path / "bench.parquet"
    gens = tmp_path / "gens.parquet"
    _write_benchmark(bench, {"p1": "7", "p2": "\\frac{1}{2}", "p3": "\\frac{", "p4": "9"})
    _write_generations(gens, GEN_ROWS)
    out = tmp_path / "out" / "grades.parquet"

    summary = grade_file(gens, bench, out, {"timeout_s": 10, "workers": 2}, progress=False)

    table = pq.read_table(out)
    assert table.column_names == [
        "problem_id",
        "sample",
        "gold",
        "extracted",
        "verdict",
        "rule",
        "grader",
        "grader_version",
        "policy",
        "seconds",
        "answer_group",
        "finish_reason",
    ]
    assert table.schema.field("sample").type == pa.int64()
    assert table.schema.field("seconds").type == pa.float64()
    assert table.schema.field("answer_group").type == pa.int64()
    rows = table.to_pylist()
    got = [
        (
            r["problem_id"],
            r["sample"],
            r["gold"],
            r["extracted"],
            r["verdict"],
            r["rule"],
            r["finish_reason"],
        )
        for r in rows
    ]
    assert got == EXPECTED
    # p1: the correct samples vote for the gold's group, 8 for another; no answer, no vote
    assert [r["answer_group"] for r in rows] == [0, None, 1, 0, None, 0, None]
    assert {r["grader"] for r in rows} == {GRADER_NAME}
    assert {r["grader_version"] for r in rows} == {grader_version()}
    assert {r["policy"] for r in rows} == {GradeSettings().policy_json()}
    assert all(r["seconds"] >= 0 for r in rows)
    assert not list(out.parent.glob("*.tmp"))  # atomic write left nothing behind

    assert summary == {
        "n": 7,
        "correct": 3,
        "incorrect": 1,
        "no_answer": 2,
        "timeout": 0,
        "gold_unparseable": 1,
        "accuracy": 3 / 6,
        "no_answer_rate": 2 / 6,
        "truncated": 0,
        "grader": GRADER_NAME,
        "grader_version": grader_version(),
        "policy": GradeSettings().policy(),
        "answer_groups": {
            "comparisons": 0,
            "timeouts": 0,
            "fallbacks": 0,
            "max_representatives": 8,
            "max_timeouts": 2,
        },
    }

    # Everything but `seconds` is deterministic (same rows, same bytes of verdicts).
    out2 = tmp_path / "again.parquet"
    grade_file(gens, bench, out2, GradeSettings(workers=1), progress=False)
    again = pq.read_table(out2)
    assert again.drop_columns(["seconds"]).equals(table.drop_columns(["seconds"]))


def test_grade_file_without_finish_reason(tmp_path):
    bench = tmp_path / "bench.parquet"
    gens = tmp_path / "gens.parquet"
    _write_benchmark(bench, {"p1": "7"})
    _write_generations(gens, [("p1", 0, "no anchor at all")], finish=False)
    summary = grade_file(gens, bench, tmp_path / "o.parquet", GradeSettings(), progress=False)
    table = pq.read_table(tmp_path / "o.parquet")
    assert "finish_reason" not in table.column_names
    assert table.column("verdict").to_pylist() == ["no_answer"]
    assert summary["no_answer"] == 1 and summary["accuracy"] == 0.0


def test_grade_file_unknown_problem_id(tmp_path):
    bench = tmp_path / "bench.parquet"
    gens = tmp_path / "gens.parquet"
    _write_benchmark(bench, {"p1": "7"})
    _write_generations(gens, [("p1", 0, "\\boxed{7}"), ("ghost-17", 0, "\\boxed{7}")])
    with pytest.raises(ValueError, match=r"gens\.parquet.*'ghost-17'"):
        grade_file(gens, bench, tmp_path / "o.parquet", {}, progress=False)
    assert not (tmp_path / "o.parquet").exists()


def test_grade_file_duplicate_rows(tmp_path):
    bench = tmp_path / "bench.parquet"
    gens = tmp_path / "gens.parquet"
    _write_benchmark(bench, {"p1": "7"})
    _write_generations(gens, [("p1", 0, "\\boxed{7}"), ("p1", 0, "\\boxed{8}")])
    with pytest.raises(ValueError, match="duplicate"):
        grade_file(gens, bench, tmp_path / "o.parquet", {}, progress=False)


def test_grade_file_rejects_unknown_setting(tmp_path):
    with pytest.raises(ValueError, match="wokers"):
        grade_file(tmp_path / "g", tmp_path / "b", tmp_path / "o", {"wokers": 2}, progress=False)


def test_grade_file_with_a_pathological_answer_completes(tmp_path):
    """A power tower in a generation file ends as 'timeout'; the job writes every other verdict."""
    bench = tmp_path / "bench.parquet"
    gens = tmp_path / "gens.parquet"
    _write_benchmark(bench, {"a": "5", "b": "12", "c": "3"})
    _write_generations(
        gens, [("a", 0, TOWER), ("b", 0, "7 + 5 = 12\n\\boxed{12}"), ("c", 0, "#### 4")]
    )
    out = tmp_path / "grades.parquet"
    summary = grade_file(gens, bench, out, {"timeout_s": 2, "workers": 1}, progress=False)
    verdicts = {r["problem_id"]: r["verdict"] for r in pq.read_table(out).to_pylist()}
    assert verdicts == {"a": "timeout", "b": "correct", "c": "incorrect"}
    assert summary["timeout"] == 1 and summary["n"] == 3
