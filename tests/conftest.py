"""Shared fixtures: tiny real checkpoints built offline (by builders.py), the repository's data files, a standalone runner."""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from builders import build_tiny_mlm, minilm_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"  # shipped with the repository: tiny-shakespeare.txt, qa-tiny.jsonl
# Measured slow tests (tests/measure_slow.py): marked `slow` here, so `-m "not slow"` is a quick subset.
SLOW_LIST = Path(__file__).with_name("slow_tests.txt")


def listed_slow_tests() -> set[str]:
    if not SLOW_LIST.exists():
        return set()
    lines = SLOW_LIST.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def pytest_collection_modifyitems(config, items):
    slow = listed_slow_tests()
    for item in items:
        if item.nodeid in slow:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The repository's data folder (never skipped: the files are part of the repository)."""
    return DATA_DIR


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    return minilm_dir()


@pytest.fixture(scope="session")
def tiny_mlm_dir(tmp_path_factory) -> Path:
    """A tiny random ModernBertForMaskedLM with a BERT WordPiece tokenizer."""
    return build_tiny_mlm("modernbert", tmp_path_factory.mktemp("tiny-modernbert-mlm"))


@pytest.fixture(scope="session")
def tiny_editflow_dir(tiny_mlm_dir, tmp_path_factory) -> Path:
    """The tiny ModernBERT MLM converted to an Edit Flow checkpoint. Treat as read-only (copy to modify)."""
    from editflow_hf.conversion import convert

    return convert(str(tiny_mlm_dir), tmp_path_factory.mktemp("tiny-editflow") / "model")


@pytest.fixture(scope="session")
def minilm_editflow_dir(minilm_path, tmp_path_factory) -> Path:
    """The packaged pretrained MiniLM encoder (headless BertModel) converted. Treat as read-only."""
    from editflow_hf.conversion import convert

    return convert(str(minilm_path), tmp_path_factory.mktemp("minilm-editflow") / "model")


def run_without_editflow_hf(code: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run Python `code` in a fresh process in which `import editflow_hf` fails, as for a user who never
    installed this package. Raises with the process output if it fails."""
    prelude = "import sys\nsys.modules['editflow_hf'] = None\n"
    env = dict(os.environ)
    env["PYTHONPATH"] = ""
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=cwd or "/",
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"standalone process failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def load_benchmark(name: str):
    """benchmarks/<name>.py imported as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
