"""Ingest and selection rows/s and peak memory on realistic pools (issue 13), before and after.

    python benchmarks/bench_select.py [--rows 200000 1000000] [--ref COMMIT] [--agreement]
                                      [--pools DIR] [--skip-ingest] [--skip-select] [--per-row]
                                      [--shards N] [--skip-single]

For each row count: the pool of benchmarks/make_pool.py (seed 0; made once and kept in
``--pools``, default /tmp/mathrecipes-pools), then, each in its own child process whose peak
resident memory is read with ``os.wait4``:

* ``ingest``: :func:`mathrecipes.ingest.ingest` of the pool file as a ``local`` source
  (format ``canonical``), as the ingest rule runs it (its columnar path; with ``--per-row`` its
  per-row path too, and with ``--ref`` the package at COMMIT; the outputs compared as tables);
  ``--skip-select``: ingest only;
* ``select``: :func:`mathrecipes.selection.select_recipe` of one recipe taking the pool whole,
  with exact dedup, near dedup (threshold 0.8, 128 permutations, 5-word shingles) and 13-gram
  decontamination against MATH-500 and GSM8K test (``$MATHRECIPES_SHARED_DATA``, default
  ``../shared/data``);
* with ``--ref COMMIT``: ``select`` again with the package as it was at COMMIT (``git archive``
  of its ``src/``), and the outputs compared: exact duplicates and contamination matches must be
  identical; the near-duplicate sets are compared (count, both, only before, only after).

``--agreement``: on each pool, near dedup's removals with datasketch (the implementation before
issue 13) and with the vectorised path (rensa signatures), and datasketch with another seed
(the estimator's own spread); with a histogram of the true shingle Jaccard of the differences.

``--shards N``: the sharded path too (``selection.shards: N``), each job in its own child in the
order Snakemake runs them: ``select_signatures`` for each of the N row ranges (on a cluster side
by side), ``select_union``, then ``select_recipe`` reading the union; each job's seconds and peak
memory, and whether its outputs are byte for byte the single job's. ``--skip-single`` leaves
the single job out (a 10M-row pool: ``make_pool.py`` it first).

``--minhash``: the signatures alone (128 permutations, 5-word shingles) of the first 20,000 rows
by datasketch (``MinHash.bulk`` of Python shingles), rensa (hashed shingles, one call per chunk,
out to numpy) and plain numpy (the same hashed shingles, ``(a * h + b) >> 32`` and a minimum per
row): the measurement that chose rensa.

Prints figures only; tests/test_selection_fast.py checks the results on a small pool.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATHRECIPES_SHARED_DATA", REPO.parent / "shared" / "data"))
SPEC = {
    "mix": [{"from": "pool", "weight": None}],
    "volume": {"fraction": 1.0},
    "dedup": True,
    "near_dedup": {"enabled": True, "threshold": 0.8, "num_perm": 128, "ngram": 5},
    "seed": 0,
    "decontaminate": {"enabled": True, "ngram": 13, "min_overlap": 0.7},
}

INGEST = """
import sys
from mathrecipes.ingest import ingest
spec = {"source": "local", "path": sys.argv[1], "format": "canonical"}
kw = {} if len(sys.argv) < 5 else {"columnar": sys.argv[4] == "columnar"}
print(ingest("pool", spec, sys.argv[2], sys.argv[3], progress=False, **kw)["rows"])
"""


def same_parquet(a: Path, b: Path) -> bool:
    """The two files hold equal tables (compared a batch at a time)."""
    import pyarrow.parquet as pq

    fa, fb = pq.ParquetFile(a), pq.ParquetFile(b)
    if fa.metadata.num_rows != fb.metadata.num_rows or not fa.schema_arrow.equals(fb.schema_arrow):
        return False
    batches = zip(
        fa.iter_batches(batch_size=50_000), fb.iter_batches(batch_size=50_000), strict=True
    )
    return all(x.equals(y) for x, y in batches)


SELECT = """
import json, sys
from mathrecipes.selection import select_recipe
out, spec, pool, benches = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
s = select_recipe("r", spec, {"pool": [pool]}, benches, out + "/train.parquet",
                  out + "/stats.json", out + "/contamination.parquet", out + "/removed.parquet")
