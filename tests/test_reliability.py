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
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA_DIR, REPO_ROOT
from editflow_hf.apps import chat as chat_app
from editflow_hf.apps import convert as convert_app
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
    ],
    ids=["empty", "latin1", "blank-lines", "broken-json", "json-list", "lone-surrogate", "no-output", "null-text", "other-field"],
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
    with pytest.raises(EditFlowError, match="the disk is full; nothing was written under that name"):
        convert(str(tiny_mlm_dir), fresh)
    assert not fresh.exists()
    existing = Path(shutil.copytree(model_dir, tmp_path / "existing"))
    before = snapshot(existing)
    with pytest.raises(EditFlowError, match="the disk is full; its previous contents are kept"):
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
    assert_refused(proc, "could not save", "No space left on device", "the earlier checkpoint-final is kept")
    assert snapshot(out / "checkpoint-final") == before
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-final"]  # no staging folder left behind


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


def test_sampling_params_floor_and_finiteness():
    for bad in (dict(tau=float("nan")), dict(tau=MIN_TAU / 2), dict(temperature=float("inf")), dict(temperature=float("nan")),
                dict(top_p=float("nan"))):  # fmt: skip
        params = {"tau": 0.01, "temperature": 1.0, "top_p": 1.0, **bad}
        with pytest.raises(ValueError):
            check_sampling_params(**params)
    check_sampling_params(MIN_TAU, 0.0, 1.0)
