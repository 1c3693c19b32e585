"""EgoIT's --validate (pipeline/core/validate.py): each source's reader run without videos, then the
first-person conversion of every record read, as the build's ReadSourceFn and ConvertFn do (no dedup model, no
mixing, no probe). A record is bad when the reader rejects it or its conversion fails.
"""

from __future__ import annotations

import inspect

from pipeline.egoit import mix
from pipeline.egoit.convert import load_templates, to_items
from pipeline.egoit.plan import ItemFailure
from pipeline.egoit.records import RecordFailure
from pipeline.egoit.sources import READERS


def one_frame(folder: str) -> list[str]:
    """A listing of an image-sequence folder (OpenEQA's episodes) that reads nothing: one frame."""
    return ["0-rgb.png"]


def source_rows(spec, templates_path: str | None, val_fraction: float, seed: int):
    """rows() of one source spec: None per good record, the failure a build reports otherwise."""

    def rows():
        reader = READERS[spec.name]
        no_videos = {"exists": None}
        if "listdir" in inspect.signature(reader).parameters:
            no_videos["listdir"] = one_frame
        templates = load_templates(templates_path)
        for out in reader(spec.annotations, spec.videos, **no_videos, **spec.reader_options()):
            if isinstance(out, RecordFailure):
                yield ItemFailure.from_record_failure(out)
                continue
            rank = mix.item_rank(f"split:{out.source}:{out.video_id}", seed)
            split = "val" if rank < val_fraction else "train"
            try:
                to_items(out, templates, split=split)
            except (ValueError, KeyError, TypeError) as err:
                yield ItemFailure("conversion failed", "record", out.source, split, out.record_id,
                                  video=out.video.path, file=out.source_file, detail=str(err)[:300])  # fmt: skip
                continue
            yield None

    return rows


def validate_sources(cfg) -> dict:
    return {s.name: source_rows(s, cfg.templates, cfg.val_fraction, cfg.seed) for s in cfg.sources}
