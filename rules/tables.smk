# Tables and figure: per recipe x benchmark and metric, paired intervals per problem against the
# baseline, Holm-corrected verdicts, the benchmarks' reliability (mathrecipes.tables, docs/tables.md).


rule make_tables:
    input:
        grades=all_grade_files() + all_reference_grade_files(),
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
        html=report(
            f"{TABLES}/scores.html",
            caption="../report/tables.rst",
            category="Results",
        ),
        reliability=f"{TABLES}/reliability.csv",
        agreement=f"{TABLES}/agreement.csv",
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
