# Selection: gather, dedup, decontaminate, subsample and mix pools into one training set.


rule select_recipe:
    input:
        pools=select_pool_inputs,
        benchmarks=select_benchmark_inputs,
    output:
        train=f"{R}/recipes/{{recipe}}/train.parquet",
        stats=f"{R}/recipes/{{recipe}}/stats.json",
        contamination=f"{R}/recipes/{{recipe}}/contamination.parquet",
        removed=f"{R}/recipes/{{recipe}}/removed.parquet",
        manifest=f"{R}/recipes/{{recipe}}/train.manifest.json",
    log:
        f"{R}/logs/select_recipe/{{recipe}}.log",
    benchmark:
        f"{R}/runtime/select_recipe/{{recipe}}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(60),
    params:
        spec=recipe_spec,
        pools=select_pools,
        benchmarks=select_benchmarks,
        code=fingerprint("select"),
    script:
        "../scripts/select_recipe.py"
