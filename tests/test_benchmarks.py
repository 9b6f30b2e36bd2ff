"""The ten benchmarks (docs/benchmarks.md): paper.yaml's Hub pins, the OlympiadBench and ASDiv
adapters on the rows that need them, and the local twin (configs/local-benchmarks.yaml) on the
real files under the shared data folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from mathrecipes.config import load_config
from mathrecipes.grading import GradeItem, GradeSettings, grade_items
from mathrecipes.ingest import ingest
from mathrecipes.records import read_records
from mathrecipes.sources.formats import FORMATS, get_format

REPO = Path(__file__).resolve().parents[1]
OB_ANSWERS = Path(__file__).parent / "data" / "olympiadbench" / "final_answers.jsonl"
TEN = [
    "math500", "gsm8k", "aime24", "aime25", "amc23", "minerva", "olympiadbench", "svamp",
    "asdiv", "college_math",
]  # fmt: skip
# rows of each local file, read in full (the twin's `limit`s removed)
LOCAL_ROWS = {
    "math500": 500, "gsm8k": 1319, "aime24": 30, "amc23": 40, "minerva": 272, "svamp": 1000,
    "asdiv": 2215, "college_math": 2818,
}  # fmt: skip
STRAY_DOLLAR = re.compile(r"(?<!\\)\$")


def _config(name: str):
    return load_config(yaml.safe_load((REPO / "configs" / name).read_text()))


def test_paper_declares_the_ten_benchmarks_from_the_hub():
    cfg = _config("paper.yaml")
    assert list(cfg.benchmarks) == TEN
    for name, spec in cfg.benchmarks.items():
        assert spec.source == "hf" and spec.format in FORMATS, name
        assert spec.revision is None or re.fullmatch(r"[0-9a-f]{40}", spec.revision), name
    ob = cfg.benchmarks["olympiadbench"]
    assert (ob.path, ob.name) == ("Hothan/OlympiadBench", "OE_TO_maths_en_COMP")
    assert cfg.benchmarks["asdiv"].on_bad_row == "quarantine"  # rows with several answers


def test_olympiadbench_multi_part_answer_is_one_gradable_answer():
    """``["$69$,$84$"]`` (id 1664) is the answer ``69, 84`` that ``\\boxed{69, 84}`` matches."""
    row = {
        "id": 1664,
        "question": "Find all n.",
        "solution": ["..."],
        "final_answer": ["$69$,$84$"],
        "is_multiple_answer": True,
        "unit": None,
        "answer_type": "Numerical",
        "error": None,
    }
    rec = get_format("olympiadbench").adapt(row, 0)
    assert rec["answer"] == "69, 84" and rec["answer_type"] == "set"
    verdicts = grade_items(
        [
            GradeItem("same", rec["answer"], "So the answer is \\boxed{69, 84}."),
            GradeItem("swapped", rec["answer"], "\\boxed{84, 69}"),
            GradeItem("one", rec["answer"], "\\boxed{69}"),
        ],
        GradeSettings(workers=1),
    )
    assert [v.verdict for v in verdicts] == ["correct", "correct", "incorrect"]


@pytest.mark.parametrize(
    ("final_answer", "answer"),
    [
        (["$f(n)=n$, $g(n)=1$"], "f(n)=n, g(n)=1"),
        (["$(-\\infty, 0) \\cup\\{1\\}$."], "(-\\infty, 0) \\cup\\{1\\}"),  # trailing period
        (["$221,$8$"], "221, 8"),  # an unbalanced $
        (["$2$", "$3$"], "2, 3"),  # one answer per list item
        (["1,3,5"], "1,3,5"),  # no delimiters: as written
        (["$f(x)=x$, where $x$ is real"], "f(x)=x, where x is real"),  # prose: one answer
        (["$\\$5$"], "\\$5"),  # an escaped dollar sign stays
    ],
)
def test_olympiadbench_dollar_delimited_parts(final_answer, answer):
    rec = get_format("olympiadbench").adapt({"question": "q", "final_answer": final_answer}, 0)
    assert rec["answer"] == answer


def test_every_real_olympiadbench_answer_adapts():
    """All 675 rows of the harness's OE_TO_maths_en_COMP file: an answer, no stray ``$``."""
    rows = [json.loads(line) for line in OB_ANSWERS.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 675
    fmt = get_format("olympiadbench")
    multi = 0
    for i, raw in enumerate(rows):
        rec = fmt.adapt({"question": "q", **raw}, i)
        assert rec["answer"] and rec["answer"].strip(), raw
        assert not STRAY_DOLLAR.search(rec["answer"]), (raw["id"], rec["answer"])
        multi += any(STRAY_DOLLAR.search(f.strip().strip("$")) for f in raw["final_answer"])
    assert multi == 21  # the rows with several $-delimited parts in one string


def test_asdiv_several_values_have_no_answer():
    rec = get_format("asdiv").adapt(
        {"body": "A has 5 dogs and 3 cats.", "question": "How many of each?",
         "answer": "5 (dogs); 3 (cats)", "solution_type": "Addition"}, 0,
    )  # fmt: skip
    assert rec["answer"] is None and rec["meta"]["answer_format"] == "multiple"


def test_local_twin_ingests_every_local_benchmark_file(shared_data, tmp_path):
    """configs/local-benchmarks.yaml validates; each of its files, read in full through the
    benchmark's adapter, has the file's row count and nothing quarantined (about 2 s)."""
    cfg = _config("local-benchmarks.yaml")
    assert sorted(cfg.benchmarks) == sorted(LOCAL_ROWS)
    for name, spec in cfg.benchmarks.items():
        assert spec.source == "local" and spec.path.startswith("../shared/data/"), name
        full = spec.model_copy(
            update={"path": str(shared_data / spec.path.removeprefix("../shared/data/")),
                    "limit": None}
        )  # fmt: skip
        out = tmp_path / f"{name}.parquet"
        summary = ingest(name, full, out, tmp_path / f"{name}.q.parquet", progress=False)
        assert (summary["rows"], summary["quarantined"]) == (LOCAL_ROWS[name], 0), name
        assert len(read_records(out)) == LOCAL_ROWS[name]
