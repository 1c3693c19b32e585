"""EgoBench: the eight zero-shot evaluation benchmarks of Exo2Ego (11 tasks), from their real formats, cut
into shards, one shard set per task (egobench-<task>-NNNNNN.tar).

    records.py, records_json.py   BenchItem (task, clips, question, options, answer) and its JSON form
    sources/                      one reader per benchmark (EgoSchema, QAEgo4D, EgoTaskQA, Charades-Ego,
                                  EPIC-KITCHENS-100 MIR, EgoPlan, VLN-QA, EgoMCQ)
    plan.py, samples.py, writer.py   items -> frame ranges of each source -> samples in the core's shards
    transforms.py, composites.py, build.py, finalize.py   the Beam job, stats + sentence set
    builder.py                    the dataset on the core's skeleton (pipeline/core/builder.py): options, `main`
"""
