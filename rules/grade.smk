# Grading: Math-Verify in worker processes with hard per-item timeouts. A grader change re-grades
# cached generations and nothing else.


rule grade_generations:
    input:
        generations=rules.generate_answers.output.generations,
        benchmark=f"{R}/benchmarks/{{benchmark}}.parquet",
    output:
        grades=f"{R}/grades/{{student}}/{{recipe}}/seed-{{seed}}/{{benchmark}}.parquet",
        disagreements=f"{R}/grades/{{student}}/{{recipe}}/seed-{{seed}}/{{benchmark}}.disagreements.parquet",
        manifest=f"{R}/grades/{{student}}/{{recipe}}/seed-{{seed}}/{{benchmark}}.manifest.json",
    log:
        f"{R}/logs/grade_generations/{{student}}/{{recipe}}/seed-{{seed}}/{{benchmark}}.log",
    benchmark:
        f"{R}/runtime/grade_generations/{{student}}/{{recipe}}/seed-{{seed}}/{{benchmark}}.tsv"
    conda:
        "../envs/grade.yaml"
    threads: grade_threads
    resources:
        mem_mb=grade_mem_mb,
        runtime=grade_runtime,
    params:
        spec=grading_spec,
        code=fingerprint("grade"),
    script:
        "../scripts/grade_generations.py"
