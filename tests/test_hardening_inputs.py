"""Bad input costs only itself: mutated copies of the bundled sample release, built with real Beam and ffmpeg.

One "hostile" copy carries many faults at once: bad and duplicate records, unsafe identifiers, paths and
symlinks leaving the root, a FIFO, a view that hangs the probe, views at another frame rate, control
characters in the text. Every fault is added so that the set of valid narrations stays the same: the build
must then give exactly the bundled build's samples (same keys, windows, frames) minus the views that are
really lost, report each fault once with its scope and reason, and account for every description.
The command-line checks (unreadable or cut inputs, unknown splits and options, unusable OUT) run before any
work and exit 2 with one line.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.core.shards import read_tar_samples
from pipeline.egoexoclip import main, parse_args
from pipeline.egoexoclip.composites import PlanClips, ReadNarrations, ReadTakes
from pipeline.egoexoclip.release import NarrationFilters
from pipeline.egoexoclip.windows import FrameOffsets, WindowRule
from tests.conftest import build
from tools.samples.egoexoclip import SAMPLE_TAKES, write_stamped_video

REPO = Path(__file__).resolve().parents[1]
TAKES = {t.name: t for t in SAMPLE_TAKES}
V448 = "frame_aligned_videos/downscaled/448"
PROBE_TIMEOUT = 4.0


def dirty(text: str) -> str:
    """The text with control, format, separator and surrogate characters added; cleaning gives it back."""
    words = text.split(" ")
    return (
        "\u202e"
        + words[0]
        + "\t"
        + " \u0007".join(words[1:-1])
        + "\u2028"
        + words[-1]
        + "\ud800\x00\x7f\u200b"
    )


# (take, cam_id) of the views the hostile copy breaks; every other sample of the bundled build must remain
LOST_VIEWS = {
    ("georgiatech_cooking_03_1", "cam02"): ("unsafe camera id", "cam.02"),  # key renamed "cam.02"
    ("georgiatech_cooking_03_1", "cam03"): ("not a regular file", "cam03"),  # a FIFO
    ("cmu_bike01_2", "cam03"): ("path escapes root", "cam03"),  # symlink to a copy outside the root
    ("sfu_basketball_05_3", "cam03"): ("path escapes root", "cam03"),  # relative_path ../../../../etc/hosts
    ("minnesota_rockclimbing_01_2", "cam02"): ("unsafe stream id", "cam02"),  # stream key "../0"
    ("indiana_bike_01_2", "cam03"): ("fps differs from ego", "cam03"),  # 25 fps
    ("upenn_dance_02_4", "gp04"): ("probe timeout", "gp04"),  # an ffconcat file that reads a FIFO
}


def _load(path: Path):
    return json.loads(path.read_text())


def _dump(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1))


def _copy(sample_root: str, dest: Path) -> Path:
    shutil.copytree(sample_root, dest, symlinks=True)
    return dest


def _takes_by_name(takes: list) -> dict:
    return {t["take_name"]: t for t in takes if isinstance(t, dict) and "take_uid" in t}


def _rows(out: Path) -> list[dict]:
    return pq.read_table(out / "manifest.parquet").to_pylist()


def _errors(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text(encoding="utf-8").splitlines()]


def _stamped(path: Path, cam_id: str, n_frames: int, size: tuple[int, int], fps: int) -> None:
    path.unlink()
    write_stamped_video(path, cam_id, n_frames, *size, fps=fps)


def make_hostile(sample_root: str, tmp: Path) -> tuple[Path, str]:
    """The hostile copy and the path of the directory its "../../../../tmp/..." camera key names."""
    root = _copy(sample_root, tmp / "hostile")
    takes = _load(root / "takes.json")
    by_name = _takes_by_name(takes)

    # camera key with a dot; camera key that walks out of the temp area; stream key with a slash
    geo = by_name["georgiatech_cooking_03_1"]["frame_aligned_videos"]
    geo["cam.02"] = geo.pop("cam02")
    escape_dir = f"/tmp/exo2ego-escape-{uuid.uuid4().hex}"
    by_name["indiana_bike_01_2"]["frame_aligned_videos"][f"../../../..{escape_dir}"] = by_name[
        "indiana_bike_01_2"
    ]["frame_aligned_videos"]["cam01"]
    minn = by_name["minnesota_rockclimbing_01_2"]["frame_aligned_videos"]["cam02"]
    minn["../0"] = minn.pop("0")
    # an exo relative_path outside the root
    by_name["sfu_basketball_05_3"]["frame_aligned_videos"]["cam03"]["0"]["relative_path"] = (
        "../../../../etc/hosts"
    )
    # a take_uid that is a list; a second take with an existing take_name; a second take with an existing uid
    bad_uid = json.loads(json.dumps(by_name["uniandes_cooking_01_1"]))
    bad_uid.update(take_uid=["not", "a", "string"], take_name="list_uid_take")
    dup_name = json.loads(json.dumps(by_name["indiana_bike_01_2"]))
    dup_name["take_uid"] = "dup-name-uid"
    dup_uid = json.loads(json.dumps(by_name["minnesota_rockclimbing_01_2"]))
    dup_uid["take_name"] = "minnesota_copy_01"
    takes += [bad_uid, dup_name, dup_uid]
    _dump(root / "takes.json", takes)

    # splits.json: a split that is not a string (the test-split take)
    splits = _load(root / "annotations/splits.json")
    splits["take_uid_to_split"][TAKES["cmu_bike02_1"].uid] = ["test"]
    _dump(root / "annotations/splits.json", splits)

    # descriptions: only additions of invalid records (and one text rewritten in place), so that every take's
    # valid narrations, hence beta, alpha and all windows, stay those of the bundled release
    train_path, val_path = (root / f"annotations/atomic_descriptions_{s}.json" for s in ("train", "val"))
    train, val = _load(train_path), _load(val_path)
    ann = train["annotations"]
    geo_pass = ann[TAKES["georgiatech_cooking_03_1"].uid][0]["descriptions"]
    template = dict(geo_pass[0])
    geo_pass += [
        {**template, "timestamp": 1e6},
        {**template, "timestamp": "INF_PLACEHOLDER"},
        {**template, "timestamp": "NAN_PLACEHOLDER"},
        {**template, "timestamp": "BIG_PLACEHOLDER"},
    ]
    indiana = ann[TAKES["indiana_bike_01_2"].uid]
    indiana[0]["descriptions"].append("not a description")
    indiana.append({"annotation_uid": "maybe-pass", "rejected": "maybe", "descriptions": [template] * 3})
    indiana.append({"annotation_uid": "no-descriptions"})
    ann["dup-name-uid"] = [{"annotation_uid": "dup-name-pass", "descriptions": [template, template]}]
    ann["entry-not-a-list"] = {"descriptions": []}
    basket = ann[TAKES["sfu_basketball_05_3"].uid][0]["descriptions"]
    basket[0] = {**basket[0], "text": dirty(basket[0]["text"]), "subject": basket[0]["subject"] + "\u0085"}
    minn_passes = val["annotations"][TAKES["minnesota_rockclimbing_01_2"].uid]
    minn_passes[1]["descriptions"].append(dict(minn_passes[1]["descriptions"][2]))  # same timestamp and text
    minn_passes.append(json.loads(json.dumps(minn_passes[0])))  # the same pass (annotation_uid) twice
    text = json.dumps(train, indent=1)
    for placeholder, literal in (("INF", "Infinity"), ("NAN", "NaN"), ("BIG", "1e999")):
        text = text.replace(f'"{placeholder}_PLACEHOLDER"', literal)
    train_path.write_text(text)
    _dump(val_path, val)

    # videos: a symlink out of the root, a FIFO, an exo and an ego at 25 fps, a file whose probe hangs
    bike = root / "takes/cmu_bike01_2" / V448 / "cam03.mp4"
    outside = tmp / "outside"
    outside.mkdir()
    shutil.copy(bike, outside / "cam03.mp4")
    bike.unlink()
    bike.symlink_to(outside / "cam03.mp4")
    fifo = root / "takes/georgiatech_cooking_03_1" / V448 / "cam03.mp4"
    fifo.unlink()
    os.mkfifo(fifo)
    _stamped(root / "takes/indiana_bike_01_2" / V448 / "cam03.mp4", "cam03", 270, (796, 448), 25)
    # sfu_cooking_07_2's ego was truncated (never built): a valid 25 fps file makes the ego the odd one out
    _stamped(root / "takes/sfu_cooking_07_2" / V448 / "aria01_214-1.mp4", "aria01", 240, (448, 448), 25)
    hang = root / "takes/upenn_dance_02_4" / V448 / "gp04.mp4"
    os.mkfifo(hang.with_name("hang.fifo"))
    hang.write_text("ffconcat version 1.0\nfile hang.fifo\n")
    return root, escape_dir


@pytest.fixture(scope="module")
def hostile_build(sample_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    root, escape_dir = make_hostile(sample_root, tmp)
    started = time.monotonic()
    stats = build(str(root), tmp / "out", probe_timeout_s=PROBE_TIMEOUT)
    return root, tmp / "out", stats, escape_dir, time.monotonic() - started


def _same_columns(row: dict) -> tuple:
    return tuple(
        row[c]
        for c in (
            "split", "take_uid", "narration_index", "annotation_uid", "timestamp", "window_start",
            "window_end", "ego_cam", "exo_cam", "ego_start_frame", "ego_end_frame", "exo_start_frame",
            "exo_end_frame", "fps",
            "text", "raw_text", "subject",
        )
    )  # fmt: skip


def test_hostile_release_builds_every_sample_that_its_faults_do_not_touch(hostile_build, bundled_build):
    """Same alpha, same keys and windows: a bad record never reshapes another take (or its own take)."""
    _, out, stats, _, seconds = hostile_build
    ref_out, ref_stats = bundled_build
    assert stats["alpha"] == ref_stats["alpha"]
    ref = {r["key"]: r for r in _rows(ref_out)}
    got = {r["key"]: r for r in _rows(out)}
    lost = {k for k, r in ref.items() if (r["take_name"], r["exo_cam"]) in LOST_VIEWS}
    assert lost and set(got) == set(ref) - lost
    assert {k: _same_columns(r) for k, r in got.items()} == {k: _same_columns(ref[k]) for k in got}
    assert seconds < 400  # the hanging probe was given up after PROBE_TIMEOUT, not 600 s


def test_each_fault_is_reported_once_with_its_scope_and_reason(hostile_build):
    _, out, _, _, _ = hostile_build
    errors = _errors(out)

    def where(**kw) -> list[dict]:
        return [e for e in errors if all(e[k] == v for k, v in kw.items())]

    for (take, cam), (reason, cam_id) in LOST_VIEWS.items():
        (e,) = where(take_name=take, cam_id=cam_id, scope="view")
        assert e["reason"] == reason, (take, cam, e)
    (fps,) = where(take_name="indiana_bike_01_2", reason="fps differs from ego")
    assert "cam03 25 fps" in fps["detail"] and "aria01 30 fps" in fps["detail"]
    # the ego at 25 fps: one take failure, no exo view blamed, its narrations carry the reason
    cooking = where(take_name="sfu_cooking_07_2")
    assert [(e["scope"], e["reason"]) for e in cooking if e["scope"] != "narration"] == [
        ("take", "ego fps differs from every exo view")
    ]
    assert {e["reason"] for e in cooking if e["scope"] == "narration"} == {
        "ego fps differs from every exo view"
    }
    (walk,) = where(scope="view", take_name="indiana_bike_01_2", reason="unsafe camera id")
    assert walk["cam_id"].startswith("../../../../tmp/exo2ego-escape-")
    # records: the take without take_uid (bundled), the list take_uid, the repeated name and uid, and the
    # splits.json entry that is not a split name; narrations of the take with the repeated name are
    # accounted for under that reason
    record = Counter((e["reason"], e["take_name"], e["file"]) for e in errors if e["scope"] == "record")
    assert record == Counter(
        [
            ("schema violation", "broken_take_01", "takes.json"),
            ("schema violation", "list_uid_take", "takes.json"),
            ("duplicate take_name", "indiana_bike_01_2", "takes.json"),
            ("duplicate take_uid", "minnesota_copy_01", "takes.json"),
            ("schema violation", "", "splits.json"),
        ]
    )
    assert Counter(e["reason"] for e in where(take_uid="dup-name-uid", scope="narration")) == Counter(
        {"duplicate take_name": 2}
    )
    # descriptions: one failure each, never a whole pass for one bad description
    geo = Counter(e["reason"] for e in where(take_name="georgiatech_cooking_03_1", scope="narration"))
    assert geo == Counter({"timestamp outside the video": 1, "bad timestamp": 3})
    indiana = Counter(e["reason"] for e in where(take_uid=TAKES["indiana_bike_01_2"].uid, scope="narration"))
    assert indiana == Counter({"schema violation": 4})  # the string + the 3 of the pass rejected "maybe"
    assert where(scope="pass", narration="no-descriptions:*")[0]["reason"] == "schema violation"
    assert where(scope="pass", take_uid="entry-not-a-list")
    minn = Counter(e["reason"] for e in where(take_name="minnesota_rockclimbing_01_2", scope="narration"))
    n_pass0 = len(_load(Path(hostile_build[0]) / "annotations/atomic_descriptions_val.json")["annotations"][
        TAKES["minnesota_rockclimbing_01_2"].uid][0]["descriptions"])  # fmt: skip
    assert minn == Counter({"duplicate annotation pass": n_pass0, "duplicate description": 1})
    # the escaping camera key created nothing outside the worker's temp area
    assert not os.path.exists(hostile_build[3])


def test_every_description_is_built_or_reported_once(hostile_build):
    """stats count descriptions (not passes), and per pass: descriptions = built narrations + failures."""
    root, out, stats, _, _ = hostile_build
    errors = [e for e in _errors(out) if e["scope"] == "narration"]
    failed = Counter((e["take_uid"], e["narration"]) for e in errors)
    assert max(failed.values()) == 1
    built = {(r["take_uid"], r["annotation_uid"], r["narration_index"]) for r in _rows(out)}
    n_input = 0
    for split in ("train", "val"):
        text = (root / f"annotations/atomic_descriptions_{split}.json").read_text()
        doc = json.loads(text)
        for uid, passes in doc["annotations"].items():
            if not isinstance(passes, list):
                continue
            for p in passes:
                descriptions = p.get("descriptions") if isinstance(p, dict) else None
                if not isinstance(descriptions, list):
                    continue
                n_input += len(descriptions)
                ann = p["annotation_uid"]
                n_failed = sum(1 for (u, n) in failed if u == uid and n.startswith(f"{ann}:"))
                n_built = sum(1 for (u, a, _) in built if u == uid and a == ann)
                if sum(1 for q in passes if isinstance(q, dict) and q.get("annotation_uid") == ann) == 1:
                    assert n_failed + n_built == len(descriptions), (uid, ann)
    assert stats["narrations"]["input"] == n_input
    assert stats["narrations"]["unaccounted"] == 0
    assert stats["narrations"]["dropped"] == len(errors)
    assert stats["narrations"]["in_shards"] == len(built)


def test_text_in_the_shards_is_clean_printable_unicode(hostile_build, bundled_build):
    root, out, _, _, _ = hostile_build
    doc = json.loads((root / "annotations/atomic_descriptions_train.json").read_text())
    (source,) = [
        d
        for d in doc["annotations"][TAKES["sfu_basketball_05_3"].uid][0]["descriptions"]
        if "\u202e" in d["text"]
    ]
    assert not source["text"].isprintable()

    def rows(out: Path) -> dict[str, tuple]:
        return {
            r["key"]: (r["text"], r["raw_text"], r["subject"])
            for r in _rows(out)
            if r["take_name"] == "sfu_basketball_05_3" and r["timestamp"] == source["timestamp"]
        }

    got, ref = rows(out), rows(bundled_build[0])
    assert got and got == {k: ref[k] for k in got}  # the same text as without the junk
    n = 0
    for tar in sorted(out.glob("*.tar")):
        for sample in read_tar_samples(tar):
            meta = json.loads(sample["json"])
            strings = [sample["txt"].decode("utf-8")] + [v for v in meta.values() if isinstance(v, str)]
            assert all(s.isprintable() for s in strings), sample["__key__"]
            n += 1
    assert n == len(_rows(out))


def test_a_symlink_out_of_the_root_is_read_only_with_trust_symlinks(hostile_build):
    root, *_ = hostile_build
    with BeamTestPipeline() as p:
        for trust in (False, True):
            takes = p | f"Read{trust}" >> ReadTakes(str(root), "448", ("train",), 30, trust_symlinks=trust)
            cams = takes["takes"] | f"Cams{trust}" >> beam.FlatMap(
                lambda kv: [c for c in kv[1][1] if kv[1][0].take_name == "cmu_bike01_2"]
            )
            expected = ["aria01", "cam01", "cam02", "cam04"] + (["cam03"] if trust else [])
            assert_that(cams, equal_to(expected), label=f"views{trust}")


def _save(items: list, path: str) -> None:
    Path(path).write_text(json.dumps(items))


def _plans(root: Path, tmp: Path) -> tuple[dict, float, list]:
    """Every take's canonical windows, alpha and the narration failures of one planning pass (real Beam)."""
    offsets = FrameOffsets.from_csv_text((REPO / "pipeline/egoexoclip/data/frame_offsets.csv").read_text())
    with BeamTestPipeline() as p:
        splits = ("train", "val")
        takes = p | ReadTakes(str(root), "448", splits, 30)
        narrations = p | ReadNarrations(str(root), splits, NarrationFilters())
        planned = {
            "takes": takes["takes"],
            "excluded": takes["excluded"],
            "narrations": narrations["narrations"],
            "dropped": narrations["dropped"],
        } | PlanClips(WindowRule(), offsets)
        windows = planned["plans"] | beam.Map(
            lambda kv: (kv[1].take.take_name, [n.canonical for n in kv[1].narrations])
        )
        failures = planned["failures"] | beam.Map(lambda f: (f.take_name, f.narration, f.reason))
        for name, pcoll in (("windows", windows), ("alpha", planned["alpha"]), ("failures", failures)):
            _ = (
                pcoll
                | f"List{name}" >> beam.combiners.ToList()
                | f"Save{name}" >> beam.Map(_save, str(tmp / name))
            )
    windows, (alpha,), failures = (
        json.loads((tmp / n).read_text()) for n in ("windows", "alpha", "failures")
    )
    return dict(windows), alpha, [tuple(f) for f in failures]


