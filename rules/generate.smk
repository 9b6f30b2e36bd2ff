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
    threads: student_resource("cpus")
    resources:
        gpu=student_resource("gpus"),
        mem_mb=student_resource("mem_mb"),
        runtime=student_resource("runtime"),
    params:
        spec=generation_spec,
        code=fingerprint("generate"),
    script:
        "../scripts/generate_answers.py"
