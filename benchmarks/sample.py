"""Sampling throughput: sequences per second of tau-leaping (tau 0.01, BOS + 64 masks) at batch 1 and batch 64.

    python benchmarks/sample.py                       # CPU, tiny random ModernBERT (hidden 32, vocab 30522)
    python benchmarks/sample.py --device cuda         # ModernBERT-large shapes in bf16, random weights

No downloads: the model is an EditFlowForEditing built from a random EditFlowConfig. Batch 1 is timed over
`--b1_runs` sequences, batch 64 over one batch. The last line printed is JSON.
"""

import argparse
import json
import time

import torch

from editflow_hf.modeling.configuration_editflow import EditFlowConfig
from editflow_hf.modeling.modeling_editflow import EditFlowForEditing
from editflow_hf.modeling.sampling_editflow import TauLeapSampler

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


def time_sampling(model, batch: int, runs: int, tau: float, mask_length: int, seed: int, device: str) -> float:
    """Seconds to sample `runs` batches of `batch` sequences."""
    generator = torch.Generator(device=device).manual_seed(seed)
    sampler = TauLeapSampler(model, tau=tau, generator=generator, suppress_token_ids=[PAD, BOS, MASK])
    start_ids = [[BOS] + [MASK] * mask_length] * batch
    protected = [[True] + [False] * mask_length] * batch
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(runs):
        sampler.sample(start_ids, protected, [True] * batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (tiny model, float32) or cuda (ModernBERT-large, bf16).")
    parser.add_argument("--tau", type=float, default=0.01)
    parser.add_argument("--mask_length", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--b1_runs", type=int, default=8, help="Sequences sampled one at a time for the batch-1 figure.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    on_gpu = args.device.startswith("cuda")
    shape = LARGE if on_gpu else TINY
    dtype = torch.bfloat16 if on_gpu else torch.float32
    model = build_model(shape, args.device, dtype)

    time_sampling(model, 2, 1, max(args.tau, 0.1), 8, args.seed, args.device)  # warm-up
    b1_seconds = time_sampling(model, 1, args.b1_runs, args.tau, args.mask_length, args.seed, args.device)
    batch_seconds = time_sampling(model, args.batch_size, 1, args.tau, args.mask_length, args.seed, args.device)
    seq_per_s_b1 = args.b1_runs / b1_seconds
    seq_per_s_batch = args.batch_size / batch_seconds
    result = {
        "seq_per_s_b1": round(seq_per_s_b1, 3),
        "seq_per_s_b64": round(seq_per_s_batch, 3),
        "s_per_seq_b1": round(1.0 / seq_per_s_b1, 4),
        "speedup": round(seq_per_s_batch / seq_per_s_b1, 2),
        "config": {
            "device": args.device,
            "dtype": str(dtype).removeprefix("torch."),
            "model": "modernbert-large-shape" if on_gpu else "modernbert-tiny",
            **{k: shape[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")},
            "tau": args.tau,
            "mask_length": args.mask_length,
            "batch_size": args.batch_size,
            "b1_runs": args.b1_runs,
            "threads": torch.get_num_threads(),
        },
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
