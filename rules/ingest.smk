# Ingest: configured sources -> canonical parquet (datasets for training, benchmarks for eval).


rule ingest_dataset:
    input:
        files=ingest_inputs("datasets"),
    output:
        records=f"{DATASET}.parquet",
        quarantine=f"{DATASET}.quarantine.parquet",
        manifest=f"{DATASET}.manifest.json",
    log:
        log_file("ingest_dataset", "{dataset}"),
    benchmark:
        runtime_file("ingest_dataset", "{dataset}")
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
        records=f"{BENCHMARK}.parquet",
        quarantine=f"{BENCHMARK}.quarantine.parquet",
        manifest=f"{BENCHMARK}.manifest.json",
    log:
        log_file("build_benchmark", "{benchmark}"),
    benchmark:
        runtime_file("build_benchmark", "{benchmark}")
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
