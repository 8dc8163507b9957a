"""editflow-push and the model card: dry runs, completeness checks, clean failures, the card's content.

Nothing here reaches the real Hub: pushes run offline, against a closed local port, or against a fake HfApi."""

import json
import os
import shutil
import socket
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import ModelCard
from huggingface_hub.errors import HfHubHTTPError
from PIL import Image

from editflow_hf.errors import EditFlowError
from editflow_hf.hub import upload as hub
from editflow_hf.hub.card import build_model_card
from editflow_hf.hub.upload import push_checkpoint

EXPECTED_FILES = {
    "README.md",
    "config.json",
    "model.safetensors",
    "modeling_editflow.py",
    "configuration_editflow.py",
    "pipeline_editflow.py",
    "tokenizer.json",
    "tokenizer_config.json",
}


@pytest.fixture
def checkpoint(tiny_editflow_dir, tmp_path) -> Path:
    """A writable copy of the tiny converted checkpoint."""
    return Path(shutil.copytree(tiny_editflow_dir, tmp_path / "checkpoint-final"))


@pytest.fixture
def gif(tmp_path) -> Path:
    path = tmp_path / "decode_trace.gif"
    frames = [Image.new("RGB", (16, 8), color) for color in ("white", "green")]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    return path


def run_push_cli(*args, env_overrides: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for key, value in (env_overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-m", "editflow_hf.apps.push", *map(str, args)], env=env, capture_output=True, text=True, timeout=120
    )


def assert_one_line_failure(proc: subprocess.CompletedProcess, *needles: str):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


class FakeHfApi:
    """Stands in for HfApi: records the calls, or raises `fail_with` from create_repo."""

    calls: list = []
    fail_with: Exception | None = None

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        if FakeHfApi.fail_with is not None:
            raise FakeHfApi.fail_with
        FakeHfApi.calls.append(("create_repo", repo_id, kwargs, self.token))
        return f"https://huggingface.co/{repo_id}"

    def create_commit(self, **kwargs):
        FakeHfApi.calls.append(("create_commit", kwargs["repo_id"], kwargs, self.token))


@pytest.fixture
def fake_api(monkeypatch):
    FakeHfApi.calls = []
    FakeHfApi.fail_with = None
    monkeypatch.setattr(hub, "HfApi", FakeHfApi)
    monkeypatch.setattr(hub.huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return FakeHfApi


def test_console_script_is_registered():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("editflow-push") == "editflow_hf.apps.push:main"


def test_dry_run_cli_lists_the_repo_files_and_prints_the_card(checkpoint, gif):
    proc = run_push_cli(checkpoint, "--repo_id", "someone/tiny-editflow", "--dry-run", "--gif", gif)
    assert proc.returncode == 0, proc.stderr
    listed, _, card_text = proc.stdout.partition("\n\n")
    files = set(listed.splitlines())
    assert EXPECTED_FILES | {"decode_trace.gif"} <= files
    assert 'AutoModel.from_pretrained("someone/tiny-editflow", trust_remote_code=True)' in card_text
    assert card_text.lstrip().startswith("---") and "library_name: transformers" in card_text
    # A dry run writes nothing: neither the card nor the GIF lands in the folder.
    assert not (checkpoint / "README.md").exists() and not (checkpoint / "decode_trace.gif").exists()


def test_folder_card_is_kept_and_uploaded_as_is(checkpoint, fake_api):
    (checkpoint / "README.md").write_text("# My own card\n", encoding="utf-8")
    proc = run_push_cli(checkpoint, "--repo_id", "someone/tiny-editflow", "--dry-run")
    assert proc.returncode == 0 and "# My own card" in proc.stdout and "folder's own README.md" in proc.stderr
    push_checkpoint(checkpoint, "someone/tiny-editflow", token="hf_fake")
    readme = next(op for op in fake_api.calls[1][2]["operations"] if op.path_in_repo == "README.md")
    assert readme.path_or_fileobj == b"# My own card\n"
    assert (checkpoint / "README.md").read_text(encoding="utf-8") == "# My own card\n"


def test_dry_run_uploads_nothing(checkpoint, fake_api):
    listed = push_checkpoint(checkpoint, "someone/tiny-editflow", dry_run=True, token="hf_fake")
    assert EXPECTED_FILES <= set(listed.splitlines())
    assert fake_api.calls == []


def test_trainer_resume_state_is_not_uploaded(checkpoint):
    for name in ("optimizer.pt", "scheduler.pt", "rng_state_0.pth", ".git/HEAD", "global_step10/mp_rank_00.pt"):
        (checkpoint / name).parent.mkdir(parents=True, exist_ok=True)
        (checkpoint / name).write_bytes(b"x")
    (checkpoint / "trainer_state.json").write_text("{}")
    listed = push_checkpoint(checkpoint, "someone/tiny-editflow", dry_run=True).splitlines()
    assert "trainer_state.json" in listed
    assert not [f for f in listed if f.startswith(("optimizer", "scheduler", "rng_state", ".git", "global_step"))]


def _drop(name):
    return lambda folder: (folder / name).unlink()


def _edit_config(edit):
    def apply(folder):
        config = json.loads((folder / "config.json").read_text())
        edit(config)
        (folder / "config.json").write_text(json.dumps(config))

    return apply


def _pipeline_imports_a_missing_module(folder):
    (folder / "pipeline_editflow.py").write_text("from .decoding_helpers_editflow import step\n")


@pytest.mark.parametrize(
    "break_folder, named",
    [
        (_drop("model.safetensors"), "model.safetensors"),
        (_drop("pipeline_editflow.py"), "pipeline_editflow.py"),
        (_drop("modeling_editflow.py"), "modeling_editflow.py"),
        (_drop("sampling_editflow.py"), "sampling_editflow.py"),
        (_drop("edits_editflow.py"), "edits_editflow.py"),
        (_drop("tokenizer.json"), "tokenizer"),
        (_drop("config.json"), "config.json"),
        (_edit_config(lambda c: c.pop("auto_map")), "auto_map"),
        (_edit_config(lambda c: c.pop("custom_pipelines")), "custom_pipelines"),
        (_pipeline_imports_a_missing_module, "decoding_helpers_editflow.py"),
    ],
    ids=["weights", "pipeline", "modeling", "sampling", "edits", "tokenizer", "config", "auto_map", "custom_pipelines", "relative-import"],
)
def test_incomplete_folder_is_refused_naming_what_is_missing(checkpoint, break_folder, named, fake_api):
    break_folder(checkpoint)
    with pytest.raises(EditFlowError, match=named.replace(".", r"\.")):
        push_checkpoint(checkpoint, "someone/tiny-editflow", dry_run=True)
    with pytest.raises(EditFlowError):
        push_checkpoint(checkpoint, "someone/tiny-editflow", token="hf_fake")
    assert fake_api.calls == []


def test_sharded_weights_need_every_shard(checkpoint):
    (checkpoint / "model.safetensors").rename(checkpoint / "model-00001-of-00002.safetensors")
    shutil.copyfile(checkpoint / "model-00001-of-00002.safetensors", checkpoint / "model-00002-of-00002.safetensors")
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (checkpoint / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    listed = push_checkpoint(checkpoint, "someone/tiny-editflow", dry_run=True).splitlines()
    assert {"model.safetensors.index.json", *weight_map.values()} <= set(listed)
    (checkpoint / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(EditFlowError, match="model-00002-of-00002"):
        push_checkpoint(checkpoint, "someone/tiny-editflow", dry_run=True)


def test_incomplete_folder_cli_fails_in_one_line(checkpoint):
    (checkpoint / "pipeline_editflow.py").unlink()
    assert_one_line_failure(run_push_cli(checkpoint, "--repo_id", "someone/x", "--dry-run"), "pipeline_editflow.py")


def test_offline_push_fails_cleanly(checkpoint):
    proc = run_push_cli(checkpoint, "--repo_id", "someone/tiny-editflow", "--token", "hf_fake")
    assert_one_line_failure(proc, "no network", "HF_HUB_OFFLINE")
    assert proc.stdout == ""


def test_push_without_token_fails_cleanly(checkpoint, tmp_path):
    # Online mode but no token anywhere; the endpoint is a closed local port so nothing could leave this machine.
    env = {"HF_HUB_OFFLINE": "0", "HF_TOKEN": None, "HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    proc = run_push_cli(checkpoint, "--repo_id", "someone/tiny-editflow", env_overrides=env)
    assert_one_line_failure(proc, "no Hugging Face token", "hf auth login", "--token")


def test_unreachable_hub_fails_cleanly(checkpoint, tmp_path):
    with socket.socket() as probe:  # a port with no listener: connecting is refused at once
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = {"HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": f"http://127.0.0.1:{closed_port}"}
    proc = run_push_cli(checkpoint, "--repo_id", "someone/tiny-editflow", "--token", "hf_fake", env_overrides=env)
    assert_one_line_failure(proc, "no network", "cannot reach the Hub")


def test_bad_repo_id_and_missing_gif_are_one_line_errors(checkpoint, tmp_path):
    with pytest.raises(EditFlowError, match="invalid repo id"):
        push_checkpoint(checkpoint, "not a repo//id", dry_run=True)
    with pytest.raises(EditFlowError, match="GIF .* not found"):
        push_checkpoint(checkpoint, "someone/x", dry_run=True, gif_path=tmp_path / "nope.gif")


def test_push_creates_the_repo_and_uploads_the_folder(checkpoint, gif, fake_api):
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    url = push_checkpoint(checkpoint, "someone/tiny-editflow", private=True, token="hf_fake", gif_path=gif, commit_message="v1")
    assert url == "https://huggingface.co/someone/tiny-editflow"
    (create, repo_id, create_kwargs, token), (commit, _, commit_kwargs, _) = fake_api.calls
    assert (create, commit, repo_id, token) == ("create_repo", "create_commit", "someone/tiny-editflow", "hf_fake")
    assert create_kwargs["exist_ok"] is True and create_kwargs["private"] is True
    assert commit_kwargs["commit_message"] == "v1"
    operations = {op.path_in_repo: op.path_or_fileobj for op in commit_kwargs["operations"]}
    assert EXPECTED_FILES | {"decode_trace.gif"} <= set(operations) and "optimizer.pt" not in operations
    assert operations["model.safetensors"] == str(checkpoint / "model.safetensors")
    assert operations["decode_trace.gif"] == str(gif)
    card = ModelCard(operations["README.md"].decode("utf-8"))
    assert "](decode_trace.gif)" in card.text
    # The folder is exactly as it was: the card and the GIF went up from memory and from their own path.
    assert {p.name: p.read_bytes() for p in checkpoint.iterdir()} == before


@pytest.mark.parametrize(
    "status, needle", [(401, "token was rejected"), (403, "not allowed to write to someone/tiny-editflow"), (500, "refused")]
)
def test_hub_http_errors_become_one_line(checkpoint, fake_api, status, needle):
    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    fake_api.fail_with = HfHubHTTPError(f"{status} error\nlong server body", response=httpx2.Response(status, request=request))
    with pytest.raises(EditFlowError, match=needle) as caught:
        push_checkpoint(checkpoint, "someone/tiny-editflow", token="hf_fake")
    assert "\n" not in str(caught.value)


def test_card_metadata_usage_and_training_arguments(checkpoint, gif):
    state = {
        "global_step": 1200,
        "num_train_epochs": 10,
        "max_steps": 1200,
        "train_batch_size": 64,
        "log_history": [{"loss": 3.5, "step": 600}, {"loss": 2.25, "step": 1200}, {"train_runtime": 10.0}],
    }
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    training_args = {
        "learning_rate": 3e-4,
        "per_device_train_batch_size": 64,
        "max_length": 128,
        "x0_sampler": "masks[length:64]",
        "max_w": 20.0,
        "dataset_args": "Trelis/tiny-shakespeare|local/extra.jsonl",
        "scheduler_cls": "cubic",
        "scheduler_kwargs": {"a": 2.0, "b": 0.5},
        "output_dir": "ignored",
    }
    card = build_model_card(
        checkpoint, "someone/tiny-editflow", base_model="answerdotai/ModernBERT-large", training_args=training_args, gif_path=gif
    )
    metadata = card.data.to_dict()
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "text-generation"
    assert metadata["license"] == "apache-2.0"
    assert metadata["base_model"] == "answerdotai/ModernBERT-large"
    assert metadata["datasets"] == ["Trelis/tiny-shakespeare"]  # the local file is named in the text only
    assert {"edit-flows", "flow-matching", "modernbert"} <= set(metadata["tags"])
    text = card.text
    assert "arxiv.org/abs/2506.09018" in text
    assert 'AutoModel.from_pretrained("someone/tiny-editflow", trust_remote_code=True)' in text
    assert 'pipeline("editflow-generation", model="someone/tiny-editflow", trust_remote_code=True)' in text
    for row in ("| `learning_rate` | `0.0003` |", "| `x0_sampler` | `masks[length:64]` |", "| `max_w` | `20.0` |",
                "| `max_length` | `128` |", "| `num_train_epochs` | `10` |", "| `scheduler` | `linear` |",
                "| `final_train_loss` | `2.25` |", "| `global_step` | `1200` |", "| `scheduler_cls` | `cubic` |",
                '| `scheduler_kwargs` | `{"a": 2.0, "b": 0.5}` |', "| `dataset_args` | `Trelis/tiny-shakespeare\\|extra.jsonl` |"):
        assert row in text, row
    assert "output_dir" not in text
    assert "![Decode trace" in text and "](decode_trace.gif)" in text
    # The rendered card round-trips through the Hub's own parser.
    assert ModelCard(str(card)).data.base_model == "answerdotai/ModernBERT-large"


def test_card_base_model_comes_from_the_encoder_config(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    # A local conversion source stays out of the metadata (the Hub wants a repo id there) and out of the text.
    local_card = build_model_card(checkpoint, "someone/x")
    assert local_card.data.base_model is None
    assert config["encoder_config"]["_name_or_path"] not in str(local_card)
    assert "built on a local encoder (modernbert)" in local_card.text
    assert "No training arguments" not in local_card.text  # the scheduler is always known from the config

    config["encoder_config"]["_name_or_path"] = "answerdotai/ModernBERT-base"
    (checkpoint / "config.json").write_text(json.dumps(config))
    (checkpoint / "training_args.json").write_text(json.dumps({"learning_rate": 1e-4, "dataset_args": "tatsu-lab/alpaca[train:1000]"}))
    card = build_model_card(checkpoint, "someone/x", base_model=str(checkpoint))  # as training scripts pass it
    assert card.data.base_model == "answerdotai/ModernBERT-base"
    assert card.data.datasets == ["tatsu-lab/alpaca"]
    assert "| `learning_rate` | `0.0001` |" in card.text
    assert "![Decode trace" not in card.text
