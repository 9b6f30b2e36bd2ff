# Grading: Math-Verify in worker processes with hard per-item timeouts. A grader change re-grades
# cached generations and nothing else.


rule grade_generations:
    input:
        generations=rules.generate_answers.output.generations,
        benchmark=rules.build_benchmark.output.records,
    output:
        grades=f"{GRADES}.parquet",
        disagreements=f"{GRADES}.disagreements.parquet",
        manifest=f"{GRADES}.manifest.json",
    log:
        log_file("grade_generations", EVALUATION),
    benchmark:
        runtime_file("grade_generations", EVALUATION)
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