print(s["examples"])
"""


def run_child(code: str, args: list[str], src: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS in GB, stdout) of ``python -c code args`` importing ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}): {code.strip().splitlines()[1]}")
    return seconds, usage.ru_maxrss / 1e6, out.strip()


def benchmark_files(d: Path) -> dict[str, str]:
    from mathrecipes.records import write_records

    out = {}
    for name, path, field in (
        ("math500", "eval/math500/test.jsonl", "problem"),
        ("gsm8k", "eval/gsm8k/test.jsonl", "question"),
    ):
        lines = (SHARED / path).read_text().splitlines()
        rows = [
            {
                "id": f"{name}/{i:05d}",
                "source": name,
                "problem": json.loads(line)[field],
                "solution": "",
                "answer": "1",
                "answer_type": "integer",
                "meta": "{}",
            }
            for i, line in enumerate(lines)
        ]
        write_records(rows, d / f"{name}.parquet")
        out[name] = str(d / f"{name}.parquet")
    return out


# the sharded path (--shards N), each job in its own child, as the Snakemake jobs run them
SIGNATURES = """
import json, sys
from mathrecipes.config import RecipeSpec
from mathrecipes.config.recipes import pool_settings
from mathrecipes.poolsteps import shard_signatures, write_shard
out, spec, pool, benches, k, n = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
settings = pool_settings(RecipeSpec.model_validate(spec), sorted(benches))
t = shard_signatures([pool], k, n, settings, benches, pool="pool", workers=2)
write_shard(t, f"{out}/shard-{k}.parquet")
print(t.num_rows)
"""

UNION = """
import json, sys
from mathrecipes.config import RecipeSpec
from mathrecipes.config.recipes import pool_settings
from mathrecipes.poolsteps import pool_union, write_union
out, spec, benches, n = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
settings = pool_settings(RecipeSpec.model_validate(spec), sorted(benches))
r = pool_union([f"{out}/shard-{k}.parquet" for k in range(n)], settings, pool="pool")
write_union(r, out)
print(r.stats["pool"])
"""

SELECT_SHARDED = """
import json, sys
from mathrecipes.selection import select_recipe
out, spec, pool, benches, union = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
s = select_recipe("r", spec, {"pool": [pool]}, benches, out + "/train.parquet",
                  out + "/stats.json", out + "/contamination.parquet", out + "/removed.parquet",
                  unions={"pool": union})
