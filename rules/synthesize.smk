# Synthesis: one shard of one synthesis entry (teacher distillation, ...). Entries may chain and
# are shared by every recipe that uses them.


rule synthesize_shard:
    input:
        pool=synth_inputs,
    output:
        shard=f"{R}/synth/{{synth}}/shard-{{shard}}.parquet",
        rejects=f"{R}/synth/{{synth}}/shard-{{shard}}.rejects.parquet",
        manifest=f"{R}/synth/{{synth}}/shard-{{shard}}.manifest.json",
    log:
        f"{R}/logs/synthesize_shard/{{synth}}/shard-{{shard}}.log",
    benchmark:
        f"{R}/runtime/synthesize_shard/{{synth}}/shard-{{shard}}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(60),
    params:
        spec=synth_spec,
        code=fingerprint("synthesize"),
    script:
        "../scripts/synthesize_shard.py"
