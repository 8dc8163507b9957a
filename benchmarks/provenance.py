"""Where a benchmark figure came from: date, machine, commit, command and the versions of the libraries it ran with.

Every benchmark's closing JSON line carries `"provenance": provenance()`, so a figure copied into RESULTS.md can be
traced to the releases that made it (figures moved between transformers 5.24 and 5.25 once, with no change here).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# The releases whose changes have moved a figure or a test here; the rest are pinned by .ci/constraints.txt.
LIBRARIES = (
    "torch", "transformers", "tokenizers", "accelerate", "datasets", "huggingface_hub", "safetensors", "peft",
    "kernels", "numpy", "rapidfuzz", "gguf", "gradio",
)  # fmt: skip


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    """Installed version of each distribution (None where it is not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _commit() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(command: list[str] | None = None) -> dict:
    """Date (UTC), machine, commit, command line and library versions, for a benchmark's closing JSON line."""
    machine = {"cpu": _cpu_model(), "cores": os.cpu_count(), "system": platform.platform()}
    try:
        import torch

        if torch.cuda.is_available():
            machine["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine,
        "commit": _commit(),
        "command": " ".join(["python"] + list(sys.argv if command is None else command)),
        "python": platform.python_version(),
        "versions": library_versions(),
    }
