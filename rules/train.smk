# Training: one student on one recipe's training set with one seed.


rule train_student:
    input:
        train=rules.select_recipe.output.train,
        init=train_init_inputs,
    output:
        checkpoint=directory(f"{R}/checkpoints/{{student}}/{{recipe}}/seed-{{seed}}"),
    log:
        f"{R}/logs/train_student/{{student}}/{{recipe}}/seed-{{seed}}.log",
    benchmark:
        f"{R}/runtime/train_student/{{student}}/{{recipe}}/seed-{{seed}}.tsv"
    conda:
        "../envs/train.yaml"
    threads: student_threads
    resources:
        gpu=student_gpus,
        cpus_per_gpu=student_cpus_per_gpu,
        mem_mb=student_mem_mb,
        runtime=train_runtime,
        # how often resumable state is saved: not a result setting, so not a param
        checkpoint_steps=student_checkpointing("every_steps"),
        checkpoint_s=student_checkpointing("every_s"),
    params:
        spec=student_spec,
        code=fingerprint("train"),
        resume_dir=f"{R}/resume/train/{{student}}/{{recipe}}/seed-{{seed}}",
    script:
        "../scripts/train_student.py"
