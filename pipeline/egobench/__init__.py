"""EgoBench: the eight zero-shot evaluation tasks of Exo2Ego, from their real formats, cut into shards.

    records.py, records_json.py   BenchItem (task, clips, question, options, answer) and its JSON form
    sources/                      one reader per benchmark (EgoSchema, QAEgo4D, EgoTaskQA, Charades-Ego,
                                  EPIC-KITCHENS-100 MIR, EgoPlan, VLN-QA, EgoMCQ)
"""
