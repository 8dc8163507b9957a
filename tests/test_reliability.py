"""Real runs a user can trust: every command driven as a user would, through bad flags, bad data, broken model
folders and folders that must not be touched. A refusal exits non-zero with one line on stderr and no traceback,
and every file that was there before is byte-identical afterwards. Also: a resumed training run ends with the
same weights as the uninterrupted one, and model folders are written atomically.

The acceptance cases run the commands in subprocesses (`run`); the rest of the matrix calls the same `main`
functions in this process (`call`, with the stdin, argv and file descriptors of a subprocess), since every
interpreter start costs several seconds of imports."""

import errno
import io
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA_DIR, REPO_ROOT
from editflow_hf.apps import chat as chat_app
from editflow_hf.apps import convert as convert_app
from editflow_hf.apps import eval as eval_app
from editflow_hf.apps import push as push_app
from editflow_hf.apps import sample as sample_app
from editflow_hf.checkpoints import atomic_folder
from editflow_hf.modeling.sampling_editflow import MIN_TAU, check_sampling_params
from editflow_hf.path.alignment import align_masks, remaining_edits, sample_zt
from editflow_hf.path.collator import EditFlowCollator
from editflow_hf.path.couplings import parse_x0_sampler
from editflow_hf.training.positions import max_xt_length, max_xt_length_any_coupling
from editflow_hf.training.cli import train_from_cli

SHAKESPEARE = DATA_DIR / "tiny-shakespeare.txt"
QUIET = ["--report_to", "none", "--disable_tqdm", "True", "--use_cpu", "True"]
# A few tokens per example and a handful of steps: seconds per run on a CPU.
TINY_PT = ["--dataset_args", f"{SHAKESPEARE}[train:50]", "--max_length", "32", "--x0_sampler", "masks[length:16]",
           "--per_device_train_batch_size", "2", *QUIET]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}


