"""The EgoIT source readers: one module per source dataset, all with one interface,

    read(annotations, videos=None, *, exists=fs.exists, **source_options)
        -> Iterator[SourceRecord | RecordFailure]

`annotations` is the dataset's annotation folder (or one annotation file) as the dataset ships it, `videos` the
root under which its videos are found (default: see each LAYOUT), `exists` the probe for a video file
(Beam's FileSystems.exists for remote roots; None trusts the default layout without probing). Every row of
every file read ends up as exactly one record or one failure, in file order then row order.
"""

from pipeline.egoit.sources import egoexolearn, egotimeqa, egtea, openeqa, ssv2

READERS = {
    "egtea": egtea.read,
    "ssv2": ssv2.read,
    "egotimeqa": egotimeqa.read,
    "openeqa": openeqa.read,
    "egoexolearn": egoexolearn.read,
}

# The on-disk layout each reader expects (annotation files and video paths), as docs text (docs/egoit.md, docs/egobench.md).
LAYOUTS = {
    "egtea": egtea.LAYOUT,
    "ssv2": ssv2.LAYOUT,
    "egotimeqa": egotimeqa.LAYOUT,
    "openeqa": openeqa.LAYOUT,
    "egoexolearn": egoexolearn.LAYOUT,
}
