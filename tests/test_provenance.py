import json
import shutil
from pathlib import Path

import pytest
from helpers import documented_folder_hash

from mathrecipes import provenance as P

# Modules that cannot change a result: they are deliberately in no fingerprint (the config
# schema reaches every job through its params instead; the planner runs no job).
# the workflow machinery (dagspeed.py: how Snakemake looks up script sources) changes no output
NOT_RESULT_AFFECTING = {"config", "runlog.py", "cli.py", "py.typed", "plan", "dagspeed.py"}


def _entries_claimed():
    claimed = set()
    for entries in (P.COMMON, *P.STAGE_MODULES.values()):
        for e in entries:
            claimed |= {str(f.relative_to(P.PACKAGE_DIR)) for f in P._files_of(e)}
    return claimed


def test_every_module_belongs_to_a_stage():
    modules = {
        str(p.relative_to(P.PACKAGE_DIR))
        for p in P.PACKAGE_DIR.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    unclaimed = {
        m for m in modules - _entries_claimed() if m.split("/")[0] not in NOT_RESULT_AFFECTING
    }
    assert not unclaimed, f"add these to provenance.STAGE_MODULES: {sorted(unclaimed)}"


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    copy = tmp_path / "mathrecipes"
    shutil.copytree(P.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(P, "PACKAGE_DIR", copy)
    return copy


def test_editing_one_module_changes_only_its_stages(package_copy):
    before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    with open(package_copy / "grading" / "engine.py", "a") as fh:
        fh.write("\n# an edit\n")
    after = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    changed = {s for s in before if before[s] != after[s]}
    assert changed == {"grade"}


def test_grader_version_hashes_the_grade_stage_modules():
    from mathrecipes.grading.settings import source_files

    grade = {f for e in P.STAGE_MODULES["grade"] for f in P._files_of(e)}
    assert set(source_files()) == grade


def test_latex_answer_edit_reingests_and_regrades(package_copy):
    # gold answers at ingest and model answers at grading are read by the same module
    before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    with open(package_copy / "latex.py", "a") as fh:
        fh.write("\n# an edit\n")
    after = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    assert {s for s in before if before[s] != after[s]} == {"ingest", "grade"}


def test_prompt_format_edit_retrains_regenerates_and_rescores(package_copy):
    before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    with open(package_copy / "prompting.py", "a") as fh:
        fh.write("\n# an edit\n")
    after = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    # the served references are asked with the students' prompt too
    changed = {s for s in before if before[s] != after[s]}
    assert changed == {"train", "generate", "likelihood", "reference"}


def test_decoding_is_shared_and_evaluation_is_not(package_copy):
    """The local-model teachers fingerprint the decoders they share with evaluation, not the
    evaluation stage: a generation.py edit regenerates and reruns no teacher."""

    def changed_by(path: str) -> set:
        before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
        with open(package_copy / path, "a") as fh:
            fh.write("\n# an edit\n")
        return {s for s in before if P.code_fingerprint(s) != before[s]}

    assert changed_by("generation.py") == {"generate"}
    assert changed_by("decoding/decoders.py") == {"generate", "teacher_local", "likelihood"}


def test_likelihood_fingerprint_has_the_training_encoding_and_no_grader(package_copy):
    """The likelihood rule scores the tokens training builds: a training/data.py edit rescores,
    a grader or a training-loop edit does not; its own module changes it alone."""

    def changed_by(path: str) -> set:
        before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
        with open(package_copy / path, "a") as fh:
            fh.write("\n# an edit\n")
        return {s for s in before if P.code_fingerprint(s) != before[s]}

    assert changed_by("likelihood.py") == {"likelihood"}
    assert changed_by("training/data.py") == {"train", "teacher_local", "likelihood"}
    assert changed_by("resumable.py") == {"generate", "likelihood"}
    assert "likelihood" not in changed_by("grading/engine.py")
    assert "likelihood" not in changed_by("training/loop.py")


def test_records_edit_changes_every_stage(package_copy):
    before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    with open(package_copy / "records.py", "a") as fh:
        fh.write("\n# an edit\n")
    assert all(P.code_fingerprint(s) != before[s] for s in P.STAGE_MODULES)


def test_unknown_stage():
    with pytest.raises(KeyError, match="unknown stage"):
        P.code_fingerprint("nope")


def test_manifest_records_inputs_outputs_and_params(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello")
    out = tmp_path / "out.parquet"
    with P.Manifest("select", inputs=[src], params={"a": 1}) as m:
        out.write_bytes(b"data")
        m.add(summary={"rows": 3})
        path = m.write([out])
    doc = json.loads(path.read_text())
    assert path == tmp_path / "out.manifest.json"
    assert doc["inputs"][str(src)] == P.file_sha256(src)
    assert doc["outputs"][str(out)] == P.file_sha256(out)
    assert doc["params"] == {"a": 1} and doc["summary"] == {"rows": 3}
    assert doc["code_fingerprint"] == P.code_fingerprint("select")
    assert "python" in doc["versions"] and doc["stage"] == "select"
    assert set(doc) == {"stage", "code_fingerprint", "params", "inputs", "outputs", "versions",
                        "host", "platform", "pid", "started", "wall_time_s", "summary"}  # fmt: skip


def test_folder_hash_ignores_its_manifest(tmp_path):
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "a.bin").write_bytes(b"1")
    h = P.path_sha256(d)
    (d / "manifest.json").write_text("{}")
    assert P.path_sha256(d) == h
    (d / "a.bin").write_bytes(b"2")
    assert P.path_sha256(d) != h
    assert P.manifest_path_for(Path("x/seed-0")) == Path("x/seed-0/manifest.json")


CELL = {
    "student": "nano",
    "recipe": "better",
    "benchmark": "id_test",
    "train": {"results/recipes/better/train.parquet": "ab" * 32},
    "synthesis_shards": {},
    "seeds": {"0": {"checkpoint": {"results/checkpoints/nano/better/seed-0": "cd" * 32}}},
}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (json.dumps({"nano/better/id_test": CELL})[:60], "is not valid JSON (Unterminated string"),
        ("\xff\xfe", "is not valid JSON (not UTF-8"),
        ("[1, 2]", "has the wrong shape: expected a JSON object of cells, got list"),
        (
            json.dumps({"nano/better/id_test": {**CELL, "seeds": [1]}}),
            "has the wrong shape: cell 'nano/better/id_test': 'seeds' is not an object",
        ),
        (
            json.dumps({"nano/better/id_test": {**CELL, "train": {"x": 3}}}),
            "has the wrong shape: cell 'nano/better/id_test': train['x'] is not a sha256 hex",
        ),
    ],
    ids=["truncated", "not-utf8", "not-cells", "seeds-list", "hash-number"],
)
def test_trace_on_a_corrupt_provenance_file_is_a_clear_error(tmp_path, capsys, text, problem):
    from mathrecipes.cli import main

    prov = tmp_path / "provenance.json"
    prov.write_bytes(text.encode("latin-1") if text == "\xff\xfe" else text.encode())
    assert main(["trace", "nano/better/id_test", "--provenance", str(prov)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {prov} {problem}")
    assert "written by the make_tables rule: rebuild it with " in err
    assert "snakemake --cores all --forcerun make_tables" in err and "Traceback" not in err
    prov.write_text(json.dumps({"nano/better/id_test": CELL}))  # the shape trace reads
    assert main(["trace", "nano/better/id_test", "--provenance", str(prov)]) == 0
    assert "seed-0  sha256:cdcdcdcdcdcd" in capsys.readouterr().out


def test_folder_hash_is_what_the_documented_command_computes_and_ignores_snakemake_files(
    tmp_path,
):
    d = tmp_path / "seed-0"
    (d / "sub").mkdir(parents=True)
    (d / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    (d / "config.json").write_text('{"a": 1}\n')
    (d / "sub" / "b.txt").write_text("b\n")
    (d / "sub-a").write_text("sorted by path bytes, not by path parts\n")
    (d / "manifest.json").write_text('{"outputs": {}}\n')  # written by the job: not hashed
    h = P.path_sha256(d)
    (d / ".snakemake_timestamp").write_text("")  # Snakemake adds it after the job
    assert P.path_sha256(d) == h  # so the manifest's hash can be reproduced after the run
    assert documented_folder_hash(d) == h
    (d / "sub" / "b.txt").write_text("c\n")
    assert P.path_sha256(d) != h and documented_folder_hash(d) == P.path_sha256(d)
