# Selection: gather, dedup, decontaminate, subsample and mix pools into one training set.


rule select_recipe:
    input:
        pools=select_pool_inputs,
        benchmarks=select_benchmark_inputs,
        unions=select_union_inputs,
    output:
        train=f"{RECIPE}/train.parquet",
        stats=f"{RECIPE}/stats.json",
        contamination=f"{RECIPE}/contamination.parquet",
        removed=f"{RECIPE}/removed.parquet",
        manifest=f"{RECIPE}/train.manifest.json",
    log:
        log_file("select_recipe", "{recipe}"),
    benchmark:
        runtime_file("select_recipe", "{recipe}")
    conda:
        "../envs/data.yaml"
    # polars' threads and near dedup's signature workers (mathrecipes.minhash)
    threads: 2
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
    params:
        spec=recipe_spec,
        pools=select_pools,
        pool_types=select_pool_types,
        benchmarks=select_benchmarks,
        unions=select_unions,
        code=fingerprint("select"),
    script:
        "../scripts/select_recipe.py"


# Sharded selection (selection.shards > 1; docs/selection.md): per pool and the settings that
# decide what is removed (not per recipe: recipes that differ in seed, volume or weights share
# these jobs), N signature jobs over row ranges, then one union job; select_recipe reads the
# union's kept rows.


rule select_signatures:
    input:
        pools=selection_pool_inputs,
        benchmarks=selection_benchmark_inputs,
    output:
        shard=f"{SELECTION}/shard-{{shard}}.parquet",
        manifest=f"{SELECTION}/shard-{{shard}}.manifest.json",
    log:
        log_file("select_signatures", "{pool}/{key}/shard-{shard}"),
    benchmark:
        runtime_file("select_signatures", "{pool}/{key}/shard-{shard}")
    conda:
        "../envs/data.yaml"
    # polars' threads and the signature workers (mathrecipes.minhash)
    threads: 2
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
    params:
        settings=selection_settings,
        shards=SELECTION_SHARDS,
        benchmarks=selection_benchmarks,
        code=fingerprint("select"),
    script:
        "../scripts/select_signatures.py"


rule select_union:
    input:
        shards=selection_shard_files,
    output:
        kept=f"{SELECTION}/kept.parquet",
        removed=f"{SELECTION}/removed.parquet",
        contamination=f"{SELECTION}/contamination.parquet",
        stats=f"{SELECTION}/stats.json",
        manifest=f"{SELECTION}/kept.manifest.json",
    log:
        log_file("select_union", "{pool}/{key}"),
    benchmark:
        runtime_file("select_union", "{pool}/{key}")
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
    params:
        settings=selection_settings,
        code=fingerprint("select"),
    script:
        "../scripts/select_union.py"
