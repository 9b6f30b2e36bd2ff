"""Ingest's columnar path (sources/columnar.py) and streamed output equal the per-row path."""

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mathrecipes import parquet_stream, records
from mathrecipes.ingest import ingest
from mathrecipes.parquet_stream import TableStream
from mathrecipes.records import RecordError, write_records, write_table


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    """MATH and GSM8K train rows (1,500 each) ingested the per-row way: canonical tables."""
    d = tmp_path_factory.mktemp("real")
    out = []
    for name, path, fmt in (
        ("math", "train/math/train.jsonl", "math"),
        ("gsm8k", "train/gsm8k/train.jsonl", "gsm8k"),
    ):
        spec = {"source": "local", "path": str(shared_data / path), "format": fmt, "limit": 1500}
        ingest(name, spec, d / f"{name}.parquet", d / f"{name}.q.parquet", progress=False)
        out.append(pq.read_table(d / f"{name}.parquet"))
    return out


def _planted(table: pa.Table, seed: int) -> pa.Table:
    """A canonical table as a user might bring it: some answer types missing or wrong, meta
    null, empty or spaced, extra columns, and bad rows (empty problem or answer, padded ids)."""
    rows = table.to_pylist()
    for i, r in enumerate(rows):
        k = (i + seed) % 23
        r["year"] = 1990 + i % 7
        r["score"] = math.nan if i % 5 == 0 else i / 3
        if i % 3 == 0:
            r["answer_type"] = None  # classified from the answer
        elif i % 7 == 0:
            r["answer_type"] = "bogus"
        if i % 4 == 0:
            r["meta"] = None
        elif i % 4 == 1:
            r["meta"] = json.dumps({"b": i, "a": [1, "x"], "source": "m"}, indent=1)
        elif i % 11 == 0:
            r["meta"] = ""
        if k == 1:
            r["problem"] = "   "
        elif k == 2:
            r["answer"] = "  "
        elif k == 3:
            r["answer"] = "$.$"
        elif k == 4:
            r["problem"] = None
        elif k == 5:
            r["id"] = f"  {r['id']}\u3000"
        elif k == 6:
            r["id"] = ""
        elif k == 7:
            r["problem"] = "\x1c" + r["problem"] + "\u2003\n"
        elif k == 8:
            r["solution"] = "\u00e9" + r["solution"] + " "
        elif k == 9:
            r["answer"] = f" $ {r['answer']} $. "
    return pa.Table.from_pylist(rows)


@pytest.fixture(scope="module")
def pool(real, tmp_path_factory):
    d = tmp_path_factory.mktemp("pool")
    a, b = (_planted(t, s) for t, s in zip(real, (0, 5), strict=True))
    a = a.drop_columns(["score"])  # a's meta once per distinct (meta, source, year); b's by row
    pq.write_table(a.rename_columns(["q" if c == "problem" else c for c in a.column_names]),
                   d / "a.parquet", row_group_size=400)  # fmt: skip
    tags = pa.array([[f"t{i % 3}"] * (i % 2) for i in range(b.num_rows)])
    b = b.append_column("tags", tags)  # a list column: meta made row by row
    pq.write_table(b.rename_columns(["q" if c == "problem" else c for c in b.column_names]),
                   d / "b.parquet", row_group_size=300)  # fmt: skip
    c = a.slice(0, 200).drop_columns(["meta"]).to_pylist()
    for i, r in enumerate(c):
        r["id"] = f"c{i}"
        r["meta"] = {"k": i}  # a struct meta: not covered, the file goes row by row
    pq.write_table(pa.Table.from_pylist(c).rename_columns(
        ["q" if n == "problem" else n for n in c[0]]), d / "c.parquet")  # fmt: skip
    d_rows = [
        {"id": i, "q": r["q"], "answer": i - 3, "meta": None, "note": None}
        for i, r in enumerate(pq.read_table(d / "a.parquet").slice(0, 300).to_pylist())
    ]
    pq.write_table(pa.Table.from_pylist(d_rows), d / "d.parquet")  # int id and answer, nulls
    return d


def _spec(pool, **kw):
    return {"source": "local", "path": str(pool / "*.parquet"), "format": "canonical",
            "fields": {"problem": "q"}, "on_bad_row": "quarantine", **kw}  # fmt: skip


def _both(pool, tmp_path, spec, **kw):
    out = {}
    for columnar in (True, False):
        d = tmp_path / str(columnar)
        s = ingest("p", spec, d / "o.parquet", d / "q.parquet", progress=False,
                   columnar=columnar, **kw)  # fmt: skip
        s.pop("source")
        out[columnar] = (s, d)
    return out[True], out[False]


