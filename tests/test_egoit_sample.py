"""The bundled EgoIT mini-release: readers on it give the designed records and failures, every video is where its
row says, as long as its window, stamped with its own code; the rows are verbatim real rows; reruns are
byte-identical."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import subprocess
from collections import Counter
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from pipeline.core.clips import ExtractionError, probe_video, read_frames
from pipeline.core.config import load_config_file
from pipeline.core.framecode import decode_frame
from pipeline.egoit.build import config_from_mapping
from pipeline.egoit.records import SOURCES, RecordFailure, SourceRecord
from pipeline.egoit.sources import READERS
from tests.conftest import SHARED_REAL, needs_real
from tools.samples.egoit import (
    ANNOTATIONS,
    CODE_BASE,
    CODE_END,
    ROWS,
    generate_sample,
    main,
    media_specs,
)

# The designed outcome of each reader on the mini-release: records, and failing rows by reason (their ids).
EXPECTED = {
    "egtea": (17, {"label mismatch": ["P02-R06-GreekSalad-311565-321545-F007453-F007742"]}),
    "ssv2": (9, {"video not found": ["137878"]}),
    "egotimeqa": (10, {}),
    "openeqa": (8, {"episode not found": ["28ea4932-55bf-44b3-9a48-73fde896b8ce"]}),
    "egoexolearn": (9, {"multi-video caption": ["8pRbwiLJ"]}),  # "Video 1: ... Video 2: ...", a real cell
}
SESSION_CLIP = "OP06-R06-GreekSalad-27140-28860-F000647-F000697"
TRUNCATED = "egotimeqa/ego4d/v2/clips/76e6cc56-a425-564f-8ed2-1fc3bbc8477c.mp4"
MISSING_VIDEO = "ssv2/20bn-something-something-v2/137878.webm"
MISSING_EPISODE = "openeqa/frames/hm3d-v0/002-hm3d-wcojb4TFT35"
FPS = {"egtea": 24, "ssv2": 12, "egotimeqa": 30, "egoexolearn": 30}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("egoit_sample"))


@pytest.fixture(scope="module")
def config(sample):
    return config_from_mapping(load_config_file(str(sample / "egoit.yaml")), "unused-out", sample)


@pytest.fixture(scope="module")
def outputs(config) -> dict[str, list]:
    """source -> everything its reader yields with the options and roots of egoit.yaml."""
    return {s.name: list(READERS[s.name](s.annotations, s.videos, **s.reader_options())) for s in config.sources}


@pytest.fixture(scope="module")
def codes(sample) -> dict[str, int]:
    return json.loads((sample / "stamp_codes.json").read_text())


def _records(outputs, source) -> list[SourceRecord]:
    return [o for o in outputs[source] if isinstance(o, SourceRecord)]


def _file_of(config, sample, record: SourceRecord) -> str:
    """The record's video (or frame folder) as a path relative to the sample root."""
    root = Path(next(s.videos for s in config.sources if s.name == record.source))
    return (root / record.video.path).relative_to(sample).as_posix()


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_config_covers_every_source_with_sample_paths(sample, config):
    assert sorted(s.name for s in config.sources) == sorted(SOURCES)
    assert config.max_samples_per_shard == 40
    by_name = {s.name: s for s in config.sources}
    assert by_name["openeqa"].videos == str(sample / "openeqa" / "frames")
    assert by_name["egotimeqa"].videos == str(sample / "egotimeqa" / "ego4d")
    assert by_name["ssv2"].options == {"splits": ["validation"]}
    for spec in config.sources:  # every root exists and lies inside the sample
        assert Path(spec.annotations).exists() and Path(spec.videos).is_dir()
        assert Path(spec.videos).is_relative_to(sample)


@pytest.mark.parametrize("source", SOURCES)
def test_reader_gives_the_designed_records_and_failures(outputs, source):
    n_records, failing = EXPECTED[source]
    failures = [o for o in outputs[source] if isinstance(o, RecordFailure)]
    assert len(_records(outputs, source)) == n_records
    assert Counter(f.reason for f in failures) == {reason: len(ids) for reason, ids in failing.items()}
    for reason, ids in failing.items():
        named = [f.record for f in failures if f.reason == reason]
        assert all(any(i in r for r in named) for i in ids), named


def test_annotation_files_are_the_sample_rows(sample):
    for src, dst in ANNOTATIONS.items():
        assert (sample / dst).read_bytes() == (ROWS / src).read_bytes(), dst


