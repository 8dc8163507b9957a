"""The Gradio Space: started as a real server process on a free local port, driven through gradio_client.

The `space_server` / `running_space` fixtures are shared with test_space_browser.py."""

import base64
import importlib.util
import io
import json
import os
import re
import shutil
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

from editflow_hf.modeling.edits_editflow import DecodeTrace

REPO_ROOT = Path(__file__).resolve().parents[1]
SPACE_DIR = REPO_ROOT / "space"
STARTUP_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def space_env(model_dir, port: int, temp_dir=None) -> dict:
    env = dict(
        os.environ,
        EDITFLOW_MODEL=str(model_dir),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
    )
    if temp_dir is not None:  # where the server may write: Gradio's cache and every temporary file
        env.update(GRADIO_TEMP_DIR=str(temp_dir / "gradio"), TMPDIR=str(temp_dir))
    return env


@pytest.fixture(scope="module")
def space_server(tiny_editflow_dir, tmp_path_factory):
    """`python space/app.py` serving the tiny converted model; yields (its URL once it answers, the folder that
    holds every file it may write: its TMPDIR and Gradio's cache)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("space") / "server.log"
    temp_dir = tmp_path_factory.mktemp("space-temp")
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, str(SPACE_DIR / "app.py")], env=space_env(tiny_editflow_dir, port, temp_dir), stdout=log, stderr=log
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
        yield url, temp_dir
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def running_space(space_server):
    return space_server[0]


@pytest.fixture(scope="module")
def space_temp_dir(space_server):
    return space_server[1]


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


def gif_frame_count(path_or_bytes) -> int:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as image:
        assert image.format == "GIF"
        return image.n_frames


def inline_gif(panel_html: str) -> bytes:
    """The GIF of the page's trace panel (a data URL in its <img>)."""
    match = re.search(r'<img src="data:image/gif;base64,([^"]+)"', panel_html)
    assert match, panel_html[:200]
    return base64.b64decode(match.group(1))


def test_generate_api_returns_text_and_the_decode_trace(client):
    text, trace = client.predict("hello there", 0.1, 8, 1.0, 0, "prompt", api_name="/generate")
    assert isinstance(text, str) and text.strip()
    trace = DecodeTrace.from_dict(trace)
    assert trace.steps and trace.initial[-1] == trace.initial[-8]  # the start: prompt + 8 masks
    again, _ = client.predict("hello there", 0.1, 8, 1.0, 0, api_name="/generate")  # mode defaults to prompt
    assert again == text  # the seed fixes the run


def test_stream_yields_coloured_steps_then_text_and_gif(client):
    updates = list(client.submit("hello there", 0.05, 16, 1.0, 3, "prompt", api_name="/stream"))
    assert len(updates) >= 3  # the start sequence, at least one changed step, the final result
    first_html = updates[0][0]
    assert "hello" in first_html and "[MASK]" in first_html
    step_htmls = [update[0] for update in updates[1:]]
    assert any(f'class="ef-{kind}"' in page for page in step_htmls for kind in ("inserted", "substituted", "deleted"))
    live_html, text, gif_panel = updates[-1]
    assert text.strip() and gif_frame_count(inline_gif(gif_panel)) >= 2
    assert 'download="decode_trace.gif"' in gif_panel
    direct_text, _ = client.predict("hello there", 0.05, 16, 1.0, 3, "prompt", api_name="/generate")
    assert direct_text == text  # streaming and the plain API sample the same chain


def test_infill_and_edit_modes(client):
    text, trace = client.predict("hello [MASK] there [MASK]", 0.1, 0, 1.0, 1, "infill", api_name="/generate")
    trace = DecodeTrace.from_dict(trace)
    mask_id = trace.initial[2]
    kept = [token for token in trace.initial if token != mask_id]
    final = trace.final_tokens
    assert [token for token in final if token in kept] == kept  # the unmasked words stay, in order
    assert trace.prompt_len == 1 and "hello" in text
    _, edited = client.predict("hello there my friend", 0.1, 0, 1.0, 2, "edit", api_name="/generate")
    edited = DecodeTrace.from_dict(edited)
    assert any(step.deleted or step.substituted for step in edited.steps)  # the text itself was edited


