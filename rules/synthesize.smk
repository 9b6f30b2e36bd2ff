# Synthesis: one shard of one synthesis entry (distill, structure, rephrase). Entries may chain
# and are shared by every recipe that uses them. Prompt files are inputs and their sha256 params
# (editing a prompt reruns exactly the entries that use it); a local hf teacher folder is an input.


rule synthesize_shard:
    input:
        unpack(synth_prompt_files),
        pool=synth_inputs,
        teacher=synth_teacher_files,
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
        prompts=synth_prompt_hashes,
        code=synth_fingerprint(),
    script:
        "../scripts/synthesize_shard.py"
