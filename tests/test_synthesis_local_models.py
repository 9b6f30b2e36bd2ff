"""The rerun rule for synthesis entries whose teacher or judge runs a local model (hf, vllm).

Dry runs only: placeholder outputs are marked done with ``--touch --forceall`` (which records
each job's params), then single edits must schedule exactly the entries they concern. The files of a local
model folder (the teacher's or the judge's) are inputs, so editing one in place reruns the
entries that use it; the decoding code those backends share with student evaluation is part
of their code parameter, the judge's included; and the jobs' ``resources`` are no params at
all. The package runs from a copy (PYTHONPATH) so the test can edit its source.
"""

from __future__ import annotations

import pytest
import yaml
from helpers import TINY, J, planned_jobs, run_snakemake

pytestmark = pytest.mark.slow  # five Snakemake dry runs

OPENAI = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}


def model_folder(path):
    path.mkdir()
    (path / "config.json").write_text('{"model_type": "llama"}\n')
    (path / "model.safetensors").write_bytes(b"weights")
    return path


def test_local_model_files_code_and_resources_in_the_rerun_rule(tmp_path, pkg_env):
    src, env = pkg_env
    work = tmp_path
    judge = {"backend": "hf", "model": str(model_folder(work / "judge"))}
    teacher = {"backend": "vllm", "model": str(model_folder(work / "teacher"))}
    raw = yaml.safe_load(TINY.read_text())
    raw["synthesis"] = {
        "judged": {"from": "arith", "method": "rewrite", "teacher": OPENAI, "judge": judge},
        "served": {"from": "arith", "method": "rewrite", "teacher": OPENAI, "judge": OPENAI},
        "local": {"from": "arith", "teacher": teacher},
    }
    for entry in raw["synthesis"].values():
        entry["shards"] = 1
    raw["recipes"] = {"more": raw["recipes"]["more"]}  # the others use the tiny config's entries
    config = work / "c.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    outputs = [f"results/datasets/arith{x}" for x in (".parquet", ".quarantine.parquet",
                                                      ".manifest.json")]  # fmt: skip
    for name in raw["synthesis"]:
        outputs += [f"results/synth/{name}/shard-0{x}" for x in (".parquet", ".rejects.parquet",
                                                                 ".manifest.json")]  # fmt: skip
    for f in outputs:
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        (work / f).touch()
    args = ("--configfile", str(config))
    run_snakemake(work, *args, "--cores", "1", "--touch", "--forceall", "all_synthesis", env=env)

    def planned() -> set:
        return planned_jobs(run_snakemake(work, *args, "-n", "all_synthesis", env=env).stdout)

    # what the jobs ask the scheduler for is no param
    judge["resources"] = {"gpus": 2, "cpus": 3, "mem_mb": 5000, "runtime": 7}
    teacher["resources"] = {"cpus": 1, "mem_mb": 1000}
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert planned() == set()

    # the decoding code the local backends share with evaluation: the entries with a local
    # teacher or judge
    decoders = src / "mathrecipes" / "decoding" / "decoders.py"
    original = decoders.read_text()
    decoders.write_text(original + "\n# an edit\n")
    try:
        assert planned() == {
            J("synthesize_shard", synth="judged", shard=0),
            J("synthesize_shard", synth="local", shard=0),
            J("all_synthesis"),
        }
    finally:
        decoders.write_text(original)  # the same fingerprint again

    # a file of the judge's folder edited in place (the folder's own mtime does not change)
    with open(work / "judge" / "config.json", "a") as fh:
        fh.write("\n")
    dry = run_snakemake(work, *args, "-n", "all_synthesis", env=env).stdout
    assert planned_jobs(dry) == {J("synthesize_shard", synth="judged", shard=0), J("all_synthesis")}
    assert f"Updated input files: {work / 'judge' / 'config.json'}" in dry
