# Generation: a checkpoint answers a benchmark (the expensive step, kept apart from grading).


rule generate_answers:
    input:
        unpack(eval_prompt_inputs),
        checkpoint=rules.train_student.output.checkpoint,
        benchmark=rules.build_benchmark.output.records,
    output:
        generations=f"{GENERATIONS}.parquet",
        manifest=f"{GENERATIONS}.manifest.json",
    log:
        log_file("generate_answers", EVALUATION),
    benchmark:
        runtime_file("generate_answers", EVALUATION)
    conda:
        "../envs/train.yaml"
    threads: student_resource("cpus")
    resources:
        gpu=student_resource("gpus"),
        cpus_per_gpu=student_cpus_per_gpu(),
        mem_mb=student_mem_mb(),
        runtime=generate_runtime,
    params:
        spec=generation_params(),
        code=fingerprint("generate"),
        # finished batches of a preempted or killed attempt; a rerun resumes from them
        resume_dir=resume_folder("generate", EVALUATION),
    script:
        "../scripts/generate_answers.py"
