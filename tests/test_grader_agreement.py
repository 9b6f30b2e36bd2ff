"""Agreement of the grader with trusted correctness labels (benchmarks/grader_agreement.py).

Skips when the shared data directory is absent (fails under CI: ``helpers.require``).
Thresholds: >= 99.5% on the labelled GSM8K model solutions, >= 99% on each ToRA GSM8K output
file, every OlympiadBench pair right except documented xfails.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from helpers import require

REPO = Path(__file__).resolve().parents[1]


def _load_agreement_module():
    name = "grader_agreement"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


ga = _load_agreement_module()


@pytest.fixture
def grading_data(shared_data: Path) -> Path:
    path = shared_data / "grading"
    require(path.is_dir(), f"the labelled grading data {path} (part of the shared data)")
    return path


def test_gsm8k_labelled_model_solutions(grading_data):
    result = ga.gsm8k(workers=2, audit=False)
    assert result.n == 5276
    bad = result.disagreements()
    assert result.ours_agreement() >= 0.995, [(r["id"], r["category"]) for r in bad[:20]]


@pytest.mark.parametrize("model", ga.TORA_MODELS)
def test_tora_gsm8k_outputs(grading_data, model):
    result = ga.tora(model, workers=2, audit=False)
    assert result.n == 1319
    # The label is ToRA's own math_equal(pred[0], gt): it reproduces the .metrics accuracy.
    assert result.extra["label_accuracy"] == result.extra["tora_metrics_accuracy"]
    bad = result.disagreements()
    assert result.ours_agreement() >= 0.99, [(r["id"], r["category"]) for r in bad]
    # Every disagreement has a known explanation.
    known = (
        "label: ToRA's grader accepts gt*100 or gt/100",
        "extraction: no anchored answer in the trajectory",
    )
    assert all(r["category"].startswith(known) for r in bad), [r["category"] for r in bad]


# OlympiadBench pairs the grader does not get right, with the reason.
OLYMPIAD_XFAIL = {
    "21.0": (
        "the pair needs a separate absolute tolerance per list element (1e34 and 1e-3); "
        "GradeSettings has one abs_tol"
    ),
}
# Pairs labelled "not equal" on which the grader times out (no claim of equality): the power
# tower 10^{10^{10^{10}}} hangs sympy, the hard timeout ends it. The timeout is 10 s, not 2: on
# a loaded machine a slow but finite comparison (rows 6.0, 12.0) ran past 2 s in CI.
OLYMPIAD_TIMEOUT_OK = {"23.0"}


@pytest.fixture(scope="module")
def olympiad_rows():
    require(ga.OLYMPIAD_FILE.is_file(), f"the OlympiadBench examples {ga.OLYMPIAD_FILE}")
    return {r["id"]: r for r in ga.olympiad(workers=2, audit=False, timeout_s=10).rows}


def _olympiad_params():
    if not ga.OLYMPIAD_FILE.is_file():
        return ["missing"]  # the olympiad_rows fixture skips it (fails it under CI)
    out = []
    for pair in ga.olympiad_pairs():
        marks = []
        if pair["id"] in OLYMPIAD_XFAIL:
            marks.append(pytest.mark.xfail(strict=True, reason=OLYMPIAD_XFAIL[pair["id"]]))
        out.append(pytest.param(pair["id"], id=pair["id"], marks=marks))
    return out


@pytest.mark.parametrize("pair_id", _olympiad_params())
def test_olympiadbench_pair(olympiad_rows, pair_id):
    row = olympiad_rows[pair_id]
    if pair_id in OLYMPIAD_TIMEOUT_OK:
        assert not row["label"] and row["verdict"] == "timeout"
        return
    assert row["verdict"] in ("correct", "incorrect"), row
    assert (row["verdict"] == "correct") == row["label"], row
