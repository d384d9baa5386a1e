"""The `facecraft` command: help everywhere, one-line errors with non-zero exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facecraft.sdk.cli import EXIT_ERROR, main


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "facecraft.sdk.cli", *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("argv", [["--help"], ["models", "--help"], ["models", "import", "--help"],
                                  ["models", "info", "--help"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage: facecraft" in capsys.readouterr().out


def test_usage_error_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["models", "import", "ict-facekit"])
    assert e.value.code == 2


def test_missing_file_is_one_line_error(tmp_path):
    r = run_cli("models", "info", str(tmp_path / "nope.fcm"))
    assert r.returncode == EXIT_ERROR
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("facecraft: error:") and "nope.fcm" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_importer_kind(tmp_path):
    r = run_cli("models", "import", "nosuchkind", str(tmp_path), "-o", str(tmp_path / "x.fcm"))
    assert r.returncode == EXIT_ERROR
    assert "nosuchkind" in r.stderr and "ict-facekit" in r.stderr  # lists the known kinds
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "x.fcm").exists()


def test_not_a_model_file(tmp_path):
    p = tmp_path / "photo.fcm"
    p.write_bytes(b"\xff\xd8\xff\xe0 not a model")
    r = run_cli("models", "info", str(p))
    assert r.returncode == EXIT_ERROR and "not a FaceCraft model file" in r.stderr


def test_importers_listed():
    r = run_cli("models", "importers")
    assert r.returncode == 0
    for kind in ("ict-facekit", "bfm2009", "bfm-front", "bfm2017", "flame", "surrey"):
        assert kind in r.stdout


def test_starter_info_builds_and_caches(tmp_path):
    env = {"FACECRAFT_CACHE": str(tmp_path / "cache")}
    r = run_cli("models", "info", "starter", env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "graph levels" in r.stdout and "licence" in r.stdout
    cached = list((tmp_path / "cache").glob("starter-v*.fcm"))
    assert len(cached) == 1
    r2 = run_cli("models", "info", "starter", "--json", env_extra=env)
    assert r2.returncode == 0 and '"identity_names"' in r2.stdout


@pytest.mark.slow
def test_import_real_ict(ict_dir, tmp_path):
    out = tmp_path / "ict.fcm"
    r = run_cli("models", "import", "ict-facekit", str(ict_dir), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("models", "info", str(out), "--names")
    assert r.returncode == 0, r.stderr
    assert "vertices:         26719" in r.stdout
    assert "identity modes:   100" in r.stdout
    assert "jawOpen" in r.stdout and "MIT" in r.stdout


def test_bad_option_syntax(tmp_path):
    r = run_cli("models", "import", "surrey", str(tmp_path), "-o", str(tmp_path / "x.fcm"),
                "-O", "novalue")
    assert r.returncode == EXIT_ERROR and "KEY=VALUE" in r.stderr


def test_unknown_option_is_refused(tmp_path):
    r = run_cli("models", "import", "surrey", str(tmp_path), "-o", str(tmp_path / "x.fcm"),
                "-O", "colour=blue")
    assert r.returncode == EXIT_ERROR and "colour" in r.stderr
    assert "Traceback" not in r.stderr


def test_eval_landmarks_reports_both_kinds():
    from .conftest import assets_or_skip

    ann = assets_or_skip("landmarks68.json")
    r = run_cli("eval", "landmarks", str(ann), "-q")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(ln.startswith("mtcnn-5pt") and "gt_manual" in ln for ln in lines)
    assert any("model_pred" in ln for ln in lines)
    nmes = [float(ln.split()[-1]) for ln in lines[2:]]
    assert all(0 < x < 0.15 for x in nmes), r.stdout


def test_eval_landmarks_bad_file(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text("{}")
    r = run_cli("eval", "landmarks", str(bad), "-q")
    assert r.returncode == EXIT_ERROR and "annotation" in r.stderr
