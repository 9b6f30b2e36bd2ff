# Weakness-guided synthesis: a trained student answers a training split (the entry's probe),
# the grader finds its failures, and the failures' nearest neighbours in the entry's pool become
# the seeds that synthesize_shard turns into rows (mathrecipes.synthesis.weakness). The probe's
# generations and grades live under probes/, apart from the benchmark results and tables.


rule probe_answers:
    input:
        checkpoint=rules.train_student.output.checkpoint,
        benchmark=probe_split,
    output:
        generations=f"{PROBE}.parquet",
        manifest=f"{PROBE}.manifest.json",
    log:
        log_file("probe_answers", PROBING),
    benchmark:
        runtime_file("probe_answers", PROBING)
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
        resume_dir=resume_folder("probe", PROBING),
    script:
        "../scripts/generate_answers.py"


rule probe_grades:
    input:
        generations=rules.probe_answers.output.generations,
        benchmark=probe_split,
    output:
        grades=f"{PROBE}.grades.parquet",
        disagreements=f"{PROBE}.disagreements.parquet",
        manifest=f"{PROBE}.grades.manifest.json",
    log:
        log_file("probe_grades", PROBING),
    benchmark:
        runtime_file("probe_grades", PROBING)
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


rule weakness_seeds:
    input:
        unpack(weakness_seed_inputs),
    output:
        seeds=f"{SEEDS}.parquet",
        manifest=f"{SEEDS}.manifest.json",
    log:
        log_file("weakness_seeds", "{synth}"),
    benchmark:
        runtime_file("weakness_seeds", "{synth}")
    wildcard_constraints:
        synth=_alternatives(weakness_entries()) or "(?!)",
    conda:
        "../envs/data.yaml"
    threads: 2
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(60),
    params:
        spec=weakness_seeds_spec,
        code=fingerprint("weakness_seeds"),
    script:
        "../scripts/weakness_seeds.py"
