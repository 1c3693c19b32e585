"""The one command-line front (pipeline/core/front.py) behaves alike for every builder: every option checked
with a hint, Beam's options and runner names checked, one `error:` line and exit status 2 before any work;
and the loss check that fails a build whose source lost too many of its rows."""

from __future__ import annotations

import importlib

import pytest

from pipeline.core.builder import loss_problems, source_losses

BUILDERS = ("egoexoclip", "egoit", "egobench", "egoclip")


def builder_of(name: str):
    return importlib.import_module(f"pipeline.{name}.builder").BUILDER


def inputs_of(name: str, tmp_path) -> list[str]:
    """Inputs that parse (they are checked only after the command line)."""
    return {
        "egoexoclip": ["--root", str(tmp_path)],
        "egoit": ["--roots", f"egtea={tmp_path}"],
        "egobench": ["--roots", f"vlnqa={tmp_path}"],
        "egoclip": ["--csv", str(tmp_path / "egoclip.csv"), "--ego4d-root", str(tmp_path)],
    }[name]


def exit_of(name: str, argv: list[str], capsys) -> tuple[int, str]:
    module = importlib.import_module(f"pipeline.{name}.builder")
    try:
        status = module.main(argv)
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frmes", "4"], "error: unknown option --frmes; did you mean --frames?\n"),
        (["--overwrit"], "error: unknown option --overwrit; did you mean --overwrite?\n"),
        (["--runner", "dircet"], "did you mean direct?"),
        (["--runner", "no.such.module.Runner"], "--runner no.such.module.Runner: no runner class Runner"),
        (["--max-bad-share", "1.5"], "error: --max-bad-share=1.5: must be in [0, 1]\n"),
        (["--frames", "-1"], "--frames=-1: must be >= 1"),
        (["--direct_num_workers=x"], "invalid Apache Beam option"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(name, extra, message, tmp_path, capsys):
    out = tmp_path / "out"
    status, err = exit_of(name, [*inputs_of(name, tmp_path), "--out", str(out), *extra], capsys)
    assert status == 2 and message in err, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("name", BUILDERS)
def test_beam_options_and_known_runners_pass_the_front(name, tmp_path):
    from pipeline.core import front

    cfg, beam_args, args = front.parse_args(
        builder_of(name), [*inputs_of(name, tmp_path), "--out", str(tmp_path / "o"), "--runner", "DirectRunner",
                           "--direct_num_workers=2", "--frames", "8"]
    )  # fmt: skip
    assert beam_args == ["--direct_num_workers=2"] and args.runner == "DirectRunner"
    assert cfg.out == str(tmp_path / "o")


def test_losses_count_rejected_rows_per_source_and_flag_the_ones_over_the_limit():
    class Two:
        def rows_read(self, stats):
            return {"a": 10, "b": 4, "c": 0}

        def source_of(self, f):
            return f.get("source") if f["scope"] in ("file", "record") else None

    failures = [
        {"source": "a", "scope": "record", "reason": "bad time"},
        {"source": "a", "scope": "item", "reason": "near duplicate"},  # by design: not a lost row
        *[{"source": "b", "scope": "record", "reason": "not UTF-8"}] * 3,
        {"source": "c", "scope": "file", "reason": "unreadable file"},
    ]
    losses = source_losses(Two(), {}, failures)
    assert losses["a"] == {"read": 10, "lost": 1, "files_failed": 0, "reasons": {"bad time": 1}}
    assert losses["c"]["files_failed"] == 1
    assert loss_problems(losses, 0.5) == [
        "b: 3 of 4 rows lost (75% > 50%: not UTF-8 3)",
        "c: no row read (unreadable file 1)",
    ]
    assert loss_problems(losses, 0.8) == ["c: no row read (unreadable file 1)"]
    assert loss_problems(losses, 1.0) == []  # --max-bad-share 1 accepts any loss


def test_a_bad_command_line_prints_one_line_through_python_m(tmp_path):
    """Nothing precedes the error line (Beam's import-time "apitools not found" warning is filtered)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.egoclip", "--csv", str(tmp_path / "nope.csv"), "--ego4d-root",
         str(tmp_path), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"error: --csv {tmp_path / 'nope.csv'}: not found\n"


def test_the_registry_finds_every_builder_by_name():
    from pipeline import datasets

    assert sorted(datasets.BUILDERS) == sorted(BUILDERS)
    for name in BUILDERS:
        assert datasets.builder(name) is builder_of(name) and builder_of(name).name == name
    with pytest.raises(KeyError, match="known: egoexoclip, egoit, egobench, egoclip"):
        datasets.builder("egoits")
