"""EgoIT: first-person instruction-tuning samples from five datasets (Exo2Ego stage 3), built by Beam.

    records.py               SourceRecord / EgoITItem: what readers produce and the converter makes of them
    sources/                 one reader per dataset (EGTEA Gaze+, SSv2, EgoTimeQA, OpenEQA, EgoExoLearn)
    labels.py, convert.py, templates.yaml   first-person text (the core's firstperson.py), 10 templates per
                             source, conversations
    dedup.py, mix.py         near-duplicate removal (sentence embeddings), per-source ratios and caps
    plan.py, samples.py, writer.py   items -> clips of each source video -> samples in the core's shards
    transforms.py, composites.py, build.py, finalize.py   the Beam job, stats + egoit.json
    builder.py               the dataset on the core's skeleton (pipeline/core/builder.py): options, `main`
"""

from pipeline.egoit.builder import BUILDER, main, parse_args, run

__all__ = ["BUILDER", "main", "parse_args", "run"]
