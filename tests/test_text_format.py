"""The ``text`` format (raw text without answers, optionally chunked) and its contract: only
``rewrite`` and ``extract`` may read it; a benchmark, a recipe or another method may not."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from mathrecipes.config import ConfigError, load_config, validate_source
from mathrecipes.ingest import ingest
from mathrecipes.records import NO_ANSWER, RecordError, check_record, read_records, write_records
from mathrecipes.selection import SelectionError, select_recipe
from mathrecipes.sources.formats import get_format
from mathrecipes.sources.text import chunk_spans, document_id, paragraph_spans, text_records

REPO = Path(__file__).resolve().parents[1]
TEXTBOOK = REPO / "tests" / "data" / "textbook"


def words(text: str) -> list[str]:
    return text.split()


# ------------------------------------------------------------------ chunking


def test_paragraphs_and_chunks_on_paragraph_boundaries():
    text = "\n  First line.\nsecond line.\n\n \nSecond paragraph.\n\n\nThird one here.\n"
    spans = paragraph_spans(text)
    assert [text[s:e] for s, e in spans] == [
        "First line.\nsecond line.",
        "Second paragraph.",
        "Third one here.",
    ]
    # 50 characters hold the first two paragraphs with the blank lines between them, not three
    chunks = [text[s:e] for s, e in chunk_spans(text, 50)]
    assert chunks == ["First line.\nsecond line.\n\n \nSecond paragraph.", "Third one here."]
    assert [text[s:e] for s, e in chunk_spans(text, 1000)] == [text.strip()]


def test_a_long_paragraph_is_cut_at_a_line_then_a_sentence_then_a_space():
    text = "Alpha beta gamma.\nDelta epsilon zeta eta theta."
    assert [text[s:e] for s, e in chunk_spans(text, 30)] == [
        "Alpha beta gamma.",
        "Delta epsilon zeta eta theta.",
    ]
    text = "One two three. Four five six seven eight nine ten."
    assert [text[s:e] for s, e in chunk_spans(text, 25)] == [
        "One two three.",
        "Four five six seven eight",
        "nine ten.",
    ]
    # a word longer than the limit is cut inside
    word = "abcdefghij"
    assert [word[s:e] for s, e in chunk_spans(word, 4)] == ["abcd", "efgh", "ij"]


@pytest.mark.parametrize("max_chars", [50, 80, 200, 400])
def test_chunks_cover_the_text_in_order_within_the_limit(max_chars):
    rng = random.Random(max_chars)
    vocab = ["sum", "of", "angles", "is", "180.", "prime", "factor", "x^2", "=", "4;", "fraction"]
    paragraphs = [
        "\n".join(
            " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 30)))
            for _ in range(rng.randint(1, 3))
        )
        for _ in range(25)
    ]
    text = "\n\n".join(paragraphs) + "\n"
    spans = chunk_spans(text, max_chars)
    assert all(0 < e - s <= max_chars for s, e in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # in order
    assert [w for s, e in spans for w in words(text[s:e])] == words(text)  # nothing lost
    for s, e in spans:  # no chunk starts or ends inside a word
        assert e == len(text) or text[e].isspace()
        assert s == 0 or text[s - 1].isspace()


def test_document_ids_and_records():
    assert document_id("docs/book/ch1.md", "docs/**/*.md") == "book/ch1"
    assert document_id("notes/a.txt", "notes/a.txt") == "a"
    assert document_id("x/y/z.md", "x/*/z.md") == "y/z"
    raw = {"id": "d1", "topic": "algebra", "text": "Para one.\n\nPara two is longer here."}
    assert get_format("text").adapt(raw, 0) == {
        "id": "d1",
        "problem": raw["text"],
        "solution": "",
        "answer": "",
        "answer_type": NO_ANSWER,
        "meta": {"topic": "algebra"},
    }
    chunks = text_records(raw, 0, chunk_chars=30)
    assert [c["id"] for c in chunks] == ["d1#0", "d1#1"]
    for k, c in enumerate(chunks):
        s, e = c["meta"]["span"]
        assert raw["text"][s:e] == c["problem"]
        assert c["meta"] == {"topic": "algebra", "doc_id": "d1", "chunk": k, "n_chunks": 2,
                             "span": [s, e]}  # fmt: skip
    # without chunk_chars: the document, its id the row index when it has none
    (doc,) = text_records({"body": "  Some text.  "}, 3, field="body")
    assert (doc["id"], doc["problem"], doc["meta"]) == ("0000003", "Some text.", {})


# ------------------------------------------------------------------ ingest


def spec(path, **kw) -> dict:
    return {"source": "local", "path": str(path), "format": "text", **kw}


def run_ingest(tmp_path, sp, name="notes"):
    out, quarantine = tmp_path / f"{name}.parquet", tmp_path / f"{name}.q.parquet"
    summary = ingest(name, sp, out, quarantine, progress=False)
    return summary, read_records(out), pq.read_table(quarantine).to_pylist()


def test_ingest_text_files_and_rows_with_chunks(tmp_path):
    summary, rows, bad = run_ingest(tmp_path, spec(TEXTBOOK / "*", chunk_chars=400))
    assert summary["answer_types"] == {NO_ANSWER: len(rows)} and bad == []
    ids = [r["id"] for r in rows]
    assert ids == [f"notes/fractions#{k}" for k in range(4)] + [
        "notes/primes#0",
        "notes/primes#1",
        "notes/angles#0",
    ]
    md = (TEXTBOOK / "fractions.md").read_text()
    lines = (TEXTBOOK / "notes.jsonl").read_text().splitlines()
    docs = {json.loads(line)["id"]: json.loads(line) for line in lines}
    for r in rows:
        m = json.loads(r["meta"])
        source = md if m["doc_id"] == "fractions" else docs[m["doc_id"]]["text"]
        s, e = m["span"]
        assert r["problem"] == source[s:e] and len(r["problem"]) <= 400
        assert (r["answer"], r["answer_type"], r["solution"], r["source"]) == (
            "",
            NO_ANSWER,
            "",
            "notes",
        )
        if m["doc_id"] != "fractions":
            assert m["topic"] in ("number theory", "geometry")
    # the chunks of a document are its paragraphs, whole
    paragraphs = [md[s:e] for s, e in paragraph_spans(md)]
    assert "\n\n".join(r["problem"] for r in rows[:4]) == "\n\n".join(paragraphs)

    # one row per document without chunk_chars; another text field
    lines = [{"uid": "a", "body": "First document."}, {"uid": "b", "body": "Second."}]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    _, rows, _ = run_ingest(tmp_path, spec(path, text_field="body", fields={"id": "uid"}))
    assert [(r["id"], r["problem"]) for r in rows] == [
        ("notes/a", "First document."),
        ("notes/b", "Second."),
    ]


def test_a_malformed_row_names_its_file_and_line(tmp_path):
    path = tmp_path / "docs.jsonl"
    lines = [
        {"id": "ok", "text": "Fine text."},
        {"id": "none", "content": "the text is under another key"},
        {"id": "list", "text": ["not", "a", "string"]},
        {"id": "blank", "text": "   \n\n "},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(RecordError, match=rf"{path} line 2: no text field 'text' \(fields: "):
        run_ingest(tmp_path, spec(path))
    _, rows, bad = run_ingest(tmp_path, spec(path, on_bad_row="quarantine"))
    assert [r["id"] for r in rows] == ["notes/ok"]
    assert [(b["where"], b["reason"].split(": ", 1)[1]) for b in bad] == [
        (f"{path} line 2", "no text field 'text' (fields: content, id); set text_field"),
        (f"{path} line 3", "text field 'text' is a list, not a string"),
        (f"{path} line 4", "text field 'text' is empty"),
    ]
    path.write_text('{"id": "ok", "text": "Fine."}\n{"id": "cut", "text": "unterminated\n')
    with pytest.raises(ValueError, match=rf"{path} line 2: malformed JSON"):
        run_ingest(tmp_path, spec(path, on_bad_row="fail"))
    # under quarantine the malformed line is quarantined with its line, the rest is kept
    _, rows, bad = run_ingest(tmp_path, spec(path, on_bad_row="quarantine"))
    assert [r["id"] for r in rows] == ["notes/ok"]
    assert [b["where"] for b in bad] == [f"{path} line 2"]
    assert "malformed JSON" in bad[0]["reason"]
    # a .md file is raw text: read with format text only
    with pytest.raises(ValueError, match=r"fractions.md: a .md file is one raw text document"):
        run_ingest(tmp_path, {**spec(TEXTBOOK / "fractions.md"), "format": "canonical"})


def test_the_answerless_contract_of_records():
    row = {"id": "t/1", "problem": "Some text.", "answer": "", "answer_type": NO_ANSWER}
    assert check_record(row, where="w", answerless=True)["answer"] == ""
    with pytest.raises(RecordError, match="w: answer_type 'none' .* raw text only"):
        check_record(row, where="w")  # a dataset with answers may not hold one
    with pytest.raises(RecordError, match="w: missing or empty field"):
        check_record({**row, "answer_type": "integer"}, where="w")
    with pytest.raises(RecordError, match="w: a raw text row has answer_type 'none' and no answer"):
        check_record({**row, "answer": "3"}, where="w", answerless=True)
    # canonical files cannot smuggle answerless rows in: the type is classified, the row fails
    with pytest.raises(RecordError, match="missing or empty field"):
        check_record({**get_format("canonical").adapt(row, 0), "source": "x"}, where="w")


# ------------------------------------------------------------------ config


def base_config() -> dict:
    raw = yaml.safe_load((REPO / "tests" / "configs" / "synth_openai.yaml").read_text())
    raw["synthesis"] = {"rewritten": raw["synthesis"]["rewritten"]}
    return raw


def problems(raw: dict) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(raw)
    return str(e.value)


def test_raw_text_feeds_rewrite_and_extract_only():
    raw = base_config()
    load_config(raw)
    writer = raw["synthesis"]["rewritten"]["teacher"]
    ok = copy.deepcopy(raw)
    ok["synthesis"].update(
        # raw text -> articles -> pairs, and the pairs (with answers) in a recipe
        pairs={
            "from": "rewritten",
            "method": "extract",
            "teacher": writer,
            "text_field": "solution",
        },
        more={"from": "notes", "method": "extract", "teacher": writer},
    )
    ok["recipes"]["base"]["mix"] += [{"from": "pairs"}, {"from": "more"}]
    assert load_config(ok).answerless_pools() == {"notes", "rewritten"}

    bad = copy.deepcopy(raw)
    bad["recipes"]["base"]["mix"] += [{"from": "notes"}, {"from": "rewritten"}]
    bad["synthesis"].update(
        distilled={"from": "notes", "method": "distill", "teacher": writer},
        again={"from": "rewritten", "method": "rephrase", "teacher": writer},
        empty={"from": "notes", "method": "extract", "teacher": writer, "text_field": "solution"},
    )
    bad["benchmarks"]["raw"] = {"source": "local", "path": "x.jsonl", "format": "text"}
    msg = problems(bad)
    for key, why in [
        ("recipes.base.mix.1.from", "'notes' is raw text without answers (format: text)"),
        ("recipes.base.mix.2.from", "'rewritten' rewrites raw text without answers"),
        ("synthesis.distilled.from", "only a rewrite or extract entry can read it, not distill"),
        ("synthesis.again.from", "only a rewrite or extract entry can read it, not rephrase"),
        ("synthesis.empty.text_field", "its solution is empty (text_field: problem)"),
        ("benchmarks.raw.format", "a benchmark needs gold answers; text has none"),
    ]:
        assert f"config key '{key}': " in msg and why in msg, (key, msg)


def test_text_keys_belong_to_the_text_format():
    with pytest.raises(ConfigError, match=r"'option.chunk_chars': applies to format: text only"):
        validate_source({"source": "local", "path": "a.jsonl", "format": "gsm8k",
                         "chunk_chars": 500}, key="option")  # fmt: skip
    with pytest.raises(ConfigError, match=r"'s.text_field': applies to format: text only"):
        validate_source({"source": "hf", "path": "a/b", "format": "math", "text_field": "x"}, "s")
    with pytest.raises(ConfigError, match=r"'s.answer_type': format text has no answers"):
        validate_source({"source": "local", "path": "a", "format": "text",
                         "answer_type": "integer"}, "s")  # fmt: skip
    with pytest.raises(ConfigError, match=r"chunk_chars"):
        validate_source({"source": "local", "path": "a", "format": "text", "chunk_chars": 10}, "s")
    validate_source({"source": "local", "path": "a", "format": "text", "chunk_chars": 100}, "s")


def test_selection_refuses_answerless_rows(tmp_path):
    rows = [
        {"id": f"n/{i}", "source": "n", "problem": f"Text {i}.", "solution": "", "answer": "",
         "answer_type": NO_ANSWER, "meta": "{}"}
        for i in range(3)
    ]  # fmt: skip
    write_records(rows, tmp_path / "n.parquet")
    with pytest.raises(SelectionError, match=r"recipes.r.mix.0.from: 'n' has 3 row\(s\) without"):
        select_recipe(
            "r",
            {"mix": [{"from": "n"}], "decontaminate": {"enabled": False}},
            {"n": [tmp_path / "n.parquet"]},
            {},
            tmp_path / "train.parquet",
            tmp_path / "stats.json",
            tmp_path / "contamination.parquet",
        )
