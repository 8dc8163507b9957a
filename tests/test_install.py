"""The three ways to run editflow_hf: `pip install .` (a wheel: real files under editflow_hf/modeling/),
`pip install -e .` and a checkout on PYTHONPATH (the seed's `PYTHONPATH=. accelerate launch training/pt.py`;
both resolve the symlink editflow_hf/modeling -> ../modeling). Each saves a checkpoint, and that checkpoint loads
with `trust_remote_code=True` in a process that cannot import editflow_hf.

The installs go into a throwaway `python -m venv --system-site-packages --without-pip` (pip, setuptools, torch and
transformers come from the system), offline (`--no-index --no-deps --no-build-isolation`); the system's own
editflow_hf install is untouched."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, run_without_editflow_hf

pytestmark = pytest.mark.slow

TESTS_DIR = REPO_ROOT / "tests"
# Every remote-code file of the repository (test_model checks that a checkpoint's config requires each of them).
REMOTE_CODE = {path.name for path in (REPO_ROOT / "modeling").glob("*_editflow.py")}

# Runs under the interpreter being tested: which editflow_hf it imports, then a tiny model saved with its outputs.
SAVE = """
import json, pathlib, sys
import torch
import editflow_hf
from builders import tiny_editflow_model

root = pathlib.Path(sys.argv[2]).resolve()
package = pathlib.Path(editflow_hf.__file__).resolve().parent
assert package.is_relative_to(root), f"imported {package}, expected it under {root}"
model = tiny_editflow_model(seed=3, rate_bias=0.5)
model.save_pretrained(sys.argv[1])
ids = torch.tensor([[1, 3, 3, 7, 9]])
with torch.no_grad():
    out = model(ids, torch.ones_like(ids))
print("OUT", json.dumps({"package": str(package), "ins_rate": out.ins_rate[0].tolist(), "sub_logits": out.sub_logits[0, :, :4].tolist()}))
"""

LOAD = """
import json, torch
from transformers import AutoModel
from transformers.dynamic_module_utils import get_class_from_dynamic_module

path, expected = {path!r}, json.loads({expected!r})
model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model)
ids = torch.tensor([[1, 3, 3, 7, 9]])
with torch.no_grad():
    out = model(ids, torch.ones_like(ids))
torch.testing.assert_close(out.ins_rate[0], torch.tensor(expected["ins_rate"]))
torch.testing.assert_close(out.sub_logits[0, :, :4], torch.tensor(expected["sub_logits"]))
pipeline_class = get_class_from_dynamic_module("pipeline_editflow.EditFlowGenerationPipeline", path)
assert pipeline_class.__name__ == "EditFlowGenerationPipeline"
print("STANDALONE-OK")
"""


def source_copy(dest: Path) -> Path:
    """The files an install needs (pyproject, README, editflow_hf with its modeling symlink kept, modeling/)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "editflow_hf", dest / "editflow_hf", symlinks=True, ignore=ignore)
    shutil.copytree(REPO_ROOT / "modeling", dest / "modeling", ignore=ignore)
    assert (dest / "editflow_hf" / "modeling").is_symlink()
    return dest


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    return proc


def venv_python(root: Path) -> Path:
    # --without-pip: pip, setuptools and wheel come from the system (ensurepip would shadow them with its own).
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)])
    return root / ("Scripts" if os.name == "nt" else "bin") / "python"


def pip_install(python: Path, *target: str, cwd: Path) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    run([str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-build-isolation", *target], cwd=cwd, env=env)


def save_and_load(python: Path, expected_root: Path, checkpoint: Path, env: dict, cwd: Path) -> dict:
    proc = run([str(python), "-c", SAVE, str(checkpoint), str(expected_root)], cwd=cwd, env=env)
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("OUT "))[4:])
    assert REMOTE_CODE <= {p.name for p in checkpoint.iterdir()}, sorted(p.name for p in checkpoint.iterdir())
    proc = run_without_editflow_hf(LOAD.format(path=str(checkpoint), expected=json.dumps(result)))
    assert "STANDALONE-OK" in proc.stdout
    return result


@pytest.mark.parametrize("mode", ["wheel", "editable"])
def test_pip_install_saves_a_checkpoint_that_loads_standalone(mode, tmp_path):
    source = source_copy(tmp_path / "src")
    python = venv_python(tmp_path / "venv")
    pip_install(python, *(["-e", "."] if mode == "editable" else ["."]), cwd=source)
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    if mode == "wheel":
        expected_root = site
        installed = site / "editflow_hf" / "modeling"
        assert installed.is_dir() and not installed.is_symlink()  # the wheel holds the files, not the link
        assert REMOTE_CODE <= {p.name for p in installed.iterdir()}
    else:
        expected_root = source
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}  # builders.py only; editflow_hf comes from the install
    save_and_load(python, expected_root, tmp_path / "checkpoint", env, cwd=tmp_path)


def test_checkout_on_pythonpath_saves_a_checkpoint_that_loads_standalone(tmp_path):
    """The seed's way: `PYTHONPATH=.` from a checkout, whatever else is installed."""
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{TESTS_DIR}"}
    result = save_and_load(Path(sys.executable), REPO_ROOT, tmp_path / "checkpoint", env, cwd=REPO_ROOT)
    assert Path(result["package"]) == (REPO_ROOT / "editflow_hf").resolve()