@pytest.mark.parametrize("limit", [None, 2700])
def test_columnar_ingest_equals_the_per_row_path_byte_for_byte(pool, tmp_path, limit):
    (s_col, d_col), (s_row, d_row) = _both(pool, tmp_path, _spec(pool, limit=limit),
                                           batch_rows=700)  # fmt: skip
    assert s_col == s_row and s_col["quarantined"] > 200
    assert s_col["rows"] + s_col["quarantined"] == (limit or 3500)
    for f in ("o.parquet", "q.parquet"):
        assert (d_col / f).read_bytes() == (d_row / f).read_bytes()
    rows = pq.read_table(d_col / "o.parquet").to_pylist()
    assert {r["answer_type"] for r in rows} <= set(records.ANSWER_TYPES)
    assert any(json.loads(r["meta"]).get("orig_source") == "math" for r in rows)
    assert not any(r["id"] != r["id"].strip() or r["problem"] != r["problem"].strip() for r in rows)
    bad = pq.read_table(d_col / "q.parquet").to_pylist()
    files = {b["where"].split(" row ")[0].rsplit("/", 1)[1] for b in bad}
    assert files == (
        {"a.parquet", "b.parquet"} | ({"c.parquet", "d.parquet"} if limit is None else set())
    )
    # the file today's writer (one write_table of the records) makes of the same rows
    write_records(rows, tmp_path / "old.parquet")
    assert (tmp_path / "old.parquet").read_bytes() == (d_col / "o.parquet").read_bytes()


def test_on_bad_row_fail_and_duplicates_give_the_per_row_errors(pool, tmp_path):
    errors = []
    for columnar in (True, False):
        with pytest.raises(RecordError) as info:
            ingest("p", _spec(pool, on_bad_row="fail"), tmp_path / "o.parquet",
                   tmp_path / "q.parquet", progress=False, columnar=columnar)  # fmt: skip
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    assert errors[0].startswith(f"p (on_bad_row: fail): {pool / 'a.parquet'} row 1: missing")
    assert not (tmp_path / "o.parquet").exists() and not (tmp_path / "q.parquet").exists()

    rows = pq.read_table(pool / "a.parquet").slice(0, 900).to_pylist()
    rows[850]["id"] = rows[20]["id"] = "dup"  # in two batches of 700
    src = tmp_path / "dup" / "d.parquet"
    src.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), src)
    errors = []
    for columnar in (True, False):
        with pytest.raises(RecordError) as info:
            ingest("p", {**_spec(pool), "path": str(src)}, tmp_path / "o.parquet",
                   tmp_path / "q.parquet", progress=False, columnar=columnar, batch_rows=700)  # fmt: skip
        errors.append(str(info.value))
    assert errors[0] == errors[1] == f"{src} row 850: duplicate id 'p/dup' (first at {src} row 20)"
    assert not (tmp_path / "o.parquet").exists()


def test_a_meta_that_is_not_json_fails_as_row_by_row(pool, tmp_path):
    rows = pq.read_table(pool / "a.parquet").slice(0, 50).to_pylist()
    rows[30]["meta"] = "{not json"
    src = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    errors = []
    for columnar in (True, False):
        with pytest.raises(ValueError) as info:
            ingest("p", {**_spec(pool), "path": str(src)}, tmp_path / "o.parquet",
                   tmp_path / "q.parquet", progress=False, columnar=columnar)  # fmt: skip
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


def test_table_stream_row_groups(tmp_path, monkeypatch, real):
    table = real[0]
    write_table(table, tmp_path / "one.parquet")
    stream = TableStream(tmp_path / "s.parquet", table.schema)
    for k in range(0, table.num_rows, 128):
        stream.write(table.slice(k, 128))
    assert stream.close() == table.num_rows
    assert (tmp_path / "s.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()

    for rows, cap, groups in ((400, 1 << 40, [400, 400, 400, 300]), (10**6, 1, [128] * 11 + [92])):
        monkeypatch.setattr(parquet_stream, "ROW_GROUP_ROWS", rows)
        monkeypatch.setattr(parquet_stream, "ROW_GROUP_BYTES", cap)
        stream = TableStream(tmp_path / "g.parquet", table.schema)
        for k in range(0, table.num_rows, 128):
            stream.write(table.slice(k, 128))
        stream.close()
        meta = pq.ParquetFile(tmp_path / "g.parquet").metadata
        assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == groups
        assert pq.read_table(tmp_path / "g.parquet").equals(table)
    stream = TableStream(tmp_path / "x.parquet", table.schema)
    stream.write(table)
    stream.abort()
    assert not list(tmp_path.glob("x.parquet*"))
