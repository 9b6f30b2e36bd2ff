"""Tests of mathrecipes.grading.groups: a problem's sampled answers grouped by the grader's
equivalence (the ``answer_group`` column of a grade file, for maj@k).

The grade_file tests run the real grader (Math-Verify in worker processes); the state machine's
timeout budget, which no real pair of answers reaches reliably, is driven directly.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mathrecipes.grading import GradeSettings, Verdict, answer_groups, grade_file, groups
from mathrecipes.grading.pool import Pool
from mathrecipes.records import check_record, write_records

TOWER = "\\boxed{5^{5^{5^{5}}}}"  # hangs sympy: the item ends as timeout, with its extraction


def _files(tmp_path: Path, golds: dict[str, str], samples: dict[str, list[str]]):
    tmp_path.mkdir(parents=True, exist_ok=True)
    bench, gens = tmp_path / "bench.parquet", tmp_path / "gens.parquet"
    write_records(
        [
            check_record(
                {"id": pid, "source": "t", "problem": f"problem {pid}", "answer": gold},
                where=f"row {pid}",
            )
            for pid, gold in golds.items()
        ],
        bench,
    )
    rows = [(pid, k, c) for pid, cs in samples.items() for k, c in enumerate(cs)]
    table = {
        "problem_id": pa.array([r[0] for r in rows], pa.string()),
        "sample": pa.array([r[1] for r in rows], pa.int64()),
        "completion": pa.array([r[2] for r in rows], pa.string()),
        "finish_reason": pa.array(["stop"] * len(rows), pa.string()),
    }
    pq.write_table(pa.table(table), gens)
    return gens, bench


@pytest.fixture
def pools_started(monkeypatch) -> list[int]:
    """Counts the worker pools started (each Pool still starts its real workers)."""
    started: list[int] = []
    real_init = Pool.__init__

    def counting_init(self, settings, n_workers, *args):
        started.append(n_workers)
        real_init(self, settings, n_workers, *args)

    monkeypatch.setattr(Pool, "__init__", counting_init)
    return started


def _grade(tmp_path: Path, golds, samples, **kwargs):
    gens, bench = _files(tmp_path, golds, samples)
    out = tmp_path / "grades.parquet"
    settings = kwargs.pop("settings", {"timeout_s": 10, "workers": 2})
    summary = grade_file(gens, bench, out, settings, progress=False, **kwargs)
    table = pq.read_table(out)
    assert table.schema.field("answer_group").type == pa.int64()
    by_problem: dict[str, list[tuple[str, int | None]]] = {}
    for r in table.to_pylist():
        by_problem.setdefault(r["problem_id"], []).append((r["verdict"], r["answer_group"]))
    return by_problem, summary["answer_groups"]


def test_equivalent_answers_vote_together(tmp_path, pools_started):
    got, counts = _grade(
        tmp_path,
        {"a": "3", "b": "3"},
        {
            "a": [
                "\\boxed{1/2}",  # 0: a new group
                "\\boxed{3}",  # 1: correct: the gold's group
                "\\boxed{0.5}",  # 2: the grader: equal to 1/2
                "no answer here",  # 3: no vote
                "\\boxed{\\frac{1}{2}}",  # 4: equal to 1/2
                "\\boxed{2}",  # 5: a new group
                "The answer is 3.",  # 6: correct
                "\\boxed{2.0}",  # 7: equal to 2
                "\\boxed{x = 4}",  # 8: a new group
                "\\boxed{4}",  # 9: the grader accepts 4 for a gold x = 4 (and the reverse)
            ],
            # equal normalized strings: one group without any comparison
            "b": ["\\boxed{1\\,000}", "\\boxed{1000}", "\\boxed{1{,}000}"],
        },
    )
    assert got["a"] == [
        ("incorrect", 0),
        ("correct", 1),
        ("incorrect", 0),
        ("no_answer", None),
        ("incorrect", 0),
        ("incorrect", 2),
        ("correct", 1),
        ("incorrect", 2),
        ("incorrect", 3),
        ("incorrect", 3),
    ]
    assert got["b"] == [("incorrect", 0)] * 3
    # Only representatives are compared, the representative as gold first and the reverse only
    # when that fails, and a match ends the search: 0.5 (1), \frac12 (1), 2 (2: both ways with
    # 1/2), 2.0 (2 + 1), x = 4 (2 + 2), 4 (2 + 2 + 1); problem b none.
    assert counts == {
        "comparisons": 16,
        "timeouts": 0,
        "fallbacks": 0,
        "max_representatives": groups.MAX_REPRESENTATIVES,
        "max_timeouts": groups.MAX_TIMEOUTS,
    }
    assert pools_started == [0]  # grading and grouping share one pool, started on demand


def test_either_direction_of_an_asymmetric_comparison_is_enough(tmp_path):
    # A gold inequality accepts the interval, a gold interval rejects the inequality
    # (interval_inequality_asymmetry, on by default): equivalence asks for either direction.
    got, counts = _grade(
        tmp_path,
        {"interval_first": "3", "inequality_first": "3"},
        {
            "interval_first": ["\\boxed{[5, \\infty)}", "\\boxed{x \\geq 5}"],
            "inequality_first": ["\\boxed{x \\geq 5}", "\\boxed{[5, \\infty)}"],
        },
    )
    assert got["interval_first"] == [("incorrect", 0), ("incorrect", 0)]
    assert got["inequality_first"] == [("incorrect", 0), ("incorrect", 0)]
    # interval first: interval-as-gold fails, then inequality-as-gold holds; the other: one
    assert counts["comparisons"] == 3


def test_one_sample_per_problem_runs_no_comparison(tmp_path, pools_started):
    got, counts = _grade(
        tmp_path,
        {"a": "3", "b": "3", "c": "3", "d": "\\frac{"},
        {"a": ["\\boxed{3}"], "b": ["\\boxed{0.5}"], "c": ["nothing"], "d": ["\\boxed{1}"]},
    )
    assert got == {
        "a": [("correct", 0)],
        "b": [("incorrect", 0)],
        "c": [("no_answer", None)],
        "d": [("gold_unparseable", None)],
    }
    assert counts["comparisons"] == counts["fallbacks"] == counts["timeouts"] == 0
    # grading's own, one worker for the one item the parent cannot decide (the gold \frac{);
    # grouping starts no worker
    assert pools_started == [1]


def test_correct_samples_need_no_comparison_and_bad_golds_no_votes(tmp_path):
    got, counts = _grade(
        tmp_path,
        {"a": "\\frac{1}{2}", "bad": "\\frac{"},
        {
            "a": ["nothing", "\\boxed{0.5}", "\\boxed{1/2}", "\\boxed{7}"],
            "bad": ["\\boxed{1}", "\\boxed{1}"],
        },
    )
    assert got["a"] == [("no_answer", None), ("correct", 0), ("correct", 0), ("incorrect", 1)]
    assert got["bad"] == [("gold_unparseable", None)] * 2
    assert counts["comparisons"] == 0


def test_timed_out_answers_group_by_string_only(tmp_path):
    # The grader could not compare the tower with the gold: it votes, by string only (the same
    # tower twice is one group), and nothing is compared with it.
    got, counts = _grade(
        tmp_path,
        {"a": "5"},
        {"a": [TOWER, "\\boxed{7}", TOWER, "\\boxed{7.0}"]},
        settings={"timeout_s": 2, "workers": 1},
    )
    assert got["a"] == [("timeout", 0), ("incorrect", 1), ("timeout", 0), ("incorrect", 1)]
    assert counts["comparisons"] == 1  # 7.0 against 7
    assert counts["timeouts"] == counts["fallbacks"] == 0


def test_representative_cap_falls_back_to_string_equality(tmp_path):
    golds = {"a": "9"}
    samples = {"a": ["\\boxed{1}", "\\boxed{2}", "\\boxed{2.0}", "\\boxed{1.0}", "\\boxed{2.0}"]}
    got, counts = _grade(tmp_path, golds, samples, max_representatives=1)
    # 2.0 is compared with group 0's representative only: no match, a group of its own (a
    # fallback); 1.0 still finds group 0; the second 2.0 is string-equal to the first
    assert [g for _, g in got["a"]] == [0, 1, 2, 0, 2]
    assert counts["comparisons"] == 2 + 2 + 1
    assert counts["fallbacks"] == 1
    assert counts["max_representatives"] == 1

    # Without the cap 2.0 joins 2.
    again, counts = _grade(tmp_path / "uncapped", golds, samples)
    assert [g for _, g in again["a"]] == [0, 1, 1, 0, 1]
    assert counts["fallbacks"] == 0


def test_timeout_budget_per_problem():
    # No pair of real answers times out reliably: drive one problem's state machine directly.
    counts = groups.GroupCounts()
    p = groups._Problem([("a", True), ("b", True), ("c", True), ("d", True)], 8, counts)
    assert p.next_pair() == ("a", "b")  # a placed without comparison; b against a
    p.result("timeout")  # not equivalent, and the reverse is not tried
    assert p.next_pair() == ("a", "c")  # b opened group 1
    p.result("incorrect")
    assert p.next_pair() == ("c", "a")  # the reverse
    p.result("incorrect")
    assert p.next_pair() == ("b", "c")
    p.result("timeout")  # not equivalent; the problem's budget (2) is spent
    assert groups.MAX_TIMEOUTS == 2
    # c was compared with every group and opens group 2 (no fallback); d is compared with none
    # of the three: a fallback to string equality, group 3
    assert p.next_pair() is None
    assert p.label == [0, 1, 2, 3]
    assert (counts.comparisons, counts.timeouts, counts.fallbacks) == (4, 2, 1)


def test_answer_groups_without_a_pool_or_a_comparison():
    """Rows of one problem need not be adjacent; nothing here needs a worker."""
    v = [
        Verdict("b#0", "correct", "3", "boxed", 0.0),
        Verdict("a#0", "incorrect", "4", "boxed", 0.0),
        Verdict("b#1", "incorrect", "2", "boxed", 0.0),
        Verdict("a#1", "no_answer", None, "none", 0.0),
        Verdict("b#2", "incorrect", "2", "boxed", 0.0),
        Verdict("a#2", "correct", "3", "boxed", 0.0),
        Verdict("b#3", "correct", "3", "boxed", 0.0),
    ]
    got, counts = answer_groups(["b", "a", "b", "a", "b", "a", "b"], v, GradeSettings())
    assert got == [0, 0, 1, None, 1, 1, 0]
    assert counts == groups.GroupCounts()
    with pytest.raises(ValueError, match="max_representatives"):
        answer_groups(["a"], v[:1], GradeSettings(), max_representatives=-1)
    with pytest.raises(ValueError, match="2 problem ids for 1 verdicts"):
        answer_groups(["a", "b"], v[:1], GradeSettings())