def test_stamp_codes_are_distinct_and_name_every_generated_file(sample, codes):
    assert len(set(codes.values())) == len(codes) == 40
    specs = media_specs()
    assert codes == {s.path: s.code for s in specs if s.state != "missing"}
    for path, code in codes.items():
        source = path.split("/")[0]
        assert CODE_BASE[source] <= code < CODE_END[source] and code >= 64  # never an Ego-ExoClip camera code
        assert (sample / path).exists()
    missing = {s.path for s in specs if s.state == "missing"}
    assert missing == {MISSING_VIDEO, MISSING_EPISODE}
    assert not any((sample / p).exists() for p in missing)


def test_every_record_video_exists_except_the_designed_missing_ones(sample, config, outputs):
    for source in SOURCES:
        for record in _records(outputs, source):
            assert (sample / _file_of(config, sample, record)).exists()
    # trusting the first layout candidate without probing, the readers name the absent files: exactly the
    # designed ones (OpenEQA lists its folders instead, so its missing episode is a failure either way)
    absent = set()
    for spec in config.sources:
        for out in READERS[spec.name](spec.annotations, spec.videos, **spec.reader_options(), exists=None):
            if isinstance(out, SourceRecord) and not (sample / _file_of(config, sample, out)).exists():
                absent.add(_file_of(config, sample, out))
    assert absent == {MISSING_VIDEO, f"egtea/cropped_clips/OP06-R06-GreekSalad/{SESSION_CLIP}.mp4"}


def _expected_min_frames(record: SourceRecord) -> int:
    """Frames the file needs, from the row itself: the clip's duration, or its window's end."""
    fps = FPS[record.source]
    if record.source == "egtea" and record.video.end_sec is None:
        return round((record.fields["end_ms"] - record.fields["start_ms"]) * fps / 1000)
    if record.video.end_sec is not None:
        return math.ceil(record.video.end_sec * fps)
    return 1


