"""Sampling speed: tau-leaping (tau 0.01, BOS + 64 masks) at batch 1 and batch 64, eager and compiled.

    python benchmarks/sample.py                        # CPU, tiny random ModernBERT (hidden 32, vocab 30522)
    python benchmarks/sample.py --device cuda          # ModernBERT-large shapes in bf16, random weights
    python benchmarks/sample.py --modes eager          # skip the compiled path (its compilation takes minutes on CPU)

No downloads: the model is an EditFlowForEditing built from a random EditFlowConfig. For each mode: batch 1 is
timed over `--b1_runs` sequences, batch 64 over one batch; the per-step time at batch 1 stands beside one bare
encoder forward (`model.encoder`, eager, batch 1) at the median width the batch-1 run stepped at. The compiled
mode (`TauLeapSampler(compile=True)`: torch.compile at bucketed widths, CUDA graphs on GPU) first runs an untimed
warm-up that compiles the shapes the timed runs need; `compile_s` is that warm-up's wall time. On CPU the times
are also given as CPU time of the process (`cpu_*`), which a machine shared with other jobs disturbs less than
the wall clock. The last line printed is JSON.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from editflow_hf.modeling.configuration_editflow import EditFlowConfig
from editflow_hf.modeling.modeling_editflow import EditFlowForEditing
from editflow_hf.modeling.sampling_editflow import TauLeapSampler, num_tau_steps

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ itself, also when imported by a test
from provenance import provenance  # noqa: E402

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=30522,
            global_attn_every_n_layers=2, local_attention=16)  # fmt: skip
LARGE = dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, intermediate_size=2624, vocab_size=50368,
             global_attn_every_n_layers=3, local_attention=128)  # fmt: skip
PAD, BOS, EOS, MASK = 0, 1, 2, 3


def build_model(shape: dict, device: str, dtype: torch.dtype) -> EditFlowForEditing:
    encoder = dict(model_type="modernbert", max_position_embeddings=512, pad_token_id=PAD, bos_token_id=BOS,
                   eos_token_id=EOS, cls_token_id=BOS, sep_token_id=EOS, **shape)  # fmt: skip
    config = EditFlowConfig(encoder_config=encoder, mask_token_id=MASK, bos_token_id=BOS, pad_token_id=PAD, eos_token_id=EOS)
    torch.manual_seed(0)
    return EditFlowForEditing(config).to(device=device, dtype=dtype).eval()


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_sampling(model, batch: int, runs: int, tau: float, mask_length: int, seed: int, device: str, compile: bool,
                  widths: list[int] | None = None) -> tuple[float, float]:  # fmt: skip
    """(wall seconds, process CPU seconds) to sample `runs` batches of `batch` sequences; the width of every step
    is appended to `widths` when given."""
    start_ids = [[BOS] + [MASK] * mask_length] * batch
    protected = [[True] + [False] * mask_length] * batch
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for run in range(runs):
        sampler = TauLeapSampler(model, tau=tau, seed=seed + run, suppress_token_ids=[PAD, BOS, MASK], compile=compile)
        for step in sampler.iter_steps(start_ids, protected, [True] * batch):
            if widths is not None:
                widths.append(step.edits.tokens.shape[1])
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def bare_encoder_seconds(model, width: int, device: str, repeats: int = 50) -> tuple[float, float]:
    """Median (wall, process CPU) seconds of one eager encoder forward of one row of `width` tokens."""
    input_ids = torch.full((1, width), MASK, device=device)
    attention_mask = torch.ones_like(input_ids)
    walls, cpus = [], []
    with torch.no_grad():
        for index in range(repeats + 5):
            synchronize(device)
            wall, cpu = time.perf_counter(), time.process_time()
            model.encoder(input_ids=input_ids, attention_mask=attention_mask)
            synchronize(device)
            if index >= 5:
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def figures(prefix: str, b1_seconds: float, batch_seconds: float, encoder_seconds: float, args, steps: int) -> dict:
    """Batch-1 seconds per sequence and per step, batch-64 sequences per second, and the step beside the encoder."""
    step_ms = b1_seconds / (args.b1_runs * steps) * 1e3
    return {
        f"{prefix}s_per_seq_b1": round(b1_seconds / args.b1_runs, 4),
        f"{prefix}seq_per_s_b64": round(args.batch_size / batch_seconds, 3),
        f"{prefix}step_ms_b1": round(step_ms, 4),
        f"{prefix}bare_encoder_ms": round(encoder_seconds * 1e3, 4),
        f"{prefix}step_over_encoder": round(step_ms / (encoder_seconds * 1e3), 2),
    }


def measure(model, args, compile: bool) -> dict:
    steps = num_tau_steps(args.tau)
    result = {}
    if compile:  # compile what the timed runs will meet: widths up to the buckets of a long run, both batch sizes
        synchronize(args.device)
        start = time.perf_counter()
        time_sampling(model, 1, 2, args.tau, args.mask_length, args.seed + 1000, args.device, True)
        time_sampling(model, args.batch_size, 1, args.tau, args.mask_length, args.seed + 1000, args.device, True)
        result["compile_s"] = round(time.perf_counter() - start, 2)
    else:
        time_sampling(model, 2, 1, max(args.tau, 0.1), 8, args.seed, args.device, False)  # warm-up
    widths: list[int] = []
    b1_wall, b1_cpu = time_sampling(model, 1, args.b1_runs, args.tau, args.mask_length, args.seed, args.device, compile, widths)
    batch_wall, batch_cpu = time_sampling(model, args.batch_size, 1, args.tau, args.mask_length, args.seed, args.device, compile)
    width = int(statistics.median(widths))
    encoder_wall, encoder_cpu = bare_encoder_seconds(model, width, args.device)
    result.update(figures("", b1_wall, batch_wall, encoder_wall, args, steps), median_width_b1=width)
    if not args.device.startswith("cuda"):  # CPU time: what a shared machine disturbs least
        result.update(figures("cpu_", b1_cpu, batch_cpu, encoder_cpu, args, steps))
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (tiny model, float32) or cuda (ModernBERT-large, bf16).")
    parser.add_argument("--tau", type=float, default=0.01)
    parser.add_argument("--mask_length", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--b1_runs", type=int, default=8, help="Sequences sampled one at a time for the batch-1 figure.")
    parser.add_argument("--modes", default="eager,compiled", help="Comma-separated: eager, compiled.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    on_gpu = args.device.startswith("cuda")
    shape = LARGE if on_gpu else TINY
    dtype = torch.bfloat16 if on_gpu else torch.float32
    model = build_model(shape, args.device, dtype)
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = set(modes) - {"eager", "compiled"}
    if unknown:
        parser.error(f"--modes takes eager and/or compiled; got {sorted(unknown)}")
    result = {mode: measure(model, args, compile=mode == "compiled") for mode in modes}
    for mode in modes:
        print(mode, json.dumps(result[mode]))
    result["config"] = {
        "device": args.device,
        "dtype": str(dtype).removeprefix("torch."),
        "model": "modernbert-large-shape" if on_gpu else "modernbert-tiny",
        **{k: shape[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")},
        "tau": args.tau,
        "mask_length": args.mask_length,
        "batch_size": args.batch_size,
        "b1_runs": args.b1_runs,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(json.dumps({**result, "provenance": provenance()}))
    return result


if __name__ == "__main__":
    main()
