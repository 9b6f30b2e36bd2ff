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
    threads: student_resource("cpus")
    resources:
        gpu=student_resource("gpus"),
        mem_mb=student_resource("mem_mb"),
        runtime=student_resource("runtime"),
    params:
        spec=student_spec,
        code=fingerprint("train"),
    script:
        "../scripts/train_student.py"
