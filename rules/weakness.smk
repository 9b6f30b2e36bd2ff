# Weakness-guided synthesis: a trained student answers a training split (the entry's probe),
# the grader finds its failures, and the failures' nearest neighbours in the entry's pool become
# the seeds that synthesize_shard turns into rows (mathrecipes.synthesis.weakness). The probe's
# generations and grades live under probes/, apart from the benchmark results and tables.


rule probe_answers:
    input:
        checkpoint=rules.train_student.output.checkpoint,
        benchmark=f"{R}/datasets/{{probe}}.parquet",
    output:
        generations=f"{R}/probes/{{student}}/{{recipe}}/seed-{{seed}}/{{probe}}.parquet",
        manifest=f"{R}/probes/{{student}}/{{recipe}}/seed-{{seed}}/{{probe}}.manifest.json",
    log:
        f"{R}/logs/probe_answers/{{student}}/{{recipe}}/seed-{{seed}}/{{probe}}.log",
    benchmark:
        f"{R}/runtime/probe_answers/{{student}}/{{recipe}}/seed-{{seed}}/{{probe}}.tsv"
    wildcard_constraints:
        probe=_alternatives(probe_datasets()) or "(?!)",
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
        resume_dir=f"{R}/resume/probe/{{student}}/{{recipe}}/seed-{{seed}}/{{probe}}",
    script:
        "../scripts/generate_answers.py"


rule probe_grades:
    input:
        generations=rules.probe_answers.output.generations,
        benchmark=f"{R}/datasets/{{probe}}.parquet",
    output:
        grades=f"{R}/probes/{{student}}/{{recipe}}/seed-{{seed}}/{{probe}}.grades.parquet",
        disagreements=f"{R}/probes/{{student}}/{{recipe}}/seed-{{seed}}/{{probe}}.disagreements.parquet",
        manifest=f"{R}/probes/{{student}}/{{recipe}}/seed-{{seed}}/{{probe}}.grades.manifest.json",
    log:
        f"{R}/logs/probe_grades/{{student}}/{{recipe}}/seed-{{seed}}/{{probe}}.log",
    benchmark:
        f"{R}/runtime/probe_grades/{{student}}/{{recipe}}/seed-{{seed}}/{{probe}}.tsv"
    wildcard_constraints:
        probe=_alternatives(probe_datasets()) or "(?!)",
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


rule weakness_seeds:
    input:
        unpack(weakness_seed_inputs),
    output:
        seeds=f"{R}/synth/{{synth}}/seeds.parquet",
        manifest=f"{R}/synth/{{synth}}/seeds.manifest.json",
    log:
        f"{R}/logs/weakness_seeds/{{synth}}.log",
    benchmark:
        f"{R}/runtime/weakness_seeds/{{synth}}.tsv"
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
