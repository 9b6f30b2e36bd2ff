# Likelihood: how likely each checkpoint finds a benchmark's reference solutions (teacher-forced
# NLL and bits per byte); reads the checkpoint and the benchmark, never generations or grades.


rule score_likelihood:
    input:
        unpack(eval_prompt_inputs),
        checkpoint=rules.train_student.output.checkpoint,
        benchmark=rules.build_benchmark.output.records,
    output:
        likelihood=f"{LIKELIHOOD}.parquet",
        manifest=f"{LIKELIHOOD}.manifest.json",
    log:
        log_file("score_likelihood", EVALUATION),
    benchmark:
        runtime_file("score_likelihood", EVALUATION)
    conda:
        "../envs/train.yaml"
    threads: student_resource("cpus")
    resources:
        gpu=student_resource("gpus"),
        cpus_per_gpu=student_cpus_per_gpu(),
        mem_mb=student_mem_mb(),
        runtime=likelihood_runtime,
    params:
        spec=likelihood_spec,
        code=fingerprint("likelihood"),
        # finished batches of a preempted or killed attempt; a rerun resumes from them
        resume_dir=resume_folder("likelihood", EVALUATION),
    script:
        "../scripts/score_likelihood.py"