def test_one_bad_timestamp_leaves_every_other_take_unchanged(sample_root, tmp_path):
    """A timestamp of 1e6 in one take: reported, and no take's windows (its own included) move."""
    base = _copy(sample_root, tmp_path / "base")
    bad = _copy(sample_root, tmp_path / "bad")
    path = bad / "annotations/atomic_descriptions_train.json"
    doc = _load(path)
    first_pass = doc["annotations"][TAKES["indiana_bike_01_2"].uid][0]
    first_pass["descriptions"].append({**first_pass["descriptions"][0], "timestamp": 1e6})
    _dump(path, doc)
    (tmp_path / "p1").mkdir()
    (tmp_path / "p2").mkdir()
    windows, alpha, _ = _plans(base, tmp_path / "p1")
    bad_windows, bad_alpha, failures = _plans(bad, tmp_path / "p2")
    assert bad_alpha == alpha
    assert bad_windows == windows and len(windows) == 8
    source = f"{first_pass['annotation_uid']}:{len(first_pass['descriptions']) - 1}"
    assert ("indiana_bike_01_2", source, "timestamp outside the video") in failures


# ------------------------------------------------------------------------------------------ command line


def _without_dac_override():
    """Run as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (dropped from the bounding set before exec),
    so that file permissions apply as to any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")


def _cli(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    preexec = _without_dac_override if os.geteuid() == 0 else None
    try:
        return subprocess.run(
            [sys.executable, "-m", "pipeline.egoexoclip", *args],
            cwd=REPO, capture_output=True, text=True, timeout=timeout, preexec_fn=preexec,
        )  # fmt: skip
    except subprocess.SubprocessError as err:
        pytest.skip(f"cannot run without permission overrides here: {err}")


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


def _small_root(sample_root: str, tmp: Path) -> Path:
    """Metadata of the sample release only (the CLI refuses it before reading any video)."""
    root = tmp / "release"
    shutil.copytree(Path(sample_root) / "annotations", root / "annotations")
    shutil.copy(Path(sample_root) / "takes.json", root / "takes.json")
    return root


def test_unreadable_inputs_and_unusable_out_exit_2_with_one_line_before_any_work(sample_root, tmp_path):
    root = _small_root(sample_root, tmp_path)
    takes = root / "takes.json"
    takes.chmod(0)
    line = _one_line_error(_cli("--root", str(root), "--out", str(tmp_path / "o1")))
    assert "takes.json: permission denied" in line
    takes.chmod(0o644)
    assert not (tmp_path / "o1").exists()  # nothing was created before the inputs were checked

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    line = _one_line_error(_cli("--root", str(root), "--out", str(locked / "out")))
    assert "--out" in line and "permission denied" in line
    (tmp_path / "a_file").write_text("x")
    line = _one_line_error(_cli("--root", str(root), "--out", str(tmp_path / "a_file")))
    assert "not a directory" in line
    line = _one_line_error(_cli("--root", str(root), "--out", str(tmp_path / "a_file" / "sub")))
    assert "cannot be created" in line


def test_input_errors_name_the_file_and_the_fault(sample_root, tmp_path, capsys):
    root = _small_root(sample_root, tmp_path)
    out = tmp_path / "out"

    def error(*extra: str) -> str:
        assert main(["--root", str(root), "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        return err[0]

    takes = root / "takes.json"
    data = takes.read_bytes()
    takes.write_bytes(data[: len(data) // 2])
    line = error()
    assert "takes.json: invalid JSON at line" in line and "column" in line
    takes.write_bytes(data)
    assert "no such split" in error("--splits", "train,tran") and "tran" in error("--splits", "tran")
    descriptions = root / "annotations/atomic_descriptions_val.json"
    descriptions.write_text("[]")
    assert "atomic_descriptions_val.json: not an Ego-Exo4D atomic descriptions file" in error()
    (root / "annotations/splits.json").write_text('{"take_uid_to_split": []}')
    assert "splits.json: schema violation" in error()
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--frmes", "4"], "unknown option --frmes; did you mean --frames?"),
        (["--probe-timout=5"], "unknown option --probe-timout; did you mean --probe-timeout?"),
        (["--direct_num_worker=2"], "unknown option --direct_num_worker; did you mean --direct_num_workers?"),
        (["--no-such-flag"], "unknown option --no-such-flag (not an option of this command"),
        (["stray"], "unexpected argument 'stray'"),
        (["--probe-timeout", "0"], "probe_timeout_s"),
        (["--splits", "../x"], "is not a split name"),
    ],
)
def test_unknown_options_stop_with_a_hint_and_beam_options_pass(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(["--root", "r", "--out", "o", *argv])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_beam_options_and_the_new_options_are_accepted():
    cfg, beam_args, _ = parse_args(
        ["--root", "r", "--out", "o", "--direct_num_workers", "2", "--experiments=x", "--probe-timeout", "5",
         "--trust-symlinks"]
    )  # fmt: skip
    assert beam_args == ["--direct_num_workers", "2", "--experiments=x"]
    assert cfg.probe_timeout_s == 5.0 and cfg.trust_symlinks
    cfg, _, _ = parse_args(["--root", "r", "--out", "o"])
    assert cfg.probe_timeout_s == 600.0 and not cfg.trust_symlinks
