# Generation: a checkpoint answers a benchmark (the expensive step, kept apart from grading).


rule generate_answers:
    input:
        checkpoint=rules.train_student.output.checkpoint,
        benchmark=f"{R}/benchmarks/{{benchmark}}.parquet",
    output:
        generations=f"{R}/generations/{{student}}/{{recipe}}/seed-{{seed}}/{{benchmark}}.parquet",
        manifest=f"{R}/generations/{{student}}/{{recipe}}/seed-{{seed}}/{{benchmark}}.manifest.json",
    log:
        f"{R}/logs/generate_answers/{{student}}/{{recipe}}/seed-{{seed}}/{{benchmark}}.log",
    benchmark:
        f"{R}/runtime/generate_answers/{{student}}/{{recipe}}/seed-{{seed}}/{{benchmark}}.tsv"
    conda:
        "../envs/train.yaml"
    threads: student_threads
    resources:
        gpu=student_gpus,
        cpus_per_gpu=student_cpus_per_gpu,
        mem_mb=student_mem_mb,
        runtime=generate_runtime,
    params:
        spec=generation_spec,
        code=fingerprint("generate"),
        # finished batches of a preempted or killed attempt (not an output: Snakemake deletes a
        # failed job's outputs); a rerun resumes from them, the job deletes them when done
        resume_dir=f"{R}/resume/generate/{{student}}/{{recipe}}/seed-{{seed}}/{{benchmark}}",
    script:
        "../scripts/generate_answers.py"