def run(*args, stdin: bytes | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """A command as a user types it: `pt.py ...`, `sft.py ...` or a module of editflow_hf.apps."""
    program = args[0]
    if program in ("pt.py", "sft.py"):
        command = [sys.executable, str(REPO_ROOT / "training" / program)]
    else:
        command = [sys.executable, "-m", f"editflow_hf.apps.{program}"]
    argv = [a if isinstance(a, bytes) else str(a) for a in args[1:]]
    proc = subprocess.run(command + argv, cwd=REPO_ROOT, env=ENV, input=stdin, capture_output=True, timeout=timeout)
    proc.stdout, proc.stderr = (stream.decode("utf-8", "replace") for stream in (proc.stdout, proc.stderr))
    return proc


MAINS = {
    "sample": sample_app.main,
    "chat": chat_app.main,
    "push": push_app.main,
    "convert": convert_app.main,
    "pt.py": lambda argv: train_from_cli("pt", argv),
    "sft.py": lambda argv: train_from_cli("sft", argv),
}


@pytest.fixture
def call(capfd, monkeypatch):
    """`run` in this process: the command's main() with its argv and stdin, stdout/stderr read at the fd level."""

    def call(*args, stdin: bytes = b"") -> subprocess.CompletedProcess:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        capfd.readouterr()
        try:
            code = MAINS[args[0]]([str(a) for a in args[1:]])
        except SystemExit as exit_:
            code = exit_.code
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return call


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


PROGRESS_BAR = re.compile(r"\d+%\|.*\||\d+ examples \[")  # tqdm bars of weight loading / dataset generation


def assert_refused(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Non-zero exit, exactly one line on stderr besides progress bars, no traceback; returns the line."""
    pieces = (piece for line in proc.stderr.splitlines() for piece in line.split("\r"))
    lines = [piece for piece in pieces if piece.strip() and not PROGRESS_BAR.search(piece)]
    assert proc.returncode != 0, f"expected a refusal, exit 0\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-4000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def model_dir(tiny_editflow_dir, tmp_path_factory) -> Path:
    """The tiny Edit Flow checkpoint (512 positions), copied once for this module."""
    return Path(shutil.copytree(tiny_editflow_dir, tmp_path_factory.mktemp("reliability") / "model"))


def _set(path: str, value):
    """A config.json edit: `path` is `key` or `encoder_config.key`."""

    def edit(config: dict) -> dict:
        *parents, key = path.split(".")
        target = config
        for parent in parents:
            target = target[parent]
        target[key] = value
        return config

    return edit


CONFIG_DAMAGE = {
    "config-list": lambda config: [config],
    "config-text-size": _set("encoder_config.hidden_size", "big"),
    "config-negative-vocab": _set("encoder_config.vocab_size", -5),
    "config-mask-id": _set("mask_token_id", 10**6),
    "config-no-encoder": _set("encoder_config", None),
    "config-scheduler": _set("scheduler", 5),
    "config-unknown-scheduler": _set("scheduler", "quartic"),
    "foreign-auto-map": _set("auto_map.AutoModel", "someone/other--modeling_other.Model"),
    "foreign-pipeline": _set("custom_pipelines.editflow-generation.impl", "pipeline_other.Pipeline"),
    "local-auto-map": _set("auto_map.AutoModel", "modeling_evil.EvilModel"),
    "huge-layers": lambda config: {**config, "encoder_config": {k: v for k, v in _set("encoder_config.num_hidden_layers", 100000)(config)["encoder_config"].items() if k != "layer_types"}},
    "vocab-at-odds": _set("encoder_config.vocab_size", 30000),
    "huge-hidden": lambda config: {**config, "encoder_config": {**config["encoder_config"], "hidden_size": 2**20, "intermediate_size": 2**21}},
}
MARKER = "imported.marker"


def write_evil_module(folder: Path) -> None:
    """A module beside the Edit Flow files that leaves a marker in `folder` when it is imported."""
    code = f"open({str(folder / MARKER)!r}, 'w').write('imported')\n\nclass EvilModel:\n    pass\n"
    (folder / "modeling_evil.py").write_text(code, encoding="utf-8")


@pytest.fixture
def broken(model_dir, tmp_path):
    """Copies of the checkpoint broken the ways disks and hands break them."""

    def make(kind: str) -> Path:
        folder = Path(shutil.copytree(model_dir, tmp_path / kind))
        if kind == "truncated":
            weights = folder / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        elif kind == "bad-config":
            (folder / "config.json").write_text('{"model_type": "editflow", "encoder_config": {', encoding="utf-8")
        elif kind == "not-a-model":
            for path in folder.iterdir():
                path.unlink()
            (folder / "notes.txt").write_text("just some notes\n")
        elif kind == "garbage-weights":
            (folder / "model.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0" + b'{"a": 1}' + b"\0" * 64)
        elif kind == "no-tokenizer":
            (folder / "tokenizer.json").unlink()
        elif kind == "generation-config-not-json":
            (folder / "generation_config.json").write_text('{"tau": 0.1,', encoding="utf-8")
        elif kind == "generation-config-list":
            (folder / "generation_config.json").write_text('[{"tau": 0.1}]', encoding="utf-8")
        elif kind in CONFIG_DAMAGE:
            if kind == "local-auto-map":
                write_evil_module(folder)
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            (folder / "config.json").write_text(json.dumps(CONFIG_DAMAGE[kind](config)), encoding="utf-8")
        return folder

    return make


# --- fail fast: positions, x0 spec, scheduler arguments ---------------------------------------------------------


def test_max_xt_length_is_the_true_bound_of_the_collator():
    """max len(x_t) = max(len(x0), len(x1)), reached at both ends of the path, never exceeded by the collator."""
    bos, mask = 1, 2
    for task, prompt_len, n_masks, max_length in (("pt", 1, 20, 12), ("pt", 1, 4, 12), ("sft", 11, 6, 12), ("sft", 3, 2, 12)):
        x1 = np.array([bos] + list(range(10, 10 + max_length - 1)))
        z0, z1 = align_masks(x1, prompt_len, n_masks, mask)
        lengths = [len(remaining_edits(sample_zt(z0, z1, kappa, np.random.default_rng(0)), z1)[0]) for kappa in (0.0, 1.0)]
        assert max(lengths) == max(prompt_len + n_masks, len(x1)) <= max_xt_length(task, max_length, n_masks)
    assert max_xt_length("pt", 512, 8) == 512 and max_xt_length("pt", 64, 100) == 101
    assert max_xt_length("sft", 512, 8) == 519 and max_xt_length("sft", 64, 0) == 64

    rng = np.random.default_rng(0)
    for task, spec, max_masks in (("pt", "masks[min:0,max:40]", 40), ("sft", "masks[length:12]", 12)):
        assert widest_x_t(task, spec, 24, rng, batches=200, symbols=(10, 99)) <= max_xt_length(task, 24, max_masks)


def widest_x_t(task: str, spec: str, max_length: int, rng, batches: int, symbols: tuple[int, int]) -> int:
    """The widest x_t the collator builds from `batches` random batches of 4 rows of at most `max_length` tokens."""
    collator = EditFlowCollator(mask_token_id=2, bos_token_id=1, pad_token_id=0, x0_sampler=spec, seed=0)
    widest = 0
    for _ in range(batches):
        features = []
        for _ in range(4):
            x1 = [1] + rng.integers(*symbols, size=int(rng.integers(1, max_length))).tolist()
            prompt_len = 1 if task == "pt" else int(rng.integers(1, len(x1) + 1))
            features.append({"input_ids": x1, "prompt_len": prompt_len})
        widest = max(widest, collator(features)["input_ids"].shape[1])
    return widest


@pytest.mark.parametrize("spec", ["corrupt[p:0.5]", "corrupt[p:1]", "0.5*masks[length:30] + 0.5*corrupt[p:0.3]"])
@pytest.mark.parametrize("task", ["pt", "sft"])
def test_any_coupling_bound_holds_for_corrupted_text(task, spec):
    """The general alignment of corrupted text can interleave x0 and x1: x_t may outgrow both, never the bound."""
    sampler = parse_x0_sampler(spec)
    max_length = 24
    bound = max_xt_length_any_coupling(task, max_length, sampler)
    assert bound > max_length  # a corrupted x0 is longer than x1 (inserted noise)
    # Few symbols: many equally short alignments.
    widest = widest_x_t(task, spec, max_length, np.random.default_rng(1), batches=300, symbols=(10, 14))
    assert max_length < widest <= bound


@pytest.mark.parametrize(
    "task, extra, needles",
    [
        ("pt", ["--max_length", "520", "--x0_sampler", "masks[length:8]"], ["520 tokens", "512 positions", "--max_length to 512"]),
        ("pt", ["--max_length", "32", "--x0_sampler", "masks[length:600]"], ["601 tokens", "at most 511 masks"]),
        ("sft", ["--max_length", "512", "--x0_sampler", "masks[length:8]"], ["519 tokens", "--max_length to 505"]),
        ("pt", ["--max_length", "512", "--x0_sampler", "corrupt[p:0.2]"], ["870 tokens", "512 positions", "--max_length to 301"]),
        ("pt", ["--x0_sampler", "masks[len:3]"], ["--x0_sampler", "masks[length:N]"]),
        ("pt", ["--scheduler_kwargs", '{"a": 2'], ["--scheduler_kwargs must be a JSON object"]),
        ("pt", ["--scheduler_cls", "cubic", "--scheduler_kwargs", '{"z": 1}'], ["cubic", "'z'"]),
    ],
    ids=["pt-positions", "pt-masks", "sft-positions", "pt-corrupt-positions", "x0-spec", "scheduler-json", "scheduler-kwargs"],
)
def test_bad_training_flags_fail_before_anything_is_written(call, model_dir, tmp_path, task, extra, needles):
    data = f"{DATA_DIR / 'qa-tiny.jsonl'}" if task == "sft" else str(SHAKESPEARE)
    out = tmp_path / "out"
    launch = run if extra[:2] == ["--max_length", "520"] else call  # the case, as a user runs it
    proc = launch(f"{task}.py", "--model_name_or_path", model_dir, "--dataset_args", data, "--max_steps", 1, *QUIET,
                  "--output_dir", out, *extra)  # fmt: skip
    assert_refused(proc, *needles)
    assert not out.exists()


# --- fail fast: the data ------------------------------------------------------------------------------------------


def _rows(*rows) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def _chat(*turns) -> dict:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


@pytest.mark.parametrize(
    "task, name, content, needles",
    [
        ("pt", "empty.txt", "", ["empty.txt is empty"]),
        ("pt", "latin1.txt", b"To be\n\nor not to be, \xe9t\xe9\n", ["latin1.txt line 3", "not UTF-8"]),
        ("sft", "blank.jsonl", "\n\n", ["blank.jsonl has no rows"]),
        ("sft", "broken.jsonl", _rows({"instruction": "a", "output": "b"}, "", '{"instruction": "c", "output": }'), ["broken.jsonl line 3", "not valid JSON"]),
        ("sft", "list.jsonl", _rows({"instruction": "a", "output": "b"}, '["x"]'), ["list.jsonl line 2", "not an object"]),
        ("sft", "surrogate.jsonl", _rows({"instruction": "a", "output": "b"}, '{"instruction": "\\udcff", "output": "b"}'), ["surrogate.jsonl line 2", "surrogate"]),
        ("sft", "no-output.jsonl", _rows(*[{"instruction": f"q{i}", "output": f"a{i}"} for i in range(4)], {"instruction": "q"}, {"instruction": "r", "output": None}), ["2 of 6 train rows", "row 5, line 5", "--drop_incomplete_rows True"]),
        ("pt", "nulls.jsonl", _rows({"text": "some words"}, {"text": None}), ["1 of 2 train rows", "row 2, line 2"]),
        ("pt", "other-field.jsonl", _rows({"body": "some words"}), ["no column 'text'", "--text_field"]),
        ("pt", "number.jsonl", _rows({"text": "some words"}, {"text": 5}), ["number.jsonl line 2", "'text' is 5, not text"]),
        ("sft", "wizard.jsonl", _rows(_chat(("user", "hi"), ("assistant", "hello")), _chat(("wizard", "hi"), ("assistant", "hello"))), ["wizard.jsonl line 2", 'turn 1 has role "wizard"', "the roles are system, user, assistant"]),
        ("sft", "empty-turn.jsonl", _rows(_chat(("user", "hi"), ("assistant", " "))), ["empty-turn.jsonl line 1", "turn 2 (assistant) is empty"]),
        ("sft", "only-assistant.jsonl", _rows(_chat(("user", "hi"), ("assistant", "hello")), _chat(("assistant", "hello"))), ["only-assistant.jsonl line 2", "no user turn"]),
        ("sft", "only-user.jsonl", _rows(_chat(("user", "hi"))), ["only-user.jsonl line 1", "no assistant turn"]),
        ("sft", "empty-output.jsonl", _rows({"instruction": "q", "output": "a"}, {"instruction": "q", "output": ""}), ["empty-output.jsonl line 2", "'output' is empty"]),
        ("sft", "empty-instruction.jsonl", _rows({"instruction": "", "output": "a"}), ["empty-instruction.jsonl line 1", "'instruction' is empty"]),
    ],
    ids=["empty", "latin1", "blank-lines", "broken-json", "json-list", "lone-surrogate", "no-output", "null-text", "other-field",
         "number-text", "unknown-role", "empty-turn", "only-assistant", "only-user", "empty-output", "empty-instruction"],
)
def test_bad_data_is_one_line_naming_file_and_line(call, model_dir, tmp_path, task, name, content, needles):
    data = tmp_path / name
    data.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    out = tmp_path / "out"
    launch = run if name in ("broken.jsonl", "no-output.jsonl") else call
    proc = launch(f"{task}.py", "--model_name_or_path", model_dir, "--dataset_args", data, "--max_length", 64,
                  "--max_steps", 1, "--eval_split_size", 0, *QUIET, "--output_dir", out)  # fmt: skip
    assert_refused(proc, *needles)
    assert not (out / "checkpoint-final").exists()


@pytest.mark.parametrize(
    "task, name, content, needles",
    [
        ("pt", "number.jsonl", _rows({"text": "some words"}, {"text": 5}), ["number.jsonl line 2", "'text' is 5, not text"]),
        ("sft", "wizard.jsonl", _rows(_chat(("user", "hi"), ("assistant", "hello")), _chat(("wizard", "hi"), ("assistant", "hello"))), ["wizard.jsonl line 2", 'turn 1 has role "wizard"']),
    ],
    ids=["pt-number", "sft-wizard"],
)
def test_eval_checks_its_rows_for_meaning_as_training_does(call, model_dir, tmp_path, task, name, content, needles):
    """editflow-eval reads held-out data with training's grammar, so it refuses the rows training refuses, by file
    and line, before the model loads (it checked their shape only)."""
    data = tmp_path / name
    data.write_text(content, encoding="utf-8")
    proc = call("eval", "--model_name_or_path", model_dir, "--dataset_args", data, "--task", task, "--max_length", 32)
    assert_refused(proc, *needles)


@pytest.mark.parametrize(
    "files, needles",
    [
        ({"a.jsonl": _rows({"instruction": "a", "output": "b"}), "sub/b.jsonl": _rows({"instruction": "c", "output": "d"}, '{"instruction": "e", "output": }')},
         ["sub/b.jsonl line 2", "not valid JSON"]),
        ({"a.jsonl": _rows({"instruction": "a", "output": "b"}), "b.jsonl": b'{"instruction": "caf\xe9", "output": "d"}\n'}, ["b.jsonl line 1", "not UTF-8"]),
        ({"a.jsonl": _rows(*[{"instruction": f"q{i}", "output": f"a{i}"} for i in range(3)]), "b.jsonl": _rows({"instruction": "q", "output": "a"}, {"instruction": "q"})},
         ["1 of 5 train rows", "row 5, b.jsonl line 2"]),
        ({"a.txt": "some text\n", "b.jsonl": _rows('{"instruction": "c", "output": }')}, ["b.jsonl line 1", "not valid JSON"]),
        ({"a.txt": "some text\n", "b.jsonl": _rows({"instruction": "c", "output": "d"})}, ["mixes data formats (json, text: e.g. b.jsonl, a.txt)", "joined by |"]),
    ],
    ids=["broken-json", "latin1", "no-output", "mixed-formats-broken-json", "mixed-formats"],
)
def test_a_folder_of_data_files_is_checked_file_by_file(call, model_dir, tmp_path, files, needles):
    """--dataset_args naming a folder: the same per-file checks as a single file, naming the file and line, before
    the model or the data is loaded (the issue's case: three tracebacks after ~110 s)."""
    folder = tmp_path / "data"
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    (folder / "_notes.txt").write_bytes(b"\xff not data: datasets skips names starting with _\n")
    out = tmp_path / "out"
    launch = run if needles[0].startswith("sub/") else call
    proc = launch("sft.py", "--model_name_or_path", model_dir, "--dataset_args", folder, "--max_length", 64, "--max_steps", 1,
                  "--eval_split_size", 0, *QUIET, "--output_dir", out)  # fmt: skip
    line = assert_refused(proc, *needles)
    assert str(folder) in line and not out.exists()


def test_json_files_name_the_line_of_the_error(tmp_path):
    from editflow_hf.errors import EditFlowError
    from editflow_hf.data.files import scan_local_file

    cases = {
        "array.json": ('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]\n', "line 3"),
        "lines.json": (_rows({"text": "a"}, "{oops}"), "line 2"),
        "empty-list.json": ("[]", "empty list"),
    }
    for name, (content, needle) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(EditFlowError, match=needle):
            scan_local_file(tmp_path / name)
    (tmp_path / "fine.json").write_text(_rows({"text": "a"}, {"text": "b"}))
    scan_local_file(tmp_path / "fine.json")  # JSON lines in a .json file, as datasets reads them


def test_drop_incomplete_rows_trains_on_the_rest_with_a_warning(call, model_dir, tmp_path, caplog):
    data = tmp_path / "qa.jsonl"
    data.write_text(_rows(*[{"instruction": f"question {i}?", "output": f"answer {i}"} for i in range(6)], {"instruction": "q", "output": None}))
    out = tmp_path / "out"
    proc = call("sft.py", "--model_name_or_path", model_dir, "--dataset_args", data, "--max_length", 64, "--max_steps", 1,
               "--x0_sampler", "masks[length:8]", "--eval_split_size", 0, "--save_strategy", "no", "--drop_incomplete_rows", "True",
               *QUIET, "--output_dir", out)  # fmt: skip
    assert_ok(proc)
    warned = proc.stderr + caplog.text  # in this process the warning goes through pytest's log capture
    assert "1 of 7 train rows have no instruction or output" in warned and "dropping them" in warned
    assert (out / "checkpoint-final" / "model.safetensors").is_file()


# --- no secret on disk, nothing pickled on the Hub ----------------------------------------------------------------

FAKE_TOKEN = "hf_FAKEtokenNeverToBeWrittenAnywhere0123"


def test_hub_token_is_in_no_file_and_no_pickle_is_uploaded(model_dir, tmp_path):
    """The issue's acceptance: train with --hub_token on the command line, then `editflow-push --dry-run`."""
    out = tmp_path / "run"
    assert_ok(run("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 2, "--save_steps", 1,
                  "--hub_token", FAKE_TOKEN, "--output_dir", out))  # fmt: skip
    written = [path for path in out.rglob("*") if path.is_file()]
    assert {"checkpoint-1", "checkpoint-2", "checkpoint-final"} <= {p.name for p in out.iterdir()}
    assert any(path.name == "training_args.bin" for path in written)  # the Trainer's pickle is still written, redacted
    assert [path for path in written if FAKE_TOKEN.encode() in path.read_bytes()] == []

    final = out / "checkpoint-final"
    (final / "notes.dat").write_bytes(pickle.dumps({"anything": 1}))  # a pickle under an innocent name
    proc = run("push", final, "--repo_id", "someone/tiny", "--dry-run")
    assert_ok(proc)
    listed = proc.stdout.split("\n\n")[0].splitlines()
    assert "model.safetensors" in listed and "training_args.json" in listed
    assert not [name for name in listed if name.endswith((".bin", ".pt", ".pth", ".pkl")) or name == "notes.dat"]
    assert "not uploading notes.dat, training_args.bin (pickled" in proc.stderr


def test_nothing_a_push_uploads_names_a_local_path_and_the_weights_follow_the_umask(call, six_step_run, model_dir, tmp_path):
    """Every file a push would send (the folder's files as sent, the card) is free of this machine's absolute paths:
    the tests' temporary folders, the repository, site-packages (a MiniLM converted from its installed package);
    the eval result's dataset reaches the card's model-index by its file name only. The weights written by
    training and by the conversion have the mode the user's umask gives (0644 under 022), like every other file."""
    import site
    import sysconfig

    from builders import minilm_dir
    from editflow_hf.checkpoints import user_file_mode
    from editflow_hf.hub.upload import plan_upload, upload_contents

    folder = Path(shutil.copytree(six_step_run / "checkpoint-final", tmp_path / "checkpoint-final"))
    mode = user_file_mode()
    for source in (six_step_run / "checkpoint-final", six_step_run / "checkpoint-3", model_dir):
        for path in source.glob("*.safetensors"):
            assert path.stat().st_mode & 0o777 == mode, (path, oct(path.stat().st_mode))
    config = json.loads((folder / "config.json").read_text())
    config["encoder_config"]["_name_or_path"] = str(minilm_dir())  # as editflow-convert records the packaged MiniLM
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    assert_ok(call("eval", "--model_name_or_path", folder, "--dataset_args", f"{SHAKESPEARE}[train:8]", "--max_length", 32,
                   "--num_t", 1, "--output", folder / "eval_results.json"))  # fmt: skip
    local = {str(tmp_path.parent.parent), str(REPO_ROOT), sysconfig.get_paths()["purelib"], *site.getsitepackages(), str(Path.home())}
    local = {path for path in local if len(path) > 1}
    assert any(path in (folder / "config.json").read_text() for path in local)  # on disk: the local paths
    plan = plan_upload(folder, "someone/tiny")
    sent = {name: data if isinstance(data, bytes) else Path(data).read_bytes() for name, data in upload_contents(plan).items()}
    sent["README.md"] = plan.card.encode("utf-8")
    assert {"config.json", "training_args.json", "eval_results.json", "model.safetensors"} <= set(sent)
    leaks = [(name, path) for name, data in sent.items() for path in local if path.encode() in data]
    assert leaks == []
    sent_config = json.loads(sent["config.json"])
    assert sent_config["encoder_config"]["_name_or_path"] == minilm_dir().name
    assert "name: tiny-shakespeare.txt" in plan.card and "model-index" in plan.card
    assert json.loads(sent["training_args.json"])["model_name_or_path"] == "model"


def test_credentials_are_redacted_before_arguments_are_saved():
    from editflow_hf.training.args import EditFlowTrainingArguments
    from editflow_hf.training.trainer import redact_secrets, redacted_training_args

    args = EditFlowTrainingArguments(output_dir="out", hub_token=FAKE_TOKEN, report_to="none", use_cpu=True)
    redacted = redacted_training_args(args)
    assert redacted.hub_token is None and args.hub_token == FAKE_TOKEN and redacted.output_dir == "out"
    recorded = {"dataset_args": f"https://x.org/d.jsonl?token={FAKE_TOKEN}", "wandb_api_key": "abc", "max_length": 8,
                "include_num_input_tokens_seen": True}  # fmt: skip
    assert redact_secrets(recorded) == {"dataset_args": None, "wandb_api_key": None, "max_length": 8,
                                        "include_num_input_tokens_seen": True}  # fmt: skip


# --- nothing replaced silently; exact resume ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def six_step_run(model_dir, tmp_path_factory) -> Path:
    """An uninterrupted pt run: 6 steps, checkpoints at 3 and 6, then checkpoint-final."""
    out = tmp_path_factory.mktemp("six-steps") / "run"
    assert_ok(run("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 6, "--save_steps", 3, "--output_dir", out))
    return out


def test_resumed_run_ends_with_the_same_weights(six_step_run, model_dir, tmp_path):
    resumed = tmp_path / "resumed"
    proc = run("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 6, "--save_steps", 3,
               "--resume_from_checkpoint", six_step_run / "checkpoint-3", "--output_dir", resumed)  # fmt: skip
    assert_ok(proc)
    expected = (six_step_run / "checkpoint-final" / "model.safetensors").read_bytes()
    assert (resumed / "checkpoint-final" / "model.safetensors").read_bytes() == expected


def test_resume_true_takes_the_newest_complete_checkpoint(six_step_run, model_dir, tmp_path):
    """A run killed after checkpoint-3, while checkpoint-5 was being written, continued with `True`."""
    killed = tmp_path / "killed"
    shutil.copytree(six_step_run / "checkpoint-3", killed / "checkpoint-3")
    shutil.copytree(six_step_run / "checkpoint-3", killed / "checkpoint-5")
    (killed / "checkpoint-5" / "trainer_state.json").unlink()
    proc = run("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 6, "--save_steps", 3,
               "--resume_from_checkpoint", "True", "--output_dir", killed)  # fmt: skip
    assert_ok(proc)
    assert "Skipping incomplete checkpoint" in proc.stderr and "checkpoint-5 (trainer_state.json is missing)" in proc.stderr
    expected = (six_step_run / "checkpoint-final" / "model.safetensors").read_bytes()
    assert (killed / "checkpoint-final" / "model.safetensors").read_bytes() == expected


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_mid_run_saves_a_checkpoint_from_which_auto_continues(signum, six_step_run, model_dir, tmp_path):
    """What a preempted SLURM job lives through: `auto` on an empty folder starts at step 0; SIGTERM (or SIGUSR1,
    `#SBATCH --signal`) mid-run saves checkpoint-<step> at the step's end and exits 128 + signal without a
    checkpoint-final; the requeued run (`auto` again) ends with the uninterrupted run's weights."""
    out = tmp_path / "preempted"
    argv = [sys.executable, str(REPO_ROOT / "training" / "pt.py"), "--model_name_or_path", str(model_dir), *TINY_PT,
            "--max_steps", "6", "--save_steps", "3", "--logging_steps", "1", "--resume_from_checkpoint", "auto",
            "--output_dir", str(out)]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env={**ENV, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    for line in proc.stdout:  # the first step's log line: training is under way
        if "'loss'" in line:
            proc.send_signal(signum)
            break
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, f"exit {proc.returncode}\n{stdout[-2000:]}\n{stderr[-4000:]}"
    assert "no complete checkpoint-N" in stderr and "training from the start" in stderr
    stopped = re.search(rf"stopped by {signal.Signals(signum).name} at step (\d) \(checkpoint-(\d) saved", stdout)
    assert stopped and stopped[1] == stopped[2] and int(stopped[1]) < 6, stdout[-2000:]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint")) == [f"checkpoint-{stopped[1]}"]
    assert "Traceback" not in stderr

    proc = run("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 6, "--save_steps", 3,
               "--resume_from_checkpoint", "auto", "--output_dir", out)  # fmt: skip
    assert_ok(proc)
    assert f"resuming from {out / f'checkpoint-{stopped[1]}'}" in proc.stderr
    expected = (six_step_run / "checkpoint-final" / "model.safetensors").read_bytes()
    assert (out / "checkpoint-final" / "model.safetensors").read_bytes() == expected


def test_one_run_per_output_dir_and_ctrl_c_stops_like_sigterm(model_dir, tmp_path):
    """Two trainings into one folder at once: the second is refused before its first step, in one line naming the
    first (its pid); the first trains on. Ctrl-C (SIGINT) then ends the first as SIGTERM does: the step finishes,
    checkpoint-<step> is saved complete, exit 130, no traceback; the folder's lock is gone."""
    from editflow_hf.checkpoints import checkpoint_problem

    out = tmp_path / "shared"
    argv = [sys.executable, str(REPO_ROOT / "training" / "pt.py"), "--model_name_or_path", str(model_dir), *TINY_PT,
            "--max_steps", "5000", "--save_steps", "1000", "--logging_steps", "1", "--output_dir", str(out)]  # fmt: skip
    first = subprocess.Popen(argv, cwd=REPO_ROOT, env={**ENV, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for line in first.stdout:  # the first step's log line: the first run is training
            if "'loss'" in line:
                break
        second = run(*["pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 3, "--logging_steps", 1, "--output_dir", out])
        assert first.poll() is None, "the first run ended before the second was refused: make it longer"
        assert_refused(second, f"--output_dir {out} is in use by another training run (pid {first.pid} on",
                       "choose another --output_dir")  # fmt: skip
        assert "'loss'" not in second.stdout and second.returncode == 2
        first.send_signal(signal.SIGINT)
        stdout, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 128 + signal.SIGINT, f"exit {first.returncode}\n{stdout[-2000:]}\n{stderr[-4000:]}"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    stopped = re.search(r"stopped by SIGINT at step (\d+) \(checkpoint-(\d+) saved", stdout)
    assert stopped and stopped[1] == stopped[2], stdout[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [f"checkpoint-{stopped[1]}"]  # one run's checkpoint, no lock files
    assert checkpoint_problem(out / f"checkpoint-{stopped[1]}") is None


def test_resume_auto_without_a_complete_checkpoint(six_step_run, tmp_path, caplog):
    from editflow_hf.errors import EditFlowError
    from editflow_hf.training.output_dir import check_output_dir, resolve_resume_checkpoint

    assert resolve_resume_checkpoint("auto", tmp_path / "missing") is None
    run_dir = tmp_path / "run"
    shutil.copytree(six_step_run / "checkpoint-3", run_dir / "checkpoint-3")
    (run_dir / "checkpoint-3" / "trainer_state.json").unlink()  # killed while saving its first checkpoint
    assert resolve_resume_checkpoint("auto", run_dir) is None and "Skipping incomplete checkpoint" in caplog.text
    check_output_dir(run_dir, overwrite=False, resuming=True)  # the run's own folder: no refusal
    shutil.copytree(six_step_run / "checkpoint-final", run_dir / "checkpoint-final")
    with pytest.raises(EditFlowError, match="checkpoint-final of a finished run and no checkpoint-N"):
        resolve_resume_checkpoint("auto", run_dir)
    assert resolve_resume_checkpoint("auto", six_step_run) == str(six_step_run / "checkpoint-6")


def test_ranks_that_see_different_checkpoints_are_refused(six_step_run, tmp_path, monkeypatch):
    """Nodes without a shared --output_dir: rank 1 sees no checkpoint while this rank sees checkpoint-6."""
    from types import SimpleNamespace

    import torch.distributed as dist

    from editflow_hf.errors import EditFlowError
    from editflow_hf.training.output_dir import resolve_resume_on_every_rank

    other_rank = (None, None)

    def all_gather_object(seen, mine):
        seen[:] = [mine, other_rank]

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    args = SimpleNamespace(resume_from_checkpoint="auto", output_dir=six_step_run, world_size=2)
    with pytest.raises(EditFlowError, match="rank 0: checkpoint-6, rank 1: nothing.*filesystem every node shares"):
        resolve_resume_on_every_rank(args)
    other_rank = ("checkpoint-6", None)
    assert resolve_resume_on_every_rank(args) == str(six_step_run / "checkpoint-6")
    other_rank = (None, "--resume_from_checkpoint True: ... holds no complete checkpoint-N")
    with pytest.raises(EditFlowError, match="holds no complete checkpoint-N"):  # raised here too: no rank waits
        resolve_resume_on_every_rank(args)


def test_resume_from_an_incomplete_checkpoint_is_one_line(six_step_run, model_dir, tmp_path):
    half = tmp_path / "run" / "checkpoint-3"
    shutil.copytree(six_step_run / "checkpoint-3", half)
    (half / "model.safetensors").unlink()
    before = snapshot(tmp_path / "run")
    proc = run("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 6, "--resume_from_checkpoint", half,
               "--output_dir", tmp_path / "other")  # fmt: skip
    assert_refused(proc, "not a complete checkpoint", "model.safetensors is missing")
    proc = run("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 6, "--resume_from_checkpoint", "True",
               "--output_dir", tmp_path / "run")  # fmt: skip
    assert_refused(proc, "holds no complete checkpoint-N")
    assert snapshot(tmp_path / "run") == before


def test_training_twice_into_one_folder_needs_overwrite(six_step_run, model_dir, tmp_path):
    out = Path(shutil.copytree(six_step_run, tmp_path / "run"))
    before = snapshot(out)
    proc = run("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 2, "--output_dir", out)
    assert_refused(proc, "already holds checkpoint-final", "--overwrite_output_dir", "--resume_from_checkpoint True")
    assert snapshot(out) == before

    proc = run("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 2, "--save_strategy", "no",
               "--overwrite_output_dir", "True", "--output_dir", out)  # fmt: skip
    assert_ok(proc)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-final"]  # the earlier run's checkpoint-N are gone
    assert json.loads((out / "checkpoint-final" / "trainer_state.json").read_text())["global_step"] == 2


# --- model folders: convert, push, sample, chat, training on broken ones -------------------------------------------


def test_convert_refuses_a_non_empty_folder_and_overwrites_when_asked(tiny_mlm_dir, six_step_run, tmp_path):
    target = Path(shutil.copytree(six_step_run / "checkpoint-3", tmp_path / "checkpoint-3"))
    before = snapshot(target)
    assert_refused(run("convert", "--model_name_or_path", tiny_mlm_dir, "--output_dir", target), "not empty", "--overwrite")
    assert snapshot(target) == before
    assert_ok(run("convert", "--model_name_or_path", tiny_mlm_dir, "--output_dir", target, "--overwrite"))
    assert not (target / "trainer_state.json").exists() and (target / "model.safetensors").is_file()
    assert not list(tmp_path.glob(".checkpoint-3.*"))


def test_convert_refuses_weights_of_another_architecture(tmp_path):
    """A GPT-2 config beside BERT weights: every GPT-2 weight would start random and every BERT weight go unused;
    refused in one line with the counts and an example of each, nothing written."""
    from transformers import GPT2Config

    from builders import build_tiny_mlm

    source = build_tiny_mlm("bert", tmp_path / "bert")
    (source / "config.json").unlink()
    GPT2Config(vocab_size=30522, n_embd=32, n_layer=2, n_head=2, n_positions=512, bos_token_id=101, eos_token_id=102).save_pretrained(source)
    before = snapshot(source)
    out = tmp_path / "out"
    line = assert_refused(run("convert", "--model_name_or_path", source, "--output_dir", out),
                          "its weights do not load into its own architecture", "gpt2 weights are missing from the file (e.g. transformer.",
                          "weights of the file are not in that architecture (e.g. bert.")  # fmt: skip
    assert re.search(r": \d+ of its gpt2 weights are missing .* and \d+ weights of the file", line), line
    assert not out.exists() and snapshot(source) == before


def test_convert_refuses_a_config_at_odds_with_the_weights_positions(tmp_path):
    """A BERT whose config.json says 128 positions beside a 512-row position embedding: one line naming both
    (it was transformers' "look at the above report!" with no report above), before anything is built."""
    from builders import build_tiny_mlm

    source = build_tiny_mlm("bert", tmp_path / "bert")
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 128}))
    out = tmp_path / "out"
    assert_refused(run("convert", "--model_name_or_path", source, "--output_dir", out),
                   "max_position_embeddings is 128 but the weights' position embedding has 512 rows")  # fmt: skip
    assert not out.exists()


def test_convert_full_disk_leaves_nothing_half_written(tiny_mlm_dir, model_dir, tmp_path, monkeypatch):
    """The disk fills up after part of the weights is written: nothing appears under the final name, and an
    existing folder being overwritten keeps its contents."""
    from editflow_hf.conversion import convert
    from editflow_hf.errors import EditFlowError
    from editflow_hf.modeling.modeling_editflow import EditFlowForEditing

    def full_disk(self, save_directory, **kwargs):
        Path(save_directory, "model.safetensors").write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(EditFlowForEditing, "save_pretrained", full_disk)
    fresh = tmp_path / "fresh"
    with pytest.raises(EditFlowError, match="fresh: the disk is full; it needs about .* is free; nothing was written under that name"):
        convert(str(tiny_mlm_dir), fresh)
    assert not fresh.exists()
    existing = Path(shutil.copytree(model_dir, tmp_path / "existing"))
    before = snapshot(existing)
    with pytest.raises(EditFlowError, match="existing: the disk is full; it needs about .* is free; its previous contents are kept"):
        convert(str(tiny_mlm_dir), existing, overwrite=True)
    assert snapshot(existing) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]  # no staging folder left behind


def test_training_full_disk_keeps_the_earlier_checkpoint_final(call, six_step_run, model_dir, tmp_path, monkeypatch):
    """The final save runs out of disk half-way: the earlier run's checkpoint-final stays as it was."""
    from editflow_hf.training.trainer import EditFlowTrainer

    def full_disk(self, output_dir=None, _internal_call=False):
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        Path(output_dir, "model.safetensors").write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    out = Path(shutil.copytree(six_step_run, tmp_path / "run"))
    before = snapshot(out / "checkpoint-final")
    monkeypatch.setattr(EditFlowTrainer, "save_model", full_disk)
    proc = call("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 1, "--save_strategy", "no",
                "--overwrite_output_dir", "True", "--output_dir", out)  # fmt: skip
    assert_refused(proc, "could not save", "checkpoint-final: the disk is full; it needs about", "the earlier checkpoint-final is kept")
    assert snapshot(out / "checkpoint-final") == before
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-final"]  # no staging folder left behind


def _full_disk_at(where: str, monkeypatch, step_folder: str, before: dict):
    """Make the save of `step_folder` run out of disk while writing its weights (safetensors' error), its
    optimizer state (torch.save's zip writer error, on a disk with 900 bytes left) or its trainer state (ENOSPC).
    `before` receives the files of checkpoint-3 as they were when the disk filled up."""
    import safetensors
    import torch
    import transformers.modeling_utils
    from transformers.trainer_callback import TrainerState

    def failing(path) -> bool:
        hit = step_folder in str(path)
        if hit and not before:
            before.update(snapshot(Path(path).parent.parent / "checkpoint-3"))
        return hit

    if where == "weights":
        real = transformers.modeling_utils.safe_save_file

        def save_file(tensors, filename, metadata=None):
            if failing(filename):
                Path(filename).write_bytes(b"\0" * 100)
                raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
            return real(tensors, filename, metadata=metadata)

        monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", save_file)
    elif where == "optimizer":
        real = torch.save

        def save(obj, f, *args, **kwargs):
            if isinstance(f, (str, os.PathLike)) and failing(f) and str(f).endswith("optimizer.pt"):
                Path(f).write_bytes(b"PK\3\4" + b"\0" * 100)
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 2112 vs 2006")
            return real(obj, f, *args, **kwargs)

        monkeypatch.setattr(torch, "save", save)
        monkeypatch.setattr("editflow_hf.checkpoints.saving.shutil.disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 900, 900))
    else:
        real = TrainerState.save_to_json

        def save_to_json(self, json_path):
            if failing(json_path):
                raise OSError(errno.ENOSPC, "No space left on device", json_path)
            return real(self, json_path)

        monkeypatch.setattr(TrainerState, "save_to_json", save_to_json)


@pytest.mark.parametrize("where", ["weights", "optimizer", "trainer-state"])
def test_full_disk_during_a_checkpoint_keeps_the_earlier_one_and_resumes(call, six_step_run, model_dir, tmp_path, monkeypatch, where):
    """The disk fills up while checkpoint-6 is written: one line naming it and the room it needs, the partial
    folder gone, checkpoint-3 as it was; once there is room, --resume_from_checkpoint True ends where the
    uninterrupted run ends."""
    out, before = tmp_path / "run", {}
    # In this process, train with the thread count of the subprocess runs (ENV): float sums depend on it, and
    # checkpoint-3 must be the uninterrupted run's for the resumed run to end at its weights.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _full_disk_at(where, monkeypatch, "checkpoint-6", before)
        proc = call("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 6, "--save_steps", 3, "--output_dir", out)
    finally:
        torch.set_num_threads(threads)
    line = assert_refused(proc, f"could not save {out / 'checkpoint-6'}: ", "it needs about", "is free",
                          "the partial checkpoint-6 was removed and checkpoint-3 kept", "--resume_from_checkpoint True")  # fmt: skip
    assert ("the disk is full" in line) and (where != "optimizer" or "900 bytes is free" in line)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-3"] and snapshot(out / "checkpoint-3") == before
    if where != "optimizer":
        return
    monkeypatch.undo()
    # A fresh process, as the user's next run is (and with the uninterrupted run's thread count: float sums depend on it).
    assert_ok(run("pt.py", "--model_name_or_path", model_dir, *TINY_PT, "--max_steps", 6, "--save_steps", 3,
                   "--resume_from_checkpoint", "True", "--output_dir", out))  # fmt: skip
    expected = (six_step_run / "checkpoint-final" / "model.safetensors").read_bytes()
    assert (out / "checkpoint-final" / "model.safetensors").read_bytes() == expected


def test_atomic_folder_keeps_the_old_folder_until_the_new_one_is_complete(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(final, overwrite=True) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError("killed")
    assert snapshot(final) == {"old.txt": b"old"}
    with atomic_folder(final, overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
        assert snapshot(final) == {"old.txt": b"old"}
    assert snapshot(final) == {"new.txt": b"new"} and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_push_dry_run_writes_nothing(six_step_run, tmp_path):
    folder = Path(shutil.copytree(six_step_run / "checkpoint-final", tmp_path / "checkpoint-final"))
    (folder / "README.md").write_text("# My hand-written card\n", encoding="utf-8")
    before = snapshot(folder)
    proc = run("push", folder, "--repo_id", "someone/tiny", "--dry-run")
    assert_ok(proc)
    assert "# My hand-written card" in proc.stdout
    (folder / "README.md").unlink()
    before_generated = snapshot(folder)
    proc = run("push", folder, "--repo_id", "someone/tiny", "--dry-run")
    assert_ok(proc)
    assert "library_name: transformers" in proc.stdout and "README.md" in proc.stdout.split("\n\n")[0].splitlines()
    assert snapshot(folder) == before_generated and len(before) == len(before_generated) + 1


@pytest.mark.parametrize(
    "kind, needles, as_user",
    [
        ("truncated", ["model.safetensors is corrupted or truncated"], "sample"),
        ("bad-config", ["config.json", "not valid JSON"], "pt.py"),
        ("not-a-model", ["is not a model folder", "no config.json"], "convert"),
    ],
)
def test_broken_model_folders_are_one_line_in_every_command(call, broken, tmp_path, kind, needles, as_user):
    """Every command on the same broken folder; one of them in a subprocess, the others in this process."""
    folder = broken(kind)
    before = snapshot(folder)
    out = tmp_path / "out"
    commands = {
        "sample": ("sample", "--model_name_or_path", folder, "--no_progress"),
        "chat": ("chat", "--model_name_or_path", folder, "--no_progress"),
        "push": ("push", folder, "--repo_id", "someone/tiny", "--dry-run"),
        "convert": ("convert", "--model_name_or_path", folder, "--output_dir", out),
        "pt.py": ("pt.py", "--model_name_or_path", folder, *TINY_PT, "--max_steps", 1, "--output_dir", out),
    }
    push_needles = {"truncated": needles, "bad-config": ["config.json", "Expecting"], "not-a-model": ["no config.json"]}
    for name, command in commands.items():
        proc = (run if name == as_user else call)(*command, stdin=b"hello\n")
        assert_refused(proc, *(push_needles[kind] if name == "push" else needles))
    assert snapshot(folder) == before and not out.exists()


def test_a_hub_repo_goes_through_the_same_gate(call, model_dir, tmp_path, monkeypatch):
    """A Hub repo id: its config.json alone is fetched and checked before from_pretrained imports the repo's code;
    a config pointing auto_map at another module is refused by the commands and by the Space, whose pipeline is
    never built. Offline (nothing fetched), the loader's own error speaks."""
    import importlib.util

    import huggingface_hub

    hostile = CONFIG_DAMAGE["local-auto-map"](json.loads((model_dir / "config.json").read_text()))
    (tmp_path / "config.json").write_text(json.dumps(hostile))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename, **kwargs: str(tmp_path / filename))
    assert_refused(call("sample", "--model_name_or_path", "someone/hostile", "--no_progress"),
                   "someone/hostile (Hub) config.json", "AutoModel -> modeling_evil.EvilModel")  # fmt: skip
    spec = importlib.util.spec_from_file_location("space_app_hub_gate", REPO_ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    monkeypatch.setattr(app, "pipeline", lambda *args, **kwargs: pytest.fail("the pipeline was built"))
    with pytest.raises(SystemExit, match="AutoModel -> modeling_evil.EvilModel"):
        app.load_generator("someone/hostile")


@pytest.mark.parametrize("kind", ["generation-config-not-json", "generation-config-list"])
def test_the_pipeline_refuses_a_broken_generation_config(broken, kind):
    """The pipeline (and from_pretrained) on a checkpoint whose generation_config.json is not a JSON object: one
    ValueError naming the file, never the defaults in silence nor a TypeError."""
    from transformers import pipeline

    folder = broken(kind)
    with pytest.raises(ValueError, match="generation_config.json of .* (is not valid JSON|is not an object of settings)"):
        pipeline("editflow-generation", model=str(folder), trust_remote_code=True)


def test_space_refuses_a_folder_whose_auto_map_points_at_another_module(broken):
    """The Space opens a checkpoint through the commands' gate: a config whose auto_map points at another module in
    the folder is refused in one line at start-up and the module is never imported (its marker never appears)."""
    import socket

    folder = broken("local-auto-map")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**ENV, "EDITFLOW_MODEL": str(folder), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}  # fmt: skip
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "space" / "app.py")], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert_refused(proc, "space/app.py: cannot load the Edit Flow model", "AutoModel -> modeling_evil.EvilModel")
    assert not (folder / MARKER).exists()


# --- sampling -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--temperature", "nan"], ["--temperature", "finite"]),
        (["--temperature", "inf"], ["--temperature", "finite"]),
        (["--top_p", "nan"], ["--top_p"]),
        (["--tau", "nan"], ["--tau"]),
        (["--tau", "1e-7"], ["--tau", "10,000,000 steps", "at most 10,000"]),
        (["--prompt", b"To be \xff"], ["--prompt is not valid UTF-8", "surrogate"]),
    ],
    ids=["temperature-nan", "temperature-inf", "top_p-nan", "tau-nan", "tau-tiny", "lone-surrogate"],
)
def test_bad_sampling_values_exit_at_once(call, model_dir, extra, needles):
    as_user = extra[:2] in (["--temperature", "nan"], ["--tau", "1e-7"]) or isinstance(extra[-1], bytes)
    if as_user:
        proc = run("sample", "--model_name_or_path", model_dir, "--no_progress", *extra)
    else:
        proc = call("sample", "--model_name_or_path", model_dir, "--no_progress", *extra)
    assert_refused(proc, *needles)


def test_chat_reports_an_undecodable_line_and_carries_on(model_dir):
    proc = run("chat", "--model_name_or_path", model_dir, "--no_progress", "--tau", "0.5", "--mask_length", "2",
               "--seed", "0", stdin=b"caf\xe9 au lait\nhello\n")  # fmt: skip
    assert_ok(proc)
    assert "Traceback" not in proc.stderr and "that line is not valid UTF-8" in proc.stderr
    assert proc.stdout.count("\n") == 1  # the session went on: one reply, to "hello"


def test_device_cuda_on_a_cpu_only_torch_is_one_line(call, model_dir, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    for command in ("sample", "chat"):
        assert_refused(call(command, "--model_name_or_path", model_dir, "--no_progress", "--device", "cuda"),
                       "--device cuda: this torch build has no CUDA; use --device cpu")  # fmt: skip


def test_pipeline_seeds_follow_one_rule(tiny_editflow_dir):
    """Negative seeds and seeds of 2**64 or more are refused by the pipeline as by the CLI (-1 was silently the
    same run as 2**64 - 1); the largest seed runs."""
    from builders import make_pipe

    pipe = make_pipe(tiny_editflow_dir)
    for seed in (-1, 2**64, 1.5):
        with pytest.raises(ValueError, match="`seed` must be a whole number from 0 to 2\\*\\*64 - 1"):
            pipe("To be", seed=seed, tau=0.5, mask_length=2)
    assert pipe("To be", seed=2**64 - 1, tau=0.5, mask_length=2)[0]["generated_text"] is not None


def test_show_trace_into_a_pipe_has_no_colour_codes(model_dir):
    proc = run("sample", "--model_name_or_path", model_dir, "--no_progress", "--tau", "0.5", "--mask_length", "3",
               "--seed", "0", "--show_trace")  # fmt: skip
    assert_ok(proc)
    assert "\x1b[" not in proc.stderr and "\x1b[" not in proc.stdout and proc.stderr.strip()


def test_chat_exit_is_a_command_like_reset(call, model_dir):
    """`/exit` and `/quit` end the session as `exit` does (they were sent to the model as messages)."""
    for word in ("/exit", "/quit", "exit"):
        proc = call("chat", "--model_name_or_path", model_dir, "--no_progress", "--tau", "0.5", "--mask_length", "2",
                    "--seed", "0", stdin=f"{word}\nhello\n".encode())  # fmt: skip
        assert_ok(proc)
        assert proc.stdout == "", (word, proc.stdout)


def test_no_room_warning_is_printed_once(tiny_editflow_dir, caplog):
    from builders import make_pipe

    pipe = make_pipe(tiny_editflow_dir)
    with caplog.at_level("WARNING"):
        pipe("To be or not to be, that is the question", max_length=4, tau=0.5, seed=0, progress_bar=False)
    assert caplog.text.count("leaves no room") == 1, caplog.text


def test_space_api_refuses_non_finite_numbers():
    """The Space's raw HTTP API passes NaN and Infinity through: each is answered with a message naming the field
    (the server logged an OverflowError traceback and the caller got `{"error": null}`)."""
    import importlib.util

    import gradio as gr

    spec = importlib.util.spec_from_file_location("space_app_nonfinite", REPO_ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    for index, name in ((1, "tau"), (2, "mask length"), (3, "temperature"), (4, "seed")):
        for value in (float("inf"), float("-inf"), float("nan")):
            request = ["To be", 0.05, 8, 1.0, 0]
            request[index] = value
            with pytest.raises(gr.Error, match=f"{name} must be a finite number"):
                app.check_request(*request, max_mask_length=64)


def test_sampling_params_floor_and_finiteness():
    for bad in (dict(tau=float("nan")), dict(tau=MIN_TAU / 2), dict(temperature=float("inf")), dict(temperature=float("nan")),
                dict(top_p=float("nan"))):  # fmt: skip
        params = {"tau": 0.01, "temperature": 1.0, "top_p": 1.0, **bad}
        with pytest.raises(ValueError):
            check_sampling_params(**params)
    check_sampling_params(MIN_TAU, 0.0, 1.0)


# --- the table: every bad input and fault tried, and what each gives -----------------------------------------------
#
# The table of docs/bad-inputs.md ("Bad inputs and faults", linked from the README) is rendered from REFUSALS (each
# row run below: its one line, its exit status, no file changed) and FAULTS (each row kept true by the test it
# names). `python tests/test_reliability.py` prints the table; test_docs_table_is_the_tested_table fails when the
# page differs from it.


@dataclass(frozen=True)
class Refusal:
    """One bad input: `commands` run on the tiny checkpoint (broken as `damage` says) with `extra` flags; each exits
    with `code` and one line holding `says`. `{model}` in `extra` is the checkpoint folder, `{tmp}` a fresh folder."""

    what: str
    commands: tuple[str, ...]
    extra: tuple[str, ...] = ()
    says: str = ""
    damage: str | None = None
    code: int = 2


def _flag(flag: str, value: str, says: str, *more: str) -> Refusal:
    return Refusal(f"`{' '.join((flag, value, *more))}`", ("pt.py",), (flag, value, *more), says)


ALL_MODEL_COMMANDS = ("sample", "pt.py", "eval", "push")
REFUSALS = [
    # training flags: every number, before the data or the model is loaded
    _flag("--learning_rate", "nan", "--learning_rate nan: must be a finite number"),
    _flag("--learning_rate", "inf", "--learning_rate inf: must be a finite number"),
    _flag("--learning_rate", "-1", "--learning_rate -1.0: must be a finite number >= 0"),
    _flag("--per_device_train_batch_size", "0", "--per_device_train_batch_size 0: must be at least 1"),
    _flag("--per_device_eval_batch_size", "0", "--per_device_eval_batch_size 0: must be at least 1"),
    _flag("--gradient_accumulation_steps", "0", "--gradient_accumulation_steps 0: must be at least 1"),
    _flag("--max_steps", "-5", "--max_steps -5: must be a positive number of steps, or -1"),
    _flag("--max_steps", "0", "--max_steps 0: must be a positive number of steps, or -1"),
    _flag("--num_train_epochs", "0", "--num_train_epochs 0.0: must be positive", "--max_steps", "-1"),
    _flag("--num_train_epochs", "nan", "--num_train_epochs nan: must be a finite number"),
    _flag("--weight_decay", "-0.1", "--weight_decay -0.1: must be a finite number >= 0"),
    _flag("--adam_beta1", "1.5", "--adam_beta1 1.5: must be in [0, 1)"),
    _flag("--adam_epsilon", "0", "--adam_epsilon 0.0: must be a finite number > 0"),
    _flag("--max_grad_norm", "nan", "--max_grad_norm nan: must be a finite number"),
    _flag("--warmup_steps", "inf", "--warmup_steps inf: must be a finite number"),
    _flag("--warmup_ratio", "1.5", "--warmup_ratio must be in [0, 1)"),
    _flag("--logging_steps", "0", "requires non-zero --logging_steps"),
    _flag("--save_steps", "0", "--save_steps 0.0: must be positive"),
    _flag("--save_total_limit", "0", "--save_total_limit 0: must be a number of checkpoints >= 1"),
    _flag("--seed", "-1", "--seed -1: must be a whole number in [0, 4294967295]"),
    _flag("--data_seed", "4294967296", "--data_seed 4294967296: must be a whole number in [0, 4294967295]"),
    _flag("--dataloader_num_workers", "-1", "--dataloader_num_workers -1: must be a number of worker processes >= 0"),
    _flag("--max_w", "nan", "--max_w nan: must be a finite number"),
    _flag("--max_w", "0", "--max_w must be positive"),
    _flag("--time_epsilon", "1", "--time_epsilon must be in [0, 1)"),
    _flag("--max_length", "1", "--max_length 1: must be at least 2"),
    _flag("--max_length", "1000000000", "x_t can reach 1000000000 tokens"),
    _flag("--eval_split_size", "1.5", "--eval_split_size 1.5: must be a fraction below 1 or a whole number of rows"),
    _flag("--num_proc", "0", "--num_proc 0: must be at least 1 process"),
    _flag("--scheduler_kwargs", '{"a": NaN}', "--scheduler_kwargs a nan: must be a finite number", "--scheduler_cls", "cubic"),
    _flag("--lora_r", "0", "--lora_r 0: must be at least 1", "--lora", "True"),
    _flag("--lora_dropout", "1.5", "--lora_dropout 1.5: must be in [0, 1)", "--lora", "True"),
    _flag("--x0_sampler", "masks[length:-3]", "--x0_sampler"),
    # model folders: checked before anything is loaded, the same line in every command
    Refusal("model folder that does not exist", ALL_MODEL_COMMANDS, says="does not exist", damage="missing"),
    Refusal("folder without config.json", ("sample", "pt.py", "eval", "convert"), says="no config.json", damage="not-a-model"),
    Refusal("truncated model.safetensors", ALL_MODEL_COMMANDS, says="model.safetensors is corrupted or truncated", damage="truncated"),
    Refusal("model.safetensors with a garbage header", ALL_MODEL_COMMANDS, says="model.safetensors is corrupted or truncated", damage="garbage-weights"),
    Refusal("config.json not valid JSON", ("sample", "pt.py", "eval", "convert"), says="config.json is not valid JSON", damage="bad-config"),
    Refusal("config.json a list, not an object", ALL_MODEL_COMMANDS, says="config.json is not a model config", damage="config-list"),
    Refusal('config.json `hidden_size: "big"`', ALL_MODEL_COMMANDS, says="hidden_size must be a positive whole number; got 'big'", damage="config-text-size"),
    Refusal("config.json `vocab_size: -5`", ALL_MODEL_COMMANDS, says="vocab_size must be a positive whole number; got -5", damage="config-negative-vocab"),
    Refusal("config.json `mask_token_id` outside the vocabulary", ALL_MODEL_COMMANDS, says="mask_token_id 1000000 is not a token id", damage="config-mask-id"),
    Refusal("config.json `encoder_config: null`", ALL_MODEL_COMMANDS, says="encoder_config must be an object", damage="config-no-encoder"),
    Refusal("config.json `scheduler: 5`", ALL_MODEL_COMMANDS, says="scheduler must be a scheduler name", damage="config-scheduler"),
    Refusal('config.json `scheduler: "quartic"`', ALL_MODEL_COMMANDS, says="Unknown kappa scheduler", damage="config-unknown-scheduler"),
    Refusal("`auto_map` pointing at another repo's code", ALL_MODEL_COMMANDS, says="AutoModel -> someone/other--modeling_other.Model", damage="foreign-auto-map"),
    Refusal("`custom_pipelines` pointing at other code", ALL_MODEL_COMMANDS, says="editflow-generation -> pipeline_other.Pipeline", damage="foreign-pipeline"),
    Refusal("`auto_map` pointing at another module in the folder (it would write a file when imported)", ALL_MODEL_COMMANDS, says="AutoModel -> modeling_evil.EvilModel", damage="local-auto-map"),
    Refusal("config.json `num_hidden_layers: 100000` beside 2 layers of weights (hung every loader)", ALL_MODEL_COMMANDS, says="num_hidden_layers is 100000 but the weights hold 2 layers", damage="huge-layers"),
    Refusal("config.json `vocab_size` other than the weights' embedding rows", ALL_MODEL_COMMANDS, says="vocab_size is 30000 but the weights' token embedding has 30522 rows", damage="vocab-at-odds"),
    Refusal("config.json sizes beyond this machine's memory (hidden_size 2**20)", ALL_MODEL_COMMANDS, says="more than this machine's", damage="huge-hidden"),
    Refusal("generation_config.json not valid JSON (was silently ignored)", ALL_MODEL_COMMANDS, says="generation_config.json is not valid JSON (line 1", damage="generation-config-not-json"),
    Refusal("generation_config.json a JSON list (was a TypeError)", ALL_MODEL_COMMANDS, says="generation_config.json is a JSON list, not an object of settings", damage="generation-config-list"),
    Refusal("tokenizer files missing", ("sample", "pt.py", "eval"), says="has no tokenizer", damage="no-tokenizer"),
    Refusal("tokenizer files missing", ("push",), says="tokenizer files are missing", damage="no-tokenizer"),
    # convert, push, eval
    Refusal("convert into its own source folder", ("convert",), ("--output_dir", "{model}", "--overwrite"), "is the source model's folder"),
    Refusal("convert into a non-empty folder", ("convert",), ("--output_dir", "{model}-copy"), "not empty; pass --overwrite", damage="copy"),
    Refusal("push: bad repo id", ("push",), ("--repo_id", "not a//repo"), "invalid repo id"),
    Refusal("push: GIF not found", ("push",), ("--gif", "{tmp}/none.gif"), "GIF {tmp}/none.gif not found"),
    Refusal("push: --eval_results not an editflow-eval JSON", ("push",), ("--eval_results", "{model}/config.json"), "is not an editflow-eval result"),
    Refusal("eval: --ref_model folder missing", ("eval",), ("--ref_model", "gpt2-dir"), "--ref_model gpt2-dir: no such folder"),
    Refusal("eval: --output in a missing folder", ("eval",), ("--output", "{tmp}/no/such/eval.json"), "its folder does not exist"),
    # sample: the run's own needs, before the model loads
    Refusal("sample, eval: `--device banana`", ("sample", "eval"), ("--device", "banana"), "--device banana: not a torch device; use cpu, cuda, cuda:N or mps"),
    Refusal("sample, eval: `--device cuda:99` (on a CPU-only torch: no CUDA; else no such GPU)", ("sample", "eval"), ("--device", "cuda:99"), "--device cuda:99: "),
    Refusal("sample: `--make_gif --gif_path` into a missing folder (failed after sampling)", ("sample",), ("--make_gif", "--gif_path", "{tmp}/no/such/trace.gif"), "its folder {tmp}/no/such does not exist"),
    Refusal("sample: `--seed -1` (was the same seed as 18446744073709551615)", ("sample",), ("--seed", "-1"), "`--seed` must be a whole number from 0 to 2**64 - 1"),
    Refusal("sample: `--seed 18446744073709551616`", ("sample",), ("--seed", "18446744073709551616"), "`--seed` must be a whole number from 0 to 2**64 - 1"),
    Refusal("eval: `--num_t 0`", ("eval",), ("--num_t", "0"), "--num_t 0: must be at least 1"),
    Refusal("eval: `--batch_size 0`", ("eval",), ("--batch_size", "0"), "--batch_size 0: must be at least 1"),
    Refusal("eval: `--max_sequences 1`", ("eval",), ("--max_sequences", "1"), "--max_sequences 1: must be at least 2"),
    Refusal("eval: `--max_length 1`", ("eval",), ("--max_length", "1"), "--max_length 1: must be at least 2"),
    Refusal("eval: `--corrupt_p nan`", ("eval",), ("--corrupt_p", "nan"), "--corrupt_p nan: must be a finite number"),
    Refusal("eval: `--corrupt_p 2`", ("eval",), ("--corrupt_p", "2"), "--corrupt_p 2.0: must be a rate in [0, 1]"),
    Refusal("eval: `--tie_break sideways`", ("eval",), ("--tie_break", "sideways"), "--tie_break must be one of"),
]

# Faults and inputs whose rows live in their own tests: (what, command, exit, the line says / what happens, test).
FAULTS = [
    ("`--hub_token hf_...` on the command line", "pt.py, then editflow-push", "0", "the token is in no file written; training_args.bin (a pickle) is pickled without it and never uploaded", "test_hub_token_is_in_no_file_and_no_pickle_is_uploaded"),
    ("push: local paths in config.json (`encoder_config._name_or_path`, e.g. site-packages), training_args.json, eval_results.json and the card's model-index; model.safetensors written 0600", "editflow-push, pt.py, convert", "0", "every path that leaves the machine is reduced to its last name (no absolute path in any uploaded file); the weights get the user's umask (0644 under 022)", "test_nothing_a_push_uploads_names_a_local_path_and_the_weights_follow_the_umask"),
    ("full disk while checkpoint-N is written (weights, optimizer, trainer state)", "pt.py", "2", "could not save …/checkpoint-6: the disk is full; it needs about … and … is free; the partial checkpoint-6 was removed and checkpoint-3 kept …; --resume_from_checkpoint True then ends as the uninterrupted run", "test_full_disk_during_a_checkpoint_keeps_the_earlier_one_and_resumes"),
    ("full disk while checkpoint-final is written", "pt.py", "2", "could not save …/checkpoint-final: the disk is full; … the earlier checkpoint-final is kept", "test_training_full_disk_keeps_the_earlier_checkpoint_final"),
    ("convert: a source whose weights do not load into its own architecture (GPT-2 config, BERT weights)", "convert", "2", "its weights do not load into its own architecture: 29 of its gpt2 weights are missing from the file (e.g. transformer.h.0…) and 42 weights of the file are not in that architecture (e.g. bert.…)", "test_convert_refuses_weights_of_another_architecture"),
    ("convert: a source config whose max_position_embeddings is at odds with its weights (was `look at the above report!`)", "convert", "2", "max_position_embeddings is 128 but the weights' position embedding has 512 rows; the config and the weights are at odds", "test_convert_refuses_a_config_at_odds_with_the_weights_positions"),
    ("full disk during a conversion", "convert", "2", "could not save …: the disk is full; … nothing was written under that name / its previous contents are kept", "test_convert_full_disk_leaves_nothing_half_written"),
    ("run killed while checkpoint-5 was written", "pt.py --resume_from_checkpoint True", "0", "Skipping incomplete checkpoint …checkpoint-5 (trainer_state.json is missing); resumes from checkpoint-3", "test_resume_true_takes_the_newest_complete_checkpoint"),
    ("--resume_from_checkpoint an incomplete folder", "pt.py", "2", "not a complete checkpoint (model.safetensors is missing)", "test_resume_from_an_incomplete_checkpoint_is_one_line"),
    ("a second training into the --output_dir of a run still going", "pt.py", "2", "--output_dir … is in use by another training run (pid … on …, started …: pt.py …); wait for it to end or stop it, or choose another --output_dir (before its first step; the first trains on)", "test_one_run_per_output_dir_and_ctrl_c_stops_like_sigterm"),
    ("Ctrl-C during training (a checkpoint save included)", "pt.py", "130", "stopped by SIGINT at step N (checkpoint-N saved …): the step finishes, the checkpoint is saved whole, no traceback", "test_one_run_per_output_dir_and_ctrl_c_stops_like_sigterm"),
    ("--output_dir holding an earlier run", "pt.py", "2", "already holds checkpoint-final …; continue it with --resume_from_checkpoint True, replace it with --overwrite_output_dir", "test_training_twice_into_one_folder_needs_overwrite"),
    ("x_t longer than the encoder's positions (pt, sft, corrupt)", "pt.py, sft.py", "2", "x_t can reach 520 tokens … lower --max_length to 512", "test_bad_training_flags_fail_before_anything_is_written"),
    ("data file: empty, not UTF-8, blank lines, broken JSON line, JSON list, lone surrogate, rows without output/text, wrong field", "pt.py, sft.py", "2", "<file> line <n>: … (each names the file and line)", "test_bad_data_is_one_line_naming_file_and_line"),
    ("held-out data rows that do not mean text (`{\"text\": 5}`, role `wizard`; were checked for shape only)", "eval", "2", "<file> line <n>: 'text' is 5, not text / turn 1 has role \"wizard\" (as training says it)", "test_eval_checks_its_rows_for_meaning_as_training_does"),
    ("folder of data files with a bad file", "sft.py", "2", "<folder>/sub/b.jsonl line 2: not valid JSON …", "test_a_folder_of_data_files_is_checked_file_by_file"),
    ("data rows that do not mean text: `{\"text\": 5}`, an SFT role outside system/user/assistant (`wizard`), an empty turn, a row without a user or an assistant turn, an empty alpaca instruction or output", "pt.py, sft.py", "2", "<file> line <n>: 'text' is 5, not text / turn 1 has role \"wizard\"; the roles are … / turn 2 (assistant) is empty / no user turn / 'output' is empty", "test_bad_data_is_one_line_naming_file_and_line"),
    ("folder mixing data formats (a .txt beside a malformed .jsonl: 3 tracebacks)", "sft.py", "2", "each file checked (<folder>/b.jsonl line 1: not valid JSON …), then … mixes data formats (json, text …); put each format in its own folder", "test_a_folder_of_data_files_is_checked_file_by_file"),
    ("sampling: NaN/inf temperature, top_p, tau; tau below 1e-4; undecodable --prompt", "sample", "2", "--temperature … finite / --tau … 10,000,000 steps / --prompt is not valid UTF-8", "test_bad_sampling_values_exit_at_once"),
    ("sample, chat: `--device cuda` on a CPU-only torch build (was a traceback)", "sample, chat", "2", "--device cuda: this torch build has no CUDA; use --device cpu (or leave it out)", "test_device_cuda_on_a_cpu_only_torch_is_one_line"),
    ("pipeline: a negative seed, or one of 2**64 or more (-1 ran as 2**64 - 1)", "pipeline", "ValueError", "`seed` must be a whole number from 0 to 2**64 - 1, or None", "test_pipeline_seeds_follow_one_rule"),
    ("sample --show_trace into a pipe or a file", "sample", "0", "the trace without ANSI colour codes (colours on a terminal; NO_COLOR / FORCE_COLOR honoured)", "test_show_trace_into_a_pipe_has_no_colour_codes"),
    ("chat: `/exit` or `/quit`", "chat", "0", "ends the session, as `exit` does (it was sent as a message)", "test_chat_exit_is_a_command_like_reset"),
    ("pipeline: a prompt that leaves no room under max_length", "pipeline", "0", "the \"leaves no room\" warning once (it was printed twice)", "test_no_room_warning_is_printed_once"),
    ("Space HTTP API: NaN or Infinity for tau, mask length, temperature or seed", "space/app.py", "-", "<field> must be a finite number; got inf (was an OverflowError traceback and `{\"error\": null}`)", "test_space_api_refuses_non_finite_numbers"),
    ("chat: an undecodable line", "chat", "0", "that line is not valid UTF-8; the session goes on", "test_chat_reports_an_undecodable_line_and_carries_on"),
    ("Space: a refused request", "space/app.py", "-", "the caller gets the message as plain text; the log gets one `refused:` line, no traceback", "test_space.py::test_a_refusal_is_plain_text_for_the_caller_and_one_line_in_the_log"),
    ("Space: damaged checkpoint at start-up", "space/app.py", "1", "cannot load the Edit Flow model …", "test_space.py::test_damaged_checkpoint_exits_with_one_line"),
    ("a Hub repo id whose config.json points auto_map at another module", "sample, space/app.py (every command's gate)", "2 / 1", "someone/hostile (Hub) config.json: it points remote code at something other than the Edit Flow files (AutoModel -> modeling_evil.EvilModel) …; the config alone is fetched, the repo's code never imported", "test_a_hub_repo_goes_through_the_same_gate"),
    ("pipeline / from_pretrained: generation_config.json not valid JSON, or a JSON list", "pipeline", "ValueError", "generation_config.json of … is not valid JSON / is not an object of settings …; fix it, or delete it to sample with the defaults", "test_the_pipeline_refuses_a_broken_generation_config"),
    ("Space: a checkpoint whose `auto_map` points at another module in the folder", "space/app.py", "1", "cannot load the Edit Flow model …: … AutoModel -> modeling_evil.EvilModel …; the module is never imported (its marker file never appears)", "test_space_refuses_a_folder_whose_auto_map_points_at_another_module"),
    ("pipeline: mask_length / max_length / max_new_tokens / num_return_sequences / batch_size of 10**9, a 50 MB prompt (2 GiB address-space limit)", "pipeline (issue K)", "ValueError", "one line within a second, nothing allocated", "test_generate.py::test_size_inputs_refused_within_a_second_under_a_2gb_address_space"),
    ("sample: --mask_length / --max_length / --max_new_tokens / --num_samples 10**9, --batch_size 0", "sample (issue K)", "2", "one line naming the flag", "test_generate.py::test_size_flags_of_the_sample_cli_are_refused_in_one_line"),
    ("pipeline: a lone surrogate in the prompt", "pipeline (issue K)", "ValueError", "… lone surrogate …", "test_pipeline.py (issue K)"),
]


def _refusal_id(row: Refusal) -> str:
    return re.sub(r"[^a-z0-9]+", "-", f"{'-'.join(row.commands)} {row.what} {' '.join(row.extra)}".lower()).strip("-")


def _command(name: str, folder: Path, out: Path, extra: list[str]) -> tuple:
    if name == "pt.py":
        return ("pt.py", "--model_name_or_path", folder, *TINY_PT, "--max_steps", 1, "--save_strategy", "no", "--output_dir", out, *extra)
    if name == "sample":
        return ("sample", "--model_name_or_path", folder, "--no_progress", *extra)
    if name == "eval":
        return ("eval", "--model_name_or_path", folder, "--dataset_args", f"{SHAKESPEARE}[train:20]", "--max_length", 32, *extra)
    if name == "push":
        return ("push", folder, "--repo_id", "someone/tiny", "--dry-run", *extra)
    return ("convert", "--model_name_or_path", folder, "--output_dir", out, *extra)


MAINS["eval"] = eval_app.main


@pytest.mark.parametrize("row", REFUSALS, ids=_refusal_id)
def test_table_row(call, broken, model_dir, tmp_path, row):
    """One row of the docs/bad-inputs.md table: every command named refuses with one line holding the text, the exit status
    given, and no file changed or written."""
    folder = model_dir if row.damage in (None, "copy") else tmp_path / "missing" if row.damage == "missing" else broken(row.damage)
    if row.damage == "copy":
        shutil.copytree(model_dir, f"{model_dir}-copy", dirs_exist_ok=True)
    watched = [p for p in (folder, Path(f"{model_dir}-copy")) if p.exists()]
    before = [snapshot(p) for p in watched]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    extra = [part.replace("{model}", str(folder)).replace("{tmp}", str(scratch)) for part in row.extra]
    out = tmp_path / "out"
    for name in row.commands:
        proc = call(*_command(name, folder, out, extra))
        assert_refused(proc, row.says.replace("{tmp}", str(scratch)))
        assert proc.returncode == row.code, (name, proc.returncode)
    assert [snapshot(p) for p in watched] == before and not out.exists() and not any(scratch.iterdir())


def render_table() -> str:
    """The docs/bad-inputs.md table: REFUSALS (each tested by test_table_row) then FAULTS (each by the test it names)."""
    lines = ["| bad input or fault | command | exit | what it gives (the one line holds) | kept true by |", "|---|---|---|---|---|"]
    for row in REFUSALS:
        lines.append(f"| {row.what} | {', '.join(row.commands)} | {row.code} | `{row.says.replace('|', '/')}` | test_table_row |")
    for what, command, code, gives, test in FAULTS:
        lines.append(f"| {what} | {command} | {code} | {gives} | {test} |")
    return "\n".join(lines) + "\n"


BAD_INPUTS_PAGE = REPO_ROOT / "docs" / "bad-inputs.md"


def test_docs_table_is_the_tested_table():
    page = BAD_INPUTS_PAGE.read_text(encoding="utf-8")
    assert render_table() in page, (
        "docs/bad-inputs.md's table differs from the tested one: paste `python tests/test_reliability.py`"
    )
    assert "(docs/bad-inputs.md)" in (REPO_ROOT / "README.md").read_text(encoding="utf-8"), "the README links the page"
    tests_dir = Path(__file__).parent
    for *_, test in FAULTS:
        file, _, name = test.rpartition("::") if "::" in test else ("test_reliability.py", "", test)
        if "(issue K)" in test or not (tests_dir / file).is_file():
            continue  # issue K's tests: checked once that branch is merged
        assert f"def {name}(" in (tests_dir / file).read_text(encoding="utf-8"), test


if __name__ == "__main__":
    print(render_table(), end="")
