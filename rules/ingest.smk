# Ingest: configured sources -> canonical parquet (datasets for training, benchmarks for eval).


rule ingest_dataset:
    input:
        files=ingest_inputs("datasets"),
    output:
        records=f"{R}/datasets/{{dataset}}.parquet",
        quarantine=f"{R}/datasets/{{dataset}}.quarantine.parquet",
        manifest=f"{R}/datasets/{{dataset}}.manifest.json",
    log:
        f"{R}/logs/ingest_dataset/{{dataset}}.log",
    benchmark:
        f"{R}/runtime/ingest_dataset/{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(30),
    params:
        spec=dataset_spec,
        code=fingerprint("ingest"),
    script:
        "../scripts/ingest_dataset.py"


rule build_benchmark:
    input:
        files=ingest_inputs("benchmarks"),
    output:
        records=f"{R}/benchmarks/{{benchmark}}.parquet",
        quarantine=f"{R}/benchmarks/{{benchmark}}.quarantine.parquet",
        manifest=f"{R}/benchmarks/{{benchmark}}.manifest.json",
    log:
        f"{R}/logs/build_benchmark/{{benchmark}}.log",
    benchmark:
        f"{R}/runtime/build_benchmark/{{benchmark}}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
    params:
        spec=benchmark_spec,
        code=fingerprint("ingest"),
    script:
        "../scripts/build_benchmark.py"
