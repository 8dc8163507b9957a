"""The Gradio Space: started as a real server process on a free local port, driven through gradio_client.

The `running_space` fixture is shared with test_space_browser.py."""

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import gradio
import pytest
import yaml
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SPACE_DIR = REPO_ROOT / "space"
STARTUP_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def space_env(model_dir, port: int) -> dict:
    return dict(
        os.environ,
        EDITFLOW_MODEL=str(model_dir),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
    )


@pytest.fixture(scope="module")
def running_space(tiny_editflow_dir, tmp_path_factory):
    """`python space/app.py` serving the tiny converted model; yields its URL once it answers."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("space") / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, str(SPACE_DIR / "app.py")], env=space_env(tiny_editflow_dir, port), stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"space/app.py exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"space/app.py did not answer on {url} within {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def client(running_space, tmp_path_factory):
    from gradio_client import Client

    return Client(
        running_space, analytics_enabled=False, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads"))
    )


@pytest.fixture(scope="module")
def space_module():
    """space/app.py imported in-process (its main() is not run)."""
    spec = importlib.util.spec_from_file_location("editflow_space_app", SPACE_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gif_frame_count(path) -> int:
    with Image.open(path) as image:
        assert image.format == "GIF"
        return image.n_frames


def test_generate_api_returns_text_and_an_animated_gif(client):
    text, gif_path = client.predict("hello there", 0.1, 8, 1.0, 0, api_name="/generate")
    assert isinstance(text, str) and text.strip()
    assert Path(gif_path).suffix == ".gif"
    assert gif_frame_count(gif_path) >= 2
    again, _ = client.predict("hello there", 0.1, 8, 1.0, 0, api_name="/generate")
    assert again == text  # the seed fixes the run


def test_stream_yields_coloured_steps_then_text_and_gif(client):
    updates = list(client.submit("hello there", 0.05, 16, 1.0, 3, api_name="/stream"))
    assert len(updates) >= 3  # the start sequence, at least one changed step, the final result
    first_html = updates[0][0]
    assert "hello" in first_html and "[MASK]" in first_html
    step_htmls = [update[0] for update in updates[1:]]
    assert any(f'class="ef-{kind}"' in page for page in step_htmls for kind in ("inserted", "substituted", "deleted"))
    live_html, text, gif_path, gif_file = updates[-1]
    assert text.strip() and gif_frame_count(gif_path) >= 2 and gif_file
    direct_text, _ = client.predict("hello there", 0.05, 16, 1.0, 3, api_name="/generate")
    assert direct_text == text  # streaming and the plain API sample the same chain


@pytest.mark.parametrize(
    "args, message",
    [
        (("x" * 501, 0.1, 8, 1.0, 0), "limit is 500"),
        (("hi", 0.1, 8.5, 1.0, 0), "mask length"),
        (("", 0.1, 0, 1.0, 0), "nothing to generate"),
        (("hi", 0.1, 8, 1.0, -3), "seed must be a whole number"),
        (("hi", 0.0, 8, 1.0, 0), "tau must be between"),
        (("hi", 0.1, 100000, 1.0, 0), "mask length must be a whole number from 0 to"),
        (("hi", 0.1, 8, -1.0, 0), "temperature must be between"),
    ],
    ids=["prompt-too-long", "fractional-mask-length", "nothing-to-generate", "negative-seed", "zero-tau", "huge-mask", "negative-temperature"],
)
def test_bad_values_get_a_clear_error(client, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/generate")


def test_request_checks(space_module):
    import gradio as gr

    check = space_module.check_request
    assert check(None, 0.05, 8.0, 0, 7.0, max_mask_length=64) == ("", 0.05, 8, 0.0, 7)
    assert check("hi", 0.05, 8, 1.0, None, max_mask_length=64)[-1] is None  # empty seed: a random run
    for bad, message in [
        (("hi", 0.0001, 8, 1.0, 0), "tau"),
        (("hi", 0.05, 65, 1.0, 0), "from 0 to 64"),
        (("hi", 0.05, 8, 2.5, 0), "temperature"),
        (("hi", "fast", 8, 1.0, 0), "tau must be a number"),
        ((["hi"], 0.05, 8, 1.0, 0), "prompt must be text"),
    ]:
        with pytest.raises(gr.Error, match=message):
            check(*bad, max_mask_length=64)


@pytest.mark.parametrize("model", [None, "/nonexistent/editflow-model"], ids=["unset", "missing-folder"])
def test_app_without_a_model_exits_with_one_line(model, tmp_path):
    env = space_env(model or "", free_port())
    if model is None:
        env.pop("EDITFLOW_MODEL")
    proc = subprocess.run([sys.executable, str(SPACE_DIR / "app.py")], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("space/app.py:")]
    assert len(error_lines) == 1 and "EDITFLOW_MODEL" in error_lines[0]


def test_space_metadata_and_requirements():
    readme = (SPACE_DIR / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("---\n")
    metadata = yaml.safe_load(readme.split("---\n")[1])
    assert metadata["sdk"] == "gradio" and metadata["app_file"] == "app.py"
    assert metadata["title"] and metadata["emoji"]
    assert str(metadata["sdk_version"]).split(".")[0] == gradio.__version__.split(".")[0]
    requirements = (SPACE_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines()
    names = {line.split(">")[0].split("=")[0].split("[")[0].strip().lower() for line in requirements if line and not line.startswith("#")}
    assert {"torch", "transformers", "imageio", "pillow"} <= names
    assert "EDITFLOW_MODEL" in readme
