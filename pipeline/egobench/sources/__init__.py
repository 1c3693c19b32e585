"""The EgoBench readers: one module per benchmark, all with one interface,

    read(annotations, videos=None, *, exists=fs.exists, **options) -> Iterator[BenchItem | RecordFailure]

`annotations` is the benchmark's annotation folder (or one annotation file) as it ships, `videos` the root its
videos are found under (default: see each LAYOUT), `exists` the probe for a video file (Beam's
FileSystems.exists for remote roots; None trusts the first documented candidate without probing). Every row of
every file read ends up as exactly one item or one failure, in file order then row order. A reader may produce
items of several tasks (qaego4d: qaego4d_open + qaego4d_closed; egotaskqa: egotaskqa_direct + _indirect).
"""

from pipeline.egobench.sources import (
    charades_ego,
    egomcq,
    egoplan,
    egoschema,
    egotaskqa,
    epic_mir,
    qaego4d,
    vlnqa,
)

READERS = {
    "egoschema": egoschema.read,
    "qaego4d": qaego4d.read,
    "egotaskqa": egotaskqa.read,
    "egotaskqa_mcq": egotaskqa.read_mcq,
    "charades_ego": charades_ego.read,
    "epic_mir": epic_mir.read,
    "egoplan": egoplan.read,
    "vlnqa": vlnqa.read,
    "egomcq": egomcq.read,
}

# The tasks (pipeline/egobench/records.py TASKS) each reader produces.
READER_TASKS = {
    "egoschema": ("egoschema",),
    "qaego4d": ("qaego4d_open", "qaego4d_closed"),
    "egotaskqa": ("egotaskqa_direct", "egotaskqa_indirect"),
    "egotaskqa_mcq": ("egotaskqa_mcq",),
    "charades_ego": ("charades_ego",),
    "epic_mir": ("epic_mir",),
    "egoplan": ("egoplan",),
    "vlnqa": ("vlnqa",),
    "egomcq": ("egomcq",),
}

# The on-disk layout each reader expects (annotation files and video paths), as docs text (docs/egoit.md, docs/egobench.md).
LAYOUTS = {
    "egoschema": egoschema.LAYOUT,
    "qaego4d": qaego4d.LAYOUT,
    "egotaskqa": egotaskqa.LAYOUT,
    "egotaskqa_mcq": egotaskqa.LAYOUT_MCQ,
    "charades_ego": charades_ego.LAYOUT,
    "epic_mir": epic_mir.LAYOUT,
    "egoplan": egoplan.LAYOUT,
    "vlnqa": vlnqa.LAYOUT,
    "egomcq": egomcq.LAYOUT,
}
