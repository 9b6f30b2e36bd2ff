# References: a served model that is not trained here (references.<name>) answers every benchmark
# through an OpenAI-compatible server, and is graded as the students are (docs/references.md).
# How the server is reached (base_url, api_key_env, concurrency, retries, cache_dir) travels as
# resources: editing it reruns nothing; a rerun of a killed job resends only what the response
# cache lacks.


rule generate_reference:
    input:
        unpack(eval_prompt_inputs),
        benchmark=rules.build_benchmark.output.records,
    output:
        generations=f"{REFERENCE_GENERATIONS}.parquet",
        manifest=f"{REFERENCE_GENERATIONS}.manifest.json",
    log:
        log_file("generate_reference", REFERENCE_EVALUATION),
    benchmark:
        runtime_file("generate_reference", REFERENCE_EVALUATION)
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=reference_runtime,
        reference_base_url=reference_setting("reference_base_url"),
        reference_api_key_env=reference_setting("reference_api_key_env"),
        reference_concurrency=reference_setting("reference_concurrency"),
        reference_timeout_s=reference_setting("reference_timeout_s"),
        reference_max_retries=reference_setting("reference_max_retries"),
        reference_backoff_s=reference_setting("reference_backoff_s"),
        reference_on_unavailable=reference_setting("reference_on_unavailable"),
        reference_cache_dir=reference_setting("reference_cache_dir"),
    params:
        spec=reference_spec,
        code=fingerprint("reference"),
    script:
        "../scripts/generate_reference.py"


rule grade_reference:
    input:
        generations=rules.generate_reference.output.generations,
        benchmark=rules.build_benchmark.output.records,
    output:
        grades=f"{REFERENCE_GRADES}.parquet",
        disagreements=f"{REFERENCE_GRADES}.disagreements.parquet",
        manifest=f"{REFERENCE_GRADES}.manifest.json",
    log:
        log_file("grade_reference", REFERENCE_EVALUATION),
    benchmark:
        runtime_file("grade_reference", REFERENCE_EVALUATION)
    conda:
        "../envs/grade.yaml"
    threads: grade_threads()
    resources:
        mem_mb=grade_mem_mb(),
        runtime=grade_runtime,
    params:
        spec=grading_params(),
        code=fingerprint("grade"),
    script:
        "../scripts/grade_generations.py"
