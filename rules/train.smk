# Training: one student on one recipe's training set with one seed.


rule train_student:
    input:
        train=rules.select_recipe.output.train,
        init=train_init_inputs,
    output:
        checkpoint=directory(CHECKPOINT),
    log:
        log_file("train_student", RUN),
    benchmark:
        runtime_file("train_student", RUN)
    conda:
        "../envs/train.yaml"
    threads: student_resource("cpus")
    resources:
        gpu=student_resource("gpus"),
        cpus_per_gpu=student_cpus_per_gpu(),
        mem_mb=student_mem_mb(),
        runtime=train_runtime(),
        # how often resumable state is saved: not a result setting, so not a param
        checkpoint_steps=student_checkpointing("every_steps"),
        checkpoint_s=student_checkpointing("every_s"),
    params:
        spec=student_spec,
        code=fingerprint("train"),
        resume_dir=resume_folder("train", RUN),
    script:
        "../scripts/train_student.py"
