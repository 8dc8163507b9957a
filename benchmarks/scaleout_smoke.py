"""A few pt.py steps under each accelerate config (ddp, fsdp, zero2; one process), for a GPU machine.

    python benchmarks/scaleout_smoke.py prepare DIR          # tiny Qwen3 + BPE tokenizer -> DIR/model (Edit Flow), DIR/text.txt
    accelerate launch --config_file training/accelerate_configs/fsdp.yaml --num_processes 1 training/pt.py \
        --model_name_or_path DIR/model --dataset_args DIR/text.txt ... --output_dir DIR/fsdp
    python benchmarks/scaleout_smoke.py check DIR/fsdp/checkpoint-final

`bidirectional DIR/model` checks on CUDA that every attention kernel present (eager, sdpa, flash_attention_2)
attends both ways. `check` verifies that checkpoint-final is a complete standalone Edit Flow folder (editflow-push's check), loads it
with trust_remote_code in a process without editflow_hf, and prints a JSON line last (first and last logged loss).
benchmarks/gpu.sh runs all of it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def prepare(folder: Path) -> None:
    from editflow_hf.conversion import convert
    from tiny_decoders import build_tiny_causal_lm, corpus

    folder.mkdir(parents=True, exist_ok=True)
    convert(str(build_tiny_causal_lm("qwen3", folder / "source")), folder / "model")
    (folder / "text.txt").write_text(corpus(20000, seed=1))
    print(json.dumps({"prepared": str(folder)}))


def check(checkpoint: Path) -> None:
    from editflow_hf.checkpoints import check_checkpoint

    check_checkpoint(checkpoint)
    code = (
        "import sys; sys.modules['editflow_hf'] = None\n"
        "from transformers import AutoModel\n"
        f"model = AutoModel.from_pretrained({str(checkpoint)!r}, trust_remote_code=True)\n"
        "assert model.config.bidirectional\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": ""}, cwd="/")
    logs = [e["loss"] for e in json.loads((checkpoint / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    print(json.dumps({"checkpoint": str(checkpoint), "complete": True, "first_loss": logs[0], "last_loss": logs[-1]}))


def bidirectional(model_dir: Path) -> None:
    """On CUDA in bf16, for each attention kernel available: changing the last token changes earlier positions."""
    import importlib.util

    import torch
    from transformers import AutoModel

    kernels = ["eager", "sdpa"] + (["flash_attention_2"] if importlib.util.find_spec("flash_attn") else [])
    results = {}
    for kernel in kernels:
        model = AutoModel.from_pretrained(model_dir, trust_remote_code=True, dtype=torch.bfloat16, attn_implementation=kernel)
        model = model.to("cuda").eval()
        ids = torch.tensor([[model.config.bos_token_id, 5, 17, 42, 9, 31, 12, 8]], device="cuda")
        changed = ids.clone()
        changed[0, -1] = 77
        with torch.no_grad():
            before, after = model(ids).ins_rate[0, :-1], model(changed).ins_rate[0, :-1]
        results[kernel] = bool((before - after).abs().min() > 0)
    print(json.dumps({"bidirectional": results}))


if __name__ == "__main__":
    command, path = sys.argv[1], Path(sys.argv[2])
    {"prepare": prepare, "check": check, "bidirectional": bidirectional}[command](path)
