# Tables and figure: scores per recipe x benchmark, intervals over seeds, deltas vs the baseline.


rule make_tables:
    input:
        grades=all_grade_files(),
        checkpoints=all_checkpoint_dirs(),
        stats=[f"{R}/recipes/{r}/stats.json" for r in sorted(CFG.recipes)],
    output:
        scores=report(
            f"{R}/tables/scores.csv",
            caption="../report/scores.rst",
            category="Results",
        ),
        markdown=f"{R}/tables/scores.md",
        latex=f"{R}/tables/scores.tex",
        per_seed=f"{R}/tables/per_seed.csv",
        provenance=f"{R}/tables/provenance.json",
        manifest=f"{R}/tables/manifest.json",
        figure=report(
            f"{R}/figures/accuracy_vs_size.png",
            caption="../report/figure.rst",
            category="Results",
        ),
    log:
        f"{R}/logs/make_tables.log",
    benchmark:
        f"{R}/runtime/make_tables.tsv"
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
