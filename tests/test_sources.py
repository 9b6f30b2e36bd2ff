"""The hf and local sources through ingest, and the `mathrecipes ingest` command."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mathrecipes.cli import main
from mathrecipes.config import ConfigError, validate_source
from mathrecipes.ingest import ingest
from mathrecipes.records import read_records

HUB = Path(__file__).parent / "data" / "hub_layouts"


@pytest.mark.parametrize(
    ("folder", "fmt"),
    [("numinamath", "numinamath"), ("openr1_math", "openr1_math"), ("limo", "limo")],
)
def test_hf_source_loads_a_folder_laid_out_like_the_hub(tmp_path, folder, fmt):
    spec = {"source": "hf", "path": str(HUB / folder), "split": "train", "format": fmt,
            "on_bad_row": "quarantine"}  # fmt: skip
    summary = ingest(folder, spec, tmp_path / "o.parquet", tmp_path / "q.parquet", progress=False)
    rows = read_records(tmp_path / "o.parquet")
    assert summary["rows"] == len(rows) > 0
    assert all(r["id"].startswith(f"{folder}/") and r["answer"] for r in rows)
    assert summary["source"]["source"] == "hf" and summary["source"]["folder_sha256"]
    assert summary["source"]["resolved_revision"] is None  # a local folder has no Hub commit


def test_hf_source_limit_and_streaming(tmp_path):
    spec = {"source": "hf", "path": str(HUB / "numinamath"), "format": "numinamath",
            "streaming": True, "limit": 2}  # fmt: skip
    summary = ingest("n", spec, tmp_path / "o.parquet", tmp_path / "q.parquet", progress=False)
    assert summary["rows"] == 2


def test_hf_source_unknown_dataset_fails_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = {"source": "hf", "path": "no-such-org/no-such-dataset", "format": "gsm8k"}
    with pytest.raises(RuntimeError, match="could not load Hugging Face dataset 'no-such-org"):
        ingest("x", spec, tmp_path / "o.parquet", tmp_path / "q.parquet", progress=False)


def test_local_source_with_a_format_adapter(tmp_path, shared_data):
    spec = {
        "source": "local",
        "path": str(shared_data / "eval/aime24/test.jsonl"),
        "format": "aime",
    }
    summary = ingest("aime24", spec, tmp_path / "o.parquet", tmp_path / "q.parquet", progress=False)
    rows = read_records(tmp_path / "o.parquet")
    assert summary["rows"] == 30 and summary["answer_types"] == {"integer": 30}
    assert any(r["answer"].startswith("0") for r in rows)  # zero-padded AIME answers kept


def test_gold_missing_after_the_adapter_is_quarantined(tmp_path):
    src = tmp_path / "g.jsonl"
    src.write_text(
        '{"question": "1+1?", "answer": "2\\n#### 2"}\n{"question": "?", "answer": "none"}\n'
    )
    spec = {"source": "local", "path": str(src), "format": "gsm8k", "on_bad_row": "quarantine"}
    summary = ingest("g", spec, tmp_path / "o.parquet", tmp_path / "q.parquet", progress=False)
    assert summary["rows"] == 1 and summary["quarantined"] == 1
    assert pq.read_table(tmp_path / "q.parquet").to_pylist()[0]["where"].endswith("g.jsonl line 2")


def test_validate_source_names_the_key():
    with pytest.raises(ConfigError, match=r"config key 'x\.format': unknown format 'nope'"):
        validate_source({"source": "local", "path": "a.jsonl", "format": "nope"}, key="x")
    with pytest.raises(ConfigError, match=r"config key 'x\.fields\.questoin'"):
        validate_source(
            {"source": "local", "path": "a.jsonl", "fields": {"questoin": "q"}}, key="x"
        )


def test_cli_ingest(tmp_path, shared_data, capsys):
    out = tmp_path / "gsm8k.parquet"
    path = str(shared_data / "eval/gsm8k/test.jsonl")
    assert main(["ingest", path, "--format", "gsm8k", "--name", "gsm8k", "-o", str(out), "-q"]) == 0
    assert "1319 rows, 0 quarantined; answer types: integer 1319" in capsys.readouterr().out
    manifest = json.loads(out.with_name("gsm8k.manifest.json").read_text())
    assert manifest["stage"] == "ingest" and manifest["summary"]["rows"] == 1319
    assert set(manifest["outputs"]) == {str(out), str(out.with_name("gsm8k.quarantine.parquet"))}
    assert main(["ingest", path, "--format", "nope", "-o", str(out)]) == 2
    assert "unknown format 'nope'" in capsys.readouterr().err


def test_cli_ingest_malformed_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "a", "answer": "1"}\n{"problem": \n')
    assert main(["ingest", str(bad), "-o", str(tmp_path / "o.parquet"), "-q"]) == 1
    assert f"{bad} line 2: malformed JSON" in capsys.readouterr().err


def test_cli_grade(tmp_path, capsys):
    import json

    rows = [
        {"id": "a", "gt": "18", "pred": "so \\boxed{18}"},
        {"id": "b", "gt": "0.5", "pred": "The answer is 1/2."},
        {"id": "c", "gt": "7", "pred": "I think 8"},
        {"id": "d", "gt": "\\frac{", "pred": "\\boxed{1}"},
        {"id": "e", "gt": "3", "pred": "#### 4"},
    ]
    src = tmp_path / "preds.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "grades.parquet"
    args = ["grade", str(src), "-o", str(out), "--prediction-field", "pred", "--gold-field", "gt",
            "--id-field", "id", "--audit", "-q"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "accuracy          50.00% (gold_unparseable excluded)" in printed
    verdicts = {r["id"]: r["verdict"] for r in pq.read_table(out).to_pylist()}
    assert verdicts == {"a": "correct", "b": "correct", "c": "no_answer",
                        "d": "gold_unparseable", "e": "incorrect"}  # fmt: skip
    assert main(["grade", str(src), "-o", str(out), "-q"]) == 1
    assert "missing field 'completion'" in capsys.readouterr().err
    assert main(["grade", str(src), "-o", str(out), "--policy", "bogus=1", "-q"]) == 1
    assert "unknown grading setting(s) bogus" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("suffix", "data", "line"),
    [
        (".jsonl", b'{"problem": "a", "answer": "1"}\n{"problem": "caf\xe9", "answer": "2"}\n', 2),
        (".json", b'[{"problem": "a", "answer": "1"},\n {"problem": "caf\xe9", "answer": "2"}]', 2),
        (".csv", b"problem,answer\na,1\ncaf\xe9 au lait costs,2\n", 3),
    ],
)
def test_bytes_that_are_not_utf8_name_the_file_line_and_offset(tmp_path, suffix, data, line):
    src = tmp_path / f"latin1{suffix}"
    src.write_bytes(data)
    offset = data.index(b"\xe9")
    with pytest.raises(ValueError) as info:
        ingest("x", {"source": "local", "path": str(src)}, tmp_path / "o.parquet",
               tmp_path / "q.parquet", progress=False)  # fmt: skip
    assert str(info.value).endswith(  # a jsonl line is a bad row: "x (on_bad_row: fail): "
        f"{src} line {line}: not UTF-8: byte 0xe9 at byte offset {offset} of the file "
        "(invalid continuation byte); save the file as UTF-8"
    )


def test_a_malformed_json_file_names_the_file_and_line(tmp_path):
    src = tmp_path / "broken.json"
    src.write_text('[{"problem": "a", "answer": "1"},\n {"problem": }]')
    with pytest.raises(ValueError, match=rf"^{src} line 2 column 14: malformed JSON \(Expecting"):
        ingest("x", {"source": "local", "path": str(src)}, tmp_path / "o.parquet",
               tmp_path / "q.parquet", progress=False)  # fmt: skip


def test_malformed_jsonl_lines_are_quarantined_with_their_line_and_error(tmp_path):
    src = tmp_path / "m.jsonl"
    src.write_bytes(
        b'{"problem": "1+1?", "answer": "2"}\n{"problem": \n[1, 2]\n'
        b'{"problem": "caf\xe9", "answer": "3"}\n{"problem": "2+2?", "answer": "4"}\n'
    )
    spec = {"source": "local", "path": str(src), "on_bad_row": "quarantine"}
    summary = ingest("m", spec, tmp_path / "o.parquet", tmp_path / "q.parquet", progress=False)
    assert summary["rows"] == 2 and summary["quarantined"] == 3
    bad = pq.read_table(tmp_path / "q.parquet").to_pylist()
    assert [b["where"] for b in bad] == [f"{src} line {k}" for k in (2, 3, 4)]
    assert bad[0]["reason"] == "malformed JSON (Expecting value at column 13)"
    assert bad[0]["row"] == '{"problem": '  # the line as it is (not JSON: it could not be read)
    assert bad[1]["reason"] == "expected a JSON object, got a list"
    assert bad[2]["reason"].startswith("not UTF-8: byte 0xe9 at byte offset 71 of the file")
    assert bad[2]["row"] == '{"problem": "caf\ufffd", "answer": "3"}'
    with pytest.raises(ValueError, match=rf"^m \(on_bad_row: fail\): {src} line 2: malformed JSON"):
        ingest("m", {**spec, "on_bad_row": "fail"}, tmp_path / "o.parquet",
               tmp_path / "q.parquet", progress=False)  # fmt: skip