def test_each_request_leaves_no_file_behind(client, space_temp_dir):
    def count_files():
        return sum(len(files) for _, _, files in os.walk(space_temp_dir))

    list(client.submit("warm up", 0.25, 4, 1.0, 0, "prompt", api_name="/stream"))
    before = count_files()
    for seed in range(4):
        updates = list(client.submit("count the files", 0.1, 6, 1.0, seed, "prompt", api_name="/stream"))
        assert gif_frame_count(inline_gif(updates[-1][2])) >= 1
        client.predict("count the files", 0.1, 6, 1.0, seed, "prompt", api_name="/generate")
    assert count_files() == before


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
        (("no masks here", 0.1, 0, 1.0, 0, "infill"), r"put \[MASK\]"),
        (("", 0.1, 8, 1.0, 0, "edit"), "text to edit"),
        (("hi", 0.1, 8, 1.0, 0, "rewrite"), "mode must be one of"),
    ],
    ids=["prompt-too-long", "fractional-mask-length", "nothing-to-generate", "negative-seed", "zero-tau", "huge-mask",
         "negative-temperature", "infill-without-mask", "edit-nothing", "unknown-mode"],
)
def test_bad_values_get_a_clear_error(client, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/generate")


def test_lone_surrogate_prompt_gets_a_message(running_space):
    """A browser or raw HTTP client can send a lone surrogate (gradio_client cannot encode one): JSON-escaped here."""
    body = json.dumps({"data": ["\ud800 hi", 0.1, 8, 1.0, 0, "prompt"]}).encode("ascii")
    request = urllib.request.Request(running_space + "gradio_api/call/generate", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{running_space}gradio_api/call/generate/{event_id}", timeout=60) as response:
        events = response.read().decode("utf-8")
    assert "event: error" in events and "lone surrogate" in events, events


def test_request_checks(space_module):
    import gradio as gr

    check = space_module.check_request
    assert check(None, 0.05, 8.0, 0, 7.0, max_mask_length=64) == ("", 0.05, 8, 0.0, 7, "prompt", "free")
    assert check("hi", 0.05, 8, 1.0, None, max_mask_length=64)[4] is None  # empty seed: a random run
    for bad, message in [
        (("hi", 0.0001, 8, 1.0, 0), "tau"),
        (("hi", 0.05, 65, 1.0, 0), "from 0 to 64"),
        (("hi", 0.05, 8, 2.5, 0), "temperature"),
        (("hi", "fast", 8, 1.0, 0), "tau must be a number"),
        ((["hi"], 0.05, 8, 1.0, 0), "prompt must be text"),
        (("\udc80", 0.05, 8, 1.0, 0), "lone surrogate"),
    ]:
        with pytest.raises(gr.Error, match=message):
            check(*bad, max_mask_length=64)


def run_app(env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SPACE_DIR / "app.py")], env=env, capture_output=True, text=True, timeout=180)


def assert_one_line_exit(proc, *words):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("space/app.py:")]
    assert len(error_lines) == 1, proc.stderr
    for word in words:
        assert word in error_lines[0], error_lines[0]


@pytest.mark.parametrize("model", [None, "/nonexistent/editflow-model"], ids=["unset", "missing-folder"])
def test_app_without_a_model_exits_with_one_line(model, tmp_path):
    env = space_env(model or "", free_port())
    if model is None:
        env.pop("EDITFLOW_MODEL")
    assert_one_line_exit(run_app(env), "EDITFLOW_MODEL")


@pytest.mark.parametrize("value", ["0", "abc", "1.5"])
def test_concurrency_must_be_a_positive_integer(value):
    env = space_env("/nonexistent/editflow-model", free_port())  # checked before the model loads
    env["EDITFLOW_CONCURRENCY"] = value
    assert_one_line_exit(run_app(env), "EDITFLOW_CONCURRENCY", "positive integer")


@pytest.mark.parametrize("damage", ["truncated-weights", "garbage-weights", "bad-config"])
def test_damaged_checkpoint_exits_with_one_line(damage, tiny_editflow_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_editflow_dir, model_dir)
    if damage == "truncated-weights":
        weights = model_dir / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "garbage-weights":
        (model_dir / "model.safetensors").write_bytes(b"\x00" * 4096)
    else:
        (model_dir / "config.json").write_text('{"model_type": "editflow", ', encoding="utf-8")
    assert_one_line_exit(run_app(space_env(model_dir, free_port())), "cannot load the Edit Flow model")


def test_zero_gpu_decorator_when_spaces_is_importable(tmp_path, monkeypatch):
    (tmp_path / "spaces.py").write_text(
        "def GPU(function):\n    function.on_zero_gpu = True\n    return function\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    spec = importlib.util.spec_from_file_location("editflow_space_zerogpu", SPACE_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.EditFlowSpace.stream.on_zero_gpu and module.EditFlowSpace.generate.on_zero_gpu


def test_without_spaces_the_decorator_is_a_no_op(space_module):
    assert "spaces" not in sys.modules or not hasattr(space_module.EditFlowSpace.stream, "on_zero_gpu")
    assert space_module.gpu(len) is len


def test_space_metadata_and_requirements():
    readme = (SPACE_DIR / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("---\n")
    metadata = yaml.safe_load(readme.split("---\n")[1])
    assert metadata["sdk"] == "gradio" and metadata["app_file"] == "app.py"
    assert metadata["title"] and metadata["emoji"]
    assert metadata["models"] and all("/" in model for model in metadata["models"])  # the Hub model it serves
    assert metadata["suggested_hardware"] in ("cpu-upgrade", "zero-a10g", "t4-small", "a10g-small")
    assert str(metadata["sdk_version"]).split(".")[0] == gradio.__version__.split(".")[0]
    requirements = (SPACE_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines()
    names = {line.split(">")[0].split("=")[0].split("[")[0].strip().lower() for line in requirements if line and not line.startswith("#")}
    assert {"torch", "transformers", "imageio", "pillow"} <= names
    assert "EDITFLOW_MODEL" in readme