def test_videos_probe_to_their_rows_and_decode_to_their_stamps(sample, config, outputs, codes):
    specs = {s.path: s for s in media_specs()}
    seen = set()
    for source in ("egtea", "ssv2", "egotimeqa", "egoexolearn"):
        for record in _records(outputs, source):
            path = _file_of(config, sample, record)
            spec = specs[path]
            if path == TRUNCATED:
                continue
            info = probe_video(str(sample / path))
            assert (info.n_frames, info.fps, info.width, info.height) == (
                spec.n_frames, FPS[source], spec.width, spec.height
            )  # fmt: skip
            assert info.codec == ("vp9" if source == "ssv2" else "h264")
            assert info.n_frames >= _expected_min_frames(record), (path, record.video)
            if record.source == "egtea" and record.video.end_sec is None:  # the cropped clip: exactly its length
                assert info.n_frames == _expected_min_frames(record)
            if path in seen:
                continue
            seen.add(path)
            frames = read_frames(str(sample / path), pix_fmt="gray")
            assert len(frames) == info.n_frames
            for j in sorted({0, len(frames) // 2, len(frames) - 1}):
                assert decode_frame(frames[j]) == (codes[path], j), (path, j)
    assert len(seen) == 9 + 17 + 2 + 6  # ssv2, EGTEA (16 cropped clips + 1 session), readable Ego4D, EgoExoLearn


def test_egtea_clip_without_cropped_file_is_cut_from_its_session_video(sample, config, outputs, codes):
    by_id = {r.record_id: r for r in _records(outputs, "egtea")}
    session = by_id[SESSION_CLIP].video
    assert (session.path, session.start_sec, session.end_sec) == ("videos/OP06-R06-GreekSalad.mp4", 27.14, 28.86)
    assert not (sample / f"egtea/cropped_clips/OP06-R06-GreekSalad/{SESSION_CLIP}.mp4").exists()
    assert all(r.video.path.startswith("cropped_clips/") for i, r in by_id.items() if i != SESSION_CLIP)
    frames = read_frames(str(sample / "egtea" / session.path), pix_fmt="gray")
    first, last = round(27.14 * 24), math.ceil(28.86 * 24) - 1  # the window's frames are in the file
    assert len(frames) > last
    code = codes["egtea/videos/OP06-R06-GreekSalad.mp4"]
    assert [decode_frame(frames[j]) for j in (first, last)] == [(code, first), (code, last)]


def test_egtea_has_multi_noun_rows_and_several_clips_of_one_session(outputs):
    records = _records(outputs, "egtea")
    assert Counter(len(r.fields["nouns"]) for r in records) == {1: 11, 2: 3, 3: 3}
    sessions = Counter(r.video_id for r in records)
    assert len(sessions) == 10 and sessions["P02-R06-GreekSalad"] == 8  # + the mismatching row: 9 in the file
    assert Counter(r.source_split for r in records) == {"train": 11, "test": 6}


def test_ssv2_webm_files_are_vp9_without_audio_some_at_the_real_odd_size(sample, outputs):
    records = _records(outputs, "ssv2")
    sizes = Counter()
    for record in records:
        path = sample / "ssv2" / record.video.path
        assert path.suffix == ".webm" and path.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML (Matroska/WebM)
        info = probe_video(str(path))
        sizes[(info.width, info.height)] += 1
        header = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                                capture_output=True, text=True).stderr  # fmt: skip
        assert "Video: vp9" in header and "Audio:" not in header
    assert sizes == {(427, 240): 2, (214, 120): 7}
    templates = [r.fields["template"] for r in records]
    assert any(t.count("[") >= 2 for t in templates) and any(t.count("[") == 3 for t in templates)
    assert any("your camera" in t for t in templates) and any(t.startswith("Pretending") for t in templates)


def test_truncated_ego4d_clip_fails_probing_and_only_its_row_points_at_it(sample, config, outputs):
    with pytest.raises(ExtractionError) as err:
        probe_video(str(sample / TRUNCATED))
    assert err.value.reason in ("corrupt video", "unreadable video")
    on_it = [r for r in _records(outputs, "egotimeqa") if _file_of(config, sample, r) == TRUNCATED]
    assert [r.fields["answer"] for r in on_it] == ["the car keys"]
    broken = []
    for path in sorted(p.relative_to(sample).as_posix() for p in sample.rglob("*.mp4")):
        try:
            probe_video(str(sample / path))
        except ExtractionError:
            broken.append(path)
    assert broken == [TRUNCATED]


def test_egotimeqa_windows_and_designed_rows(outputs):
    records = _records(outputs, "egotimeqa")
    assert Counter(r.video_id for r in records) == {
        "16fc2d81-e55c-4a3b-a298-b9d0272e9815": 5,
        "d9919e0c-aebc-5c29-934a-fe1454ab16b9": 4,
        "76e6cc56-a425-564f-8ed2-1fc3bbc8477c": 1,
    }
    assert [r.fields["question"] for r in records if not r.fields["wrong_answers"]] == ["How many cups did I wash?"]
    assert len({r.record_id for r in records}) == 10  # one sample_id per clip (the real format), one id per QA
    put, place = (next(r for r in records if r.fields["question"] == q)
                  for q in ("What did I put in the fridge?", "What did I place in the fridge?"))  # fmt: skip
    assert (put.fields["answer"], place.fields["answer"]) == ("milk", "the milk")
    assert put.video_id == place.video_id
    assert put.video.start_sec == pytest.approx(2400.3 / 30) and place.video.end_sec == pytest.approx(2622.4 / 30)
    assert place.video.start_sec < put.video.end_sec  # overlapping moments
    coffee = next(r for r in records if r.fields["question"] == "What did I do with the coffee?")
    assert coffee.fields["moment_start_sec"] == pytest.approx(3601.4243095096826 / 30)


def test_openeqa_frames_exist_and_decode_to_their_episode_and_number(sample, config, outputs, codes):
    records = _records(outputs, "openeqa")
    assert len({r.video_id for r in records}) == 4
    assert sum(bool(r.fields["extra_answers"]) for r in records) == 1
    duplicates = [r for r in records if r.fields["question"] == "is the outside door open or closed?"]
    assert len(duplicates) == 2 and len({r.video_id for r in duplicates}) == 1
    for record in records:
        folder = _file_of(config, sample, record)
        assert len(record.video.frames) == 16
        assert all(name.endswith("-rgb.png") for name in record.video.frames)  # the depth frame is ignored
        assert any(p.name.endswith("-depth.png") for p in (sample / folder).iterdir())
        for name in record.video.frames[::5]:
            pixels = np.asarray(Image.open(sample / folder / name))
            assert decode_frame(pixels) == (codes[folder], int(name.split("-")[0]))
        digits = {len(name.split("-")[0]) for name in record.video.frames}
        assert digits == ({5} if record.video_id.startswith("hm3d-v0/") else {6})  # as the real episodes


@needs_real
def test_line_samples_are_verbatim_lines_of_the_real_files():
    real = SHARED_REAL / "egtea_gaze_plus"
    for name in ("action_idx.txt", "verb_idx.txt", "noun_idx.txt"):
        assert (ROWS / "egtea" / name).read_bytes() == (real / name).read_bytes()
    pairs = [(ROWS / "egtea" / n, real / n) for n in ("train_split1.txt", "test_split1.txt")]
    ssv2 = SHARED_REAL / "something_something_v2"
    assert (ROWS / "ssv2/something-something-v2-labels.json").read_bytes() == (
        ssv2 / "something-something-v2-labels.json"
    ).read_bytes()
    validation = "something-something-v2-validation.json"
    pairs.append((ROWS / "ssv2" / validation, ssv2 / validation))
    for sample_file, real_file in pairs:
        real_lines = real_file.read_bytes().splitlines(keepends=True)
        positions = {line: i for i, line in enumerate(real_lines)}
        sample_lines = sample_file.read_bytes().splitlines(keepends=True)
        found = [positions.get(line) for line in sample_lines]
        assert None not in found, sample_file
        assert found == sorted(found) and len(set(found)) == len(found)  # original order, no repeats
    assert b"\r\n" in (ROWS / "ssv2/something-something-v2-validation.json").read_bytes()  # CRLF kept
    train = (ROWS / "egtea/train_split1.txt").read_text().splitlines()
    assert "P02-R06-GreekSalad-311565-321545-F007453-F007742 85 16 47 29 14" in train
    assert {len(line.split()) for line in train} == {4, 5, 6}


def _csv_records(data: bytes) -> list[bytes]:
    """The raw bytes of each CSV record (a record ends where its quotes are balanced)."""
    out, cur = [], b""
    for line in data.splitlines(keepends=True):
        cur += line
        if cur.count(b'"') % 2 == 0:
            out.append(cur)
            cur = b""
    assert cur == b""
    return out


@needs_real
def test_record_samples_are_verbatim_records_of_the_real_files():
    real = (SHARED_REAL / "openeqa" / "open-eqa-v0.json").read_bytes()
    sample = (ROWS / "openeqa" / "open-eqa-v0.json").read_bytes()
    assert sample.startswith(b"[\n  {") and sample.endswith(b"  }\n]") and real.endswith(b"  }\n]")
    blocks = [b"  {" + block for block in sample[2:-2].split(b"  {")[1:]]
    assert len(blocks) == 9 and all(block in real for block in blocks)
    real_items, items = json.loads(real), json.loads(sample)
    where = [real_items.index(item) for item in items]
    assert where == sorted(where) and where[-1] == len(real_items) - 1
    assert len({item["episode_history"].split("/")[0] for item in items}) == 2

    real = (SHARED_REAL / "egoexolearn" / "exo_train.csv").read_bytes()
    sample = (ROWS / "egoexolearn" / "exo_train.csv").read_bytes()
    real_records, records = _csv_records(real), _csv_records(sample)
    assert records[0] == real_records[0]  # the header
    where = [real_records.index(r) for r in records[1:]]
    assert len(where) == 10 and where == sorted(where)
    rows = list(csv.DictReader(io.StringIO(sample.decode("utf-8"), newline="")))
    assert sum("\n" in row["narration_en"] for row in rows) >= 1
    windows = Counter(row["video_uid"] for row in rows)
    assert max(windows.values()) >= 3


def test_egotimeqa_rows_follow_the_groundvqa_format():
    rows = json.loads((ROWS / "egotimeqa" / "annotations.EgoTimeQA.json").read_text())
    keys = {"video_id", "sample_id", "question", "answer", "moment_start_frame", "moment_end_frame"}
    assert all(keys <= row.keys() <= keys | {"wrong_answers"} for row in rows)
    assert all(len(row.get("wrong_answers", [None] * 3)) == 3 for row in rows)
    assert "SYNTHETIC" in (ROWS / "README.md").read_text()


def test_generation_is_deterministic_and_cli_keeps_or_forces(sample, tmp_path, capsys):
    again = tmp_path / "again"
    assert main(["--out", str(again)]) == 0
    assert _digests(again) == _digests(sample)
    stray = again / "egtea" / "stray.mp4"
    stray.write_bytes(b"x")
    assert main(["--out", str(again)]) == 0 and "exists" in capsys.readouterr().out
    assert stray.exists()  # kept: no regeneration without --force
    assert main(["--out", str(again), "--force"]) == 0
    assert not stray.exists() and _digests(again) == _digests(sample)
