# Tables and figure: scores per recipe x benchmark, intervals over seeds, deltas vs the baseline.


rule make_tables:
    input:
        grades=all_grade_files(),
        likelihood=all_likelihood_files(),
        checkpoints=all_checkpoint_dirs(),
        stats=expand(f"{RECIPE}/stats.json", recipe=sorted(CFG.recipes)),
    output:
        scores=report(
            f"{TABLES}/scores.csv",
            caption="../report/scores.rst",
            category="Results",
        ),
        markdown=f"{TABLES}/scores.md",
        latex=f"{TABLES}/scores.tex",
        per_seed=f"{TABLES}/per_seed.csv",
        provenance=f"{TABLES}/provenance.json",
        manifest=f"{TABLES}/manifest.json",
        figure=report(
            f"{FIGURES}/accuracy_vs_size.png",
            caption="../report/figure.rst",
            category="Results",
        ),
    log:
        log_file("make_tables"),
    benchmark:
        runtime_file("make_tables")
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    params:
        entries=table_entries,
        spec=tables_spec,
        code=fingerprint("tables"),
    script:
        "../scripts/make_tables.py"