print(s["examples"])
"""


def sharded(n: int, shards: int, pool: Path, benches: dict[str, str], tmp: Path) -> None:
    """The sharded path's jobs one after the other (on a cluster the signature jobs run side by
    side): each job's seconds and peak memory; the outputs compared with the single job's."""
    work, out = tmp / f"shards-{shards}", tmp / f"sharded-{shards}"
    work.mkdir()
    spec, b = json.dumps(SPEC), json.dumps(benches)
    src = REPO / "src"
    for k in range(shards):
        s, gb, rows = run_child(
            SIGNATURES, [str(work), spec, str(pool), b, str(k), str(shards)], src
        )
        print(f"  select_signatures {k}/{shards}: {s:.1f} s, peak {gb:.2f} GB, {rows} rows")
    s, gb, kept = run_child(UNION, [str(work), spec, b, str(shards)], src)
    print(f"  select_union: {s:.1f} s, peak {gb:.2f} GB, {kept} kept")
    s, gb, examples = run_child(SELECT_SHARDED, [str(out), spec, str(pool), b, str(work)], src)
    print(f"  select_recipe (sharded): {s:.1f} s, peak {gb:.2f} GB, {examples} examples")
    single = tmp / "after"
    if (single / "train.parquet").exists():
        files = ("train.parquet", "removed.parquet", "contamination.parquet", "stats.json")
        same = [f for f in files if (single / f).read_bytes() == (out / f).read_bytes()]
        print(f"  byte-identical to the single job: {', '.join(same) or 'none'} (of {len(files)})")


def pool_file(n: int, pools: Path) -> Path:
    path = pools / f"pool-{n}.parquet"
    if not path.exists():
        subprocess.run(
            [sys.executable, str(REPO / "benchmarks/make_pool.py"), str(n), str(path)], check=True
        )
    return path


def compare(before: Path, after: Path) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    def removed(d: Path, stage: str) -> dict[str, str]:
        rows = pq.read_table(d / "removed.parquet").to_pylist()
        return {r["train_id"]: r["duplicate_of"] for r in rows if r["stage"] == stage}

    same_exact = removed(before, "dedup") == removed(after, "dedup")
    o, n = set(removed(before, "near_dedup")), set(removed(after, "near_dedup"))
    differ = sorted(o ^ n)  # rows one near dedup removed and the other kept for decontamination

    def contam(d: Path):
        table = pq.read_table(d / "contamination.parquet")
        mask = pc.invert(pc.is_in(table["train_id"], pa.array(differ, pa.string())))
        return table.filter(mask), table.num_rows

    (c0, n0), (c1, n1) = contam(before), contam(after)
    same = [f for f in ("train.parquet", "removed.parquet", "contamination.parquet", "stats.json")
            if (before / f).read_bytes() == (after / f).read_bytes()]  # fmt: skip
    print(f"  byte-identical: {', '.join(same) or 'none'}")
    print(f"  exact duplicates identical: {same_exact} ({len(removed(after, 'dedup'))} rows)")
    print(
        f"  contamination identical on the rows both near dedups kept: {c0.equals(c1)} "
        f"({c1.num_rows} matches; in all {n0} before, {n1} after)"
    )
    print(
        f"  near duplicates: before {len(o)}, after {len(n)}, both {len(o & n)}, "
        f"only before {len(o - n)}, only after {len(n - o)}, "
        f"set Jaccard {len(o & n) / max(1, len(o | n)):.3f}"
    )


def agreement(pool: Path) -> None:
    import collections

    import numpy as np
    import pyarrow.parquet as pq
    from datasketch import MinHash

    from mathrecipes.neardup import near_duplicates, near_duplicates_of, shingles
    from mathrecipes.textnorm import normalize_series

    rows = sorted(pq.read_table(pool, columns=["id", "problem"]).to_pylist(), key=lambda r: r["id"])
    norms = normalize_series([r["problem"] for r in rows])
    first = norms.is_first_distinct().to_numpy()
    rows = [r for r, f in zip(rows, first, strict=True) if f]
    norms = norms.filter(first)
    ids = [r["id"] for r in rows]
    t = time.perf_counter()
    _, old = near_duplicates(rows, threshold=0.8, num_perm=128, ngram=5)
    t_old = time.perf_counter() - t
    t = time.perf_counter()
    new = near_duplicates_of(ids, norms, threshold=0.8, num_perm=128, ngram=5)
    t_new = time.perf_counter() - t
    sig2 = np.array(
        [
            m.hashvalues
            for m in MinHash.bulk([shingles(r["problem"], 5) for r in rows], num_perm=128, seed=2)
        ]
    )
    other = near_duplicates_of(ids, norms, sigs=sig2)
    text = dict(zip(ids, (r["problem"] for r in rows), strict=True))

    def true_j(d) -> float:
        a, b = set(shingles(text[d.row_id], 5)), set(shingles(text[d.duplicate_of], 5))
        return len(a & b) / len(a | b)

    def report(label: str, a: list, b: list) -> None:
        sa, sb = {d.row_id for d in a}, {d.row_id for d in b}
        diff = [d for d in a if d.row_id not in sb] + [d for d in b if d.row_id not in sa]
        hist = collections.Counter(f"{int(true_j(d) * 20) / 20:.2f}" for d in diff)
        print(
            f"  {label}: {len(sa)} vs {len(sb)}, both {len(sa & sb)}, set Jaccard "
            f"{len(sa & sb) / max(1, len(sa | sb)):.3f}; true Jaccard of the {len(diff)} "
            f"differences: {dict(sorted(hist.items()))}"
        )

    print(f"  {len(rows)} rows after exact dedup; datasketch {t_old:.1f} s, rensa {t_new:.1f} s")
    report("datasketch (seed 1) vs vectorised (rensa)", old, new)
    report("datasketch seed 1 vs datasketch seed 2 (same LSH)", old, other)


def minhash_speed(pool: Path, rows: int = 20_000) -> None:
    import numpy as np
    import pyarrow.parquet as pq
    from datasketch import MinHash

    from mathrecipes.minhash import digest_chunk
    from mathrecipes.neardup import shingles
    from mathrecipes.textnorm import gram_hashes, normalize_series

    texts = pq.read_table(pool, columns=["problem"])["problem"].to_pylist()[:rows]

    def timed(f) -> float:
        t = time.perf_counter()
        f()
        return time.perf_counter() - t

    def with_numpy() -> None:
        hashes, offsets = gram_hashes(normalize_series(texts), 5, empty_gram=True)
        rng = np.random.default_rng(1)
        a = rng.integers(1, 2**63, size=128, dtype=np.uint64) | np.uint64(1)
        b = rng.integers(0, 2**63, size=128, dtype=np.uint64)
        out = np.empty((len(texts), 128), np.uint32)
        for s in range(0, 128, 16):
            with np.errstate(over="ignore"):
                x = (hashes[:, None] * a[None, s : s + 16] + b[None, s : s + 16]) >> np.uint64(32)
            out[:, s : s + 16] = np.minimum.reduceat(x.astype(np.uint32), offsets[:-1], axis=0)

    def with_rensa() -> None:
        hashes, offsets = gram_hashes(normalize_series(texts), 5, empty_gram=True)
        digest_chunk(hashes, offsets, 128)

    def with_datasketch() -> None:
        MinHash.bulk([shingles(t, 5) for t in texts], num_perm=128, seed=1)

    for label, f in (("datasketch", with_datasketch), ("numpy", with_numpy), ("rensa", with_rensa)):
        s = timed(f)
        print(
            f"  signatures, {label}: {s:.2f} s for {len(texts)} rows ({len(texts) / s:,.0f} rows/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--ref", help="a commit to compare with (its src/, via git archive)")
    parser.add_argument("--pools", type=Path, default=Path("/tmp/mathrecipes-pools"))
    parser.add_argument("--agreement", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-select", action="store_true", help="time ingest only")
    parser.add_argument(
        "--per-row", action="store_true", help="time ingest's per-row path too (columnar=False)"
    )
    parser.add_argument("--minhash", action="store_true", help="time the MinHash libraries")
    parser.add_argument(
        "--shards", type=int, default=0, help="also run the sharded path with N row ranges"
    )
    parser.add_argument("--skip-single", action="store_true", help="no single-job select")
    args = parser.parse_args()
    args.pools.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        benches = benchmark_files(tmp)
        old_src = None
        if args.ref:
            old_src = tmp / "ref"
            old_src.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", args.ref, "src"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
            old_src = old_src / "src"
        for n in args.rows:
            pool = pool_file(n, args.pools)
            print(f"{n} rows ({pool}, {pool.stat().st_size / 1e6:.0f} MB):")
            if not args.skip_ingest:
                ingests = [("after", REPO / "src", ["columnar"])]
                if args.per_row:
                    ingests.append(("after, per-row path", REPO / "src", ["per-row"]))
                if old_src:
                    ingests.append(("before", old_src, []))
                outs = []
                for k, (label, src, extra) in enumerate(ingests):
                    out = tmp / f"ing{k}.parquet"
                    s, gb, _ = run_child(
                        INGEST, [str(pool), str(out), str(tmp / f"q{k}.parquet"), *extra], src
                    )
                    print(f"  ingest {label}: {s:.1f} s, {n / s:,.0f} rows/s, peak {gb:.2f} GB")
                    outs.append(out)
                for label, out in zip([i[0] for i in ingests[1:]], outs[1:], strict=True):
                    print(f"  ingest output equal to {label}: {same_parquet(outs[0], out)}")
                for out in outs:
                    out.unlink()
            if args.skip_select:
                continue
            runs = [] if args.skip_single else [("after", REPO / "src")]
            runs += [("before", old_src)] if old_src else []
            for label, src in runs:
                out = tmp / label
                s, gb, kept = run_child(
                    SELECT, [str(out), json.dumps(SPEC), str(pool), json.dumps(benches)], src
                )
                print(
                    f"  select {label}: {s:.1f} s, {n / s:,.0f} rows/s, peak {gb:.2f} GB, {kept} kept"
                )
            if old_src and not args.skip_single:
                compare(tmp / "before", tmp / "after")
            if args.shards:
                sharded(n, args.shards, pool, benches, tmp)
            if args.agreement:
                agreement(pool)
            if args.minhash:
                minhash_speed(pool)


if __name__ == "__main__":
    main()
