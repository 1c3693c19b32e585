"""The items every EgoBench reader produces: one evaluation question (or retrieval query) with its clips.

    reader (one per benchmark)   annotation files -> BenchItem | RecordFailure  (pipeline/egobench/sources/)
    the Beam job                 items -> clips cut by the core -> egobench-<task> shards
    exo2ego_model/eval           shards -> predictions.jsonl -> metrics (exo2ego_model/eval/) -> table

Readers are pure functions over the annotation files (no Beam, no decoding): every row of every file ends up
either as a BenchItem or as a RecordFailure with a reason, so the tests can count both on the real files.
VideoRef and RecordFailure are the core's (pipeline/core/records.py), shared with EgoIT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.core.records import RecordFailure, VideoRef

__all__ = ["LAST_FRAME_TASKS", "METRICS", "TASKS", "BenchItem", "RecordFailure", "VideoRef"]

# task -> metric kind. "choice": one correct option among `options` (accuracy; generation + parse_choice, or
# option ranking by LM loss); "open": free-text answer (exact match, ROUGE-L, METEOR, sentence similarity);
# "multilabel": scores over `options` (the classes) against several correct ones (mAP); "retrieval": video-text
# similarity over the task's sentence set (EPIC-100 MIR mAP / nDCG); "video_choice": the query text against
# `videos` (EgoMCQ: which of 5 clips the narration describes; inter- / intra-video accuracy).
TASKS: dict[str, str] = {
    "egoschema": "choice",
    "qaego4d_closed": "choice",
    "qaego4d_open": "open",
    "egotaskqa_direct": "choice",
    "egotaskqa_indirect": "choice",
    "egotaskqa_mcq": "choice",
    "charades_ego": "multilabel",
    "epic_mir": "retrieval",
    "egoplan": "choice",
    "vlnqa": "choice",
    "egomcq": "video_choice",
}
METRICS = ("choice", "open", "multilabel", "retrieval", "video_choice")
# tasks whose question is about the clip's last frame (EgoPlan: "my current observation in the last frame"):
# frames mode samples it last (pipeline.core.clips.sample_frame_indices last=True), as the evaluator does
# (exo2ego_model/eval/protocol.py LAST_FRAME_TASKS)
LAST_FRAME_TASKS = ("egoplan",)


@dataclass(frozen=True)
class BenchItem:
    """One evaluation item.

    videos: the clip(s) the model sees, relative to the benchmark's video root (one for every task but EgoMCQ,
        whose 5 candidate clips are the options); a window in seconds or the whole file.
    question: the question / query text as the benchmark words it ("" for Charades-Ego and EPIC-100 MIR,
        whose prompt is the evaluator's).
    options: the candidate answers (choice), the class names (multilabel), the candidate clips' texts
        (video_choice, for reference), [] for open and retrieval (EPIC-100's sentences are the task's
        `sentence_ids`, shared by every item).
    answer: the index of the correct option (choice, video_choice), the indices of the positive classes
        (multilabel), the reference answer text (open), or the item's own sentence id (retrieval).
    metadata: source fields needed by the metric or kept for reference (e.g. EgoMCQ `types` 1 = inter-video,
        2 = intra-video, as the DATA defines them; EPIC-100 verb_class, noun_classes for the relevancy
        matrix; EgoSchema whether the answer is public).
    """

    task: str  # one of TASKS
    item_id: str  # unique within the task
    source_file: str
    videos: tuple[VideoRef, ...]
    question: str
    options: tuple[str, ...] = ()
    answer: int | tuple[int, ...] | str | None = None  # None: not public (EgoSchema outside the 500 subset)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return TASKS[self.task]
