from mathrecipes import runlog
from mathrecipes.ingest import ingest
from mathrecipes.provenance import Manifest

runlog.start(snakemake.log[0])
with Manifest("ingest", inputs=snakemake.input.files, params=snakemake.params.spec) as m:
    summary = ingest(
        snakemake.wildcards.benchmark,
        snakemake.params.spec,
        snakemake.output.records,
        snakemake.output.quarantine,
    )
    m.add(summary=summary)
    m.write([snakemake.output.records, snakemake.output.quarantine], snakemake.output.manifest)
