"""The `facecraft` command: help everywhere, one-line errors with non-zero exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facecraft.sdk.cli import EXIT_ERROR, EXIT_UNAVAILABLE, main


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
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")]
            for ln in r.stdout.splitlines()[2:]]  # a Markdown table: header, rule, rows
    assert any(row[:2] == ["mtcnn-5pt", "gt_manual"] for row in rows), r.stdout
    assert any(row[1] == "model_pred" for row in rows)
    nmes = [float(row[-1]) for row in rows]  # inter-ocular NME
    assert all(0 < x < 0.15 for x in nmes), r.stdout


def test_eval_landmarks_bad_file(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text("{}")
    r = run_cli("eval", "landmarks", str(bad), "-q")
    assert r.returncode == EXIT_ERROR and "annotation" in r.stderr


# --------------------------------------------------------------------------- create: bad input
def _photo(tmp_path):
    from .conftest import assets_or_skip

    return assets_or_skip("photos", "celeba-5pt", "000002.jpg")


def test_create_output_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    existing = tmp_path / "taken.txt"
    existing.write_text("not a folder")
    code = main(["create", str(tmp_path / "photo.jpg"), "-o", str(existing)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("facecraft: error: -o ")
    assert "not a folder" in err and "internal error" not in err
    assert existing.read_text() == "not a folder"


@pytest.mark.parametrize("batch", ["0", "-3", "two"])
def test_create_batch_must_be_a_positive_integer(tmp_path, capsys, batch):
    with pytest.raises(SystemExit) as e:
        main(["create", "x.jpg", "-o", str(tmp_path), "--batch", batch])
    assert e.value.code == 2
    assert "--batch" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["100", "8192", "big"])
def test_create_texture_size_out_of_range_is_a_usage_error(tmp_path, capsys, size):
    with pytest.raises(SystemExit) as e:
        main(["create", "x.jpg", "-o", str(tmp_path), "--texture-size", size])
    assert e.value.code == 2 and "[256, 2048]" in capsys.readouterr().err


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_create_missing_provider_is_refused(tmp_path, capsys, provider):
    from facecraft.sdk.pipeline.runtime import PROVIDER_NAMES, available_providers

    if PROVIDER_NAMES[provider] in available_providers():
        pytest.skip(f"this onnxruntime has {PROVIDER_NAMES[provider]}")
    code = main(["create", str(_photo(tmp_path)), "-o", str(tmp_path / "out"),
                 "--provider", provider])
    err = capsys.readouterr().err
    assert code == EXIT_UNAVAILABLE, err
    assert err.count("\n") == 1 and f"--provider {provider}" in err
    assert PROVIDER_NAMES[provider] in err and "--provider auto" in err
    assert not (tmp_path / "out").exists()  # nothing ran on the CPU instead


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_serve_missing_provider_is_refused(capsys, provider):
    from facecraft.sdk.pipeline.runtime import PROVIDER_NAMES, available_providers

    if PROVIDER_NAMES[provider] in available_providers():
        pytest.skip(f"this onnxruntime has {PROVIDER_NAMES[provider]}")
    code = main(["serve", "--port", "0", "--provider", provider])
    err = capsys.readouterr().err
    assert code == EXIT_UNAVAILABLE, err
    assert f"--provider {provider}" in err and PROVIDER_NAMES[provider] in err


def test_create_special_files_and_warnings_are_one_line(tmp_path):
    """/dev/zero and a FIFO are refused at once (no endless read, no wait); a Python warning
    (here: a package exported with another starter model) is one `facecraft: warning:` line."""
    import json
    import shutil

    from facecraft.sdk.pipeline.package import default_package_path

    pkg = tmp_path / "other.fcpkg"
    shutil.copytree(default_package_path(), pkg)
    manifest = json.loads((pkg / "manifest.json").read_text())
    manifest["face_model"]["content_sha256"] = "0" * 64
    (pkg / "manifest.json").write_text(json.dumps(manifest))
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    r = subprocess.run([sys.executable, "-m", "facecraft.sdk.cli", "create", "/dev/zero",
                        str(fifo), "-o", str(tmp_path / "out"), "--package", str(pkg), "-q"],
                       capture_output=True, text=True, timeout=180)
    lines = r.stderr.splitlines()
    assert r.returncode == EXIT_ERROR, r.stderr
    assert "Traceback" not in r.stderr and "warnings.warn" not in r.stderr
    warn = [ln for ln in lines if "warning" in ln.lower()]
    assert len(warn) == 1 and warn[0].startswith("facecraft: warning: the built-in face model")
    errors = [ln for ln in lines if ln.startswith("facecraft: error:")]
    assert len(errors) == 2 and all("not a regular file" in ln for ln in errors)
    assert len(lines) == 3, r.stderr


def test_help_documents_folders_and_cold_start(capsys):
    for argv in (["--help"], ["create", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        for text in ("FACECRAFT_CACHE", "FACECRAFT_RIGS", "cold start", "~/.cache/facecraft"):
            assert text in out, (argv, text)
