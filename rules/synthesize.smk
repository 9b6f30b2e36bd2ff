# Synthesis: one shard of one synthesis entry (distill, structure, rephrase). Entries may chain
# and are shared by every recipe that uses them. Prompt files are inputs and their sha256 params
# (editing a prompt reruns exactly the entries that use it); the local model folder of an hf or
# vllm teacher or judge is an input. How an openai teacher's (or judge's) server is reached
# (base_url, api_key_env, concurrency, timeouts, retries, on_unavailable) and where responses are
# cached are resources, not params: editing them reruns nothing (answers are cached under a key
# that holds none of them). A job whose teacher or judge runs a local model (hf, vllm) asks for
# its `resources` (GPUs, CPUs, memory, time) as a student's GPU jobs do; other jobs for 1 CPU.


rule synthesize_shard:
    input:
        unpack(synth_prompt_files),
        pool=synth_inputs,
        teacher=synth_teacher_files,
    output:
        shard=f"{SYNTH_SHARD}.parquet",
        rejects=f"{SYNTH_SHARD}.rejects.parquet",
        manifest=f"{SYNTH_SHARD}.manifest.json",
    log:
        log_file("synthesize_shard", SHARD),
    benchmark:
        runtime_file("synthesize_shard", SHARD)
    conda:
        "../envs/data.yaml"
    threads: synth_resource("cpus")
    resources:
        gpu=synth_resource("gpus"),
        cpus_per_gpu=synth_cpus_per_gpu(),
        mem_mb=synth_per_attempt("mem_mb"),
        runtime=synth_per_attempt("runtime"),
        teacher_base_url=synth_teacher_setting("teacher_base_url"),
        teacher_api_key_env=synth_teacher_setting("teacher_api_key_env"),
        teacher_concurrency=synth_teacher_setting("teacher_concurrency"),
        teacher_timeout_s=synth_teacher_setting("teacher_timeout_s"),
        teacher_max_retries=synth_teacher_setting("teacher_max_retries"),
        teacher_backoff_s=synth_teacher_setting("teacher_backoff_s"),
        teacher_on_unavailable=synth_teacher_setting("teacher_on_unavailable"),
        teacher_cache_dir=synth_teacher_setting("teacher_cache_dir"),
        judge_base_url=synth_teacher_setting("judge_base_url"),
        judge_api_key_env=synth_teacher_setting("judge_api_key_env"),
        judge_concurrency=synth_teacher_setting("judge_concurrency"),
        judge_timeout_s=synth_teacher_setting("judge_timeout_s"),
        judge_max_retries=synth_teacher_setting("judge_max_retries"),
        judge_backoff_s=synth_teacher_setting("judge_backoff_s"),
        judge_on_unavailable=synth_teacher_setting("judge_on_unavailable"),
        judge_cache_dir=synth_teacher_setting("judge_cache_dir"),
    params:
        spec=synth_spec,
        prompts=synth_prompt_hashes,
        code=synth_fingerprint(),
    script:
        "../scripts/synthesize_shard.py"
