"""The `dfp` command line as users run it: a real process, against the real servers."""

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from services.detector import pretrained


def dfp(*args, env=None, check=True):
    result = subprocess.run([sys.executable, "-m", "dfp.cli.main", *args], capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"dfp {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


@pytest.fixture()
def http_server(tmp_path):
    """A local HTTP server standing in for the published weights' address."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_models_pull_downloads_and_checks_every_file(http_server, mesonet_dir, tmp_path):
    root, url = http_server
    for weight in pretrained.MESONET:
        shutil.copy(mesonet_dir / weight.filename, root / weight.filename)
    env = {**os.environ, "DFP_CACHE_DIR": str(tmp_path / "cache"), "DFP_SHARED_DIR": str(tmp_path / "none")}
    result = dfp("models", "pull", "mesonet", "--base-url", url, "--json", env=env)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["source"] for line in lines] == [f"{url}/{w.filename}" for w in pretrained.MESONET]
    assert all((tmp_path / "cache" / "weights" / "mesonet" / w.filename).exists() for w in pretrained.MESONET)


def test_models_pull_refuses_a_file_whose_hash_differs(http_server, mesonet_dir, tmp_path):
    root, url = http_server
    for weight in pretrained.MESONET:
        (root / weight.filename).write_bytes(b"tampered")
    env = {**os.environ, "DFP_CACHE_DIR": str(tmp_path / "cache")}
    result = dfp("models", "pull", "mesonet", "--base-url", url, env=env, check=False)
    assert result.returncode == 1 and "SHA-256" in result.stderr
    assert not list((tmp_path / "cache" / "weights" / "mesonet").glob("*.h5"))


def test_models_pull_falls_back_to_the_shared_folder_when_the_network_fails(tmp_path, mesonet_dir):
    env = {**os.environ, "DFP_CACHE_DIR": str(tmp_path / "cache")}
    result = dfp("models", "pull", "mesonet", "--base-url", "http://127.0.0.1:9/nothing", "--json", env=env)
    sources = [json.loads(line)["source"] for line in result.stdout.splitlines()]
    assert sources == [str(mesonet_dir / w.filename) for w in pretrained.MESONET]


def test_detect_upload_and_jobs_through_the_gateway(stack, shared, tmp_path):
    env = stack.env()
    image = shared / "video" / "source" / "s0.jpg"
    out = json.loads(dfp("detect", str(image), "--json", env=env).stdout)
    assert out["verdict"]["faces_scored"] >= 1 and out["model"]["name"] == "detector"

    uploaded = json.loads(dfp("upload", str(image), "--json", env=env).stdout)
    assert uploaded["name"].startswith("media/")
    text = dfp("detect", uploaded["name"], env=env).stdout
    assert text.startswith(uploaded["name"] + ": ")

    video = json.loads(dfp("detect", str(shared / "video" / "driving" / "d9.mp4"), "--frames", "4", "--json", env=env).stdout)
    assert video["frames_sampled"] == 4
    listed = dfp("jobs", "list", env=env).stdout
    assert "detect_video\tSUCCEEDED\t4/4" in listed

    missing = dfp("detect", "media/abcdefghijklmnopqrstuvwxyz", env=env, check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("Error: NOT_FOUND")
    unknown = dfp("detect", "nonsense", env=env, check=False)
    assert unknown.returncode == 2


def test_score_marks_unreadable_inputs_and_exits_1(shared, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    good = sorted((shared / "dfdc-faces" / "val" / "real").iterdir())[0]
    result = dfp("detector", "score", "--no-face-crop", "--json", str(bad), str(good), check=False)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1
    assert lines[0]["path"] == str(bad) and "error" in lines[0]
    assert lines[1]["path"] == str(good) and 0 <= lines[1]["fake_probability"] <= 1


def test_score_prints_no_tensorflow_start_up_lines_unless_debugging(shared):
    face = sorted((shared / "dfdc-faces" / "val" / "real").iterdir())[0]
    env = {key: value for key, value in os.environ.items() if key not in ("DFP_DEBUG", "TF_CPP_MIN_LOG_LEVEL")}
    result = dfp("detector", "score", "--no-face-crop", str(face), env=env)
    assert result.stdout.startswith(str(face)) and result.stderr == ""
    debug = dfp("detector", "score", "--no-face-crop", str(face), env={**env, "DFP_DEBUG": "1"})
    assert "oneDNN" in debug.stderr or "cuda" in debug.stderr.lower()


def test_score_gives_a_video_the_mean_and_max_over_sampled_frames(shared):
    clip = shared / "video" / "driving" / "d0.mp4"
    result = dfp("detector", "score", "--video-frames", "4", "--json", str(clip))
    record = json.loads(result.stdout.strip())
    assert record["video"] and record["frames_sampled"] == 4 and record["frames_with_faces"] == 4
    assert 0 <= record["fake_probability"] <= record["max_fake_probability"] <= 1
