# Selection: gather, dedup, decontaminate, subsample and mix pools into one training set.


rule select_recipe:
    input:
        pools=select_pool_inputs,
        benchmarks=select_benchmark_inputs,
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
        code=fingerprint("select"),
    script:
        "../scripts/select_recipe.py"
