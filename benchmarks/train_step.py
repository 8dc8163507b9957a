"""Cost of one Edit Flow training step against masked-LM training on the same backbone and batch shape.

    python benchmarks/train_step.py                 # tiny ModernBERT on CPU (the acceptance configuration)
    python benchmarks/train_step.py --device cuda   # ModernBERT-large config, bf16 autocast, batch 64 x 128

One step = forward, loss, backward, AdamW step, zero_grad. Compared (random weights, no downloads):
  ours        EditFlowForEditing + EditFlowLoss on a collated batch (x1 of `seq_len` tokens, x0 from `--x0`);
              the collator runs outside the timed step, as it does in DataLoader workers
  mlm         AutoModelForMaskedLM with labels on ~15% masked tokens: full-vocabulary logits at every position,
              as users train it
  mlm_sparse  the same with config.sparse_prediction=True: the vocabulary head only at the masked rows
  encoder     the bare encoder, loss = mean(hidden^2): the floor that every method pays
Each method gets warm-up steps, then the median of the timed steps (over several batches, so ours sees the
spread of edit counts). `collator_batches_per_s` is how many batches one process collates per second at
`--collator-batch` x `--seq-len` with the same x0 spec: it must outpace the training steps.
The last line of stdout is a JSON object with the figures and the configuration.
"""

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM, ModernBertModel

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ itself, also when imported by a test
from provenance import provenance  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from editflow_hf import EditFlowConfig, EditFlowForEditing  # noqa: E402
from editflow_hf.path.collator import EditFlowCollator  # noqa: E402
from editflow_hf.objective.loss import EditFlowLoss  # noqa: E402

PAD, MASK, BOS, EOS = 0, 103, 101, 102  # the BERT WordPiece special ids (also valid ids in a 50368 vocabulary)
FIRST_WORD_ID = 1000
METHODS = ("ours", "mlm", "mlm_sparse", "encoder")

TINY = dict(vocab_size=30522, hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
            global_attn_every_n_layers=3, local_attention=128)  # fmt: skip
LARGE = dict(vocab_size=50368, hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, intermediate_size=2624,
             global_attn_every_n_layers=3, local_attention=128)  # fmt: skip


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--model-size", choices=("tiny", "large"), default=None, help="default: tiny on cpu, large on cuda")
    parser.add_argument("--batch", type=int, default=None, help="default: 16 on cpu, 64 on cuda")
    parser.add_argument("--seq-len", type=int, default=128, help="len(x1) with BOS; the MLM batch is batch x seq-len")
    parser.add_argument("--x0", default="masks[length:64]", help="x0 sampler spec of the Edit Flow batches")
    parser.add_argument("--mlm-probability", type=float, default=0.15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--collator-batch", type=int, default=64)
    parser.add_argument("--collator-seconds", type=float, default=2.0, help="how long to time the collator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--interleave", action=argparse.BooleanOptionalAction, default=None,
                        help="round-robin the methods step by step (default on cpu; cuda runs them one by one)")
    args = parser.parse_args(argv)
    if args.interleave is None:
        args.interleave = args.device == "cpu"
    args.model_size = args.model_size or ("tiny" if args.device == "cpu" else "large")
    args.batch = args.batch or (16 if args.device == "cpu" else 64)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda needs a CUDA GPU; run without it for the CPU benchmark.")
    return args


def encoder_config(args) -> ModernBertConfig:
    sizes = TINY if args.model_size == "tiny" else LARGE
    return ModernBertConfig(
        **sizes,
        max_position_embeddings=max(512, args.seq_len),
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
        cls_token_id=BOS,
        sep_token_id=EOS,
    )


def random_x1(args, n, rng) -> list[dict]:
    vocab = encoder_config(args).vocab_size
    return [{"input_ids": [BOS] + rng.integers(FIRST_WORD_ID, vocab, args.seq_len - 1).tolist()} for _ in range(n)]


def mlm_batch(features, args, rng) -> dict:
    """BERT-style masking: 15% of the non-BOS tokens are predicted; they read [MASK] in the input."""
    x1 = torch.tensor([f["input_ids"] for f in features])
    predict = torch.from_numpy(rng.random(x1.shape) < args.mlm_probability)
    predict[:, 0] = False
    labels = torch.where(predict, x1, torch.full_like(x1, -100))
    return {"input_ids": x1.masked_fill(predict, MASK), "attention_mask": torch.ones_like(x1), "labels": labels}


def time_steps(steps: dict, batches: dict, args) -> dict:
    """Seconds of every timed step (after warm-up) of each method in `steps`.

    With several methods, step i of every method runs before step i + 1 of any, in a rotating order, so that a
    burst of load from other processes on the machine hits all methods alike.
    """
    synchronize = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    methods = list(steps)
    times = {m: [] for m in methods}
    for i in range(args.warmup + args.steps):
        for k in range(len(methods)):
            method = methods[(i + k) % len(methods)]
            synchronize()
            start = time.perf_counter()
            steps[method](batches[method][i])
            synchronize()
            if i >= args.warmup:
                times[method].append(time.perf_counter() - start)
    return times


def make_step(model, compute_loss, args):
    # The fused kernel is what transformers.Trainer uses by default (optim="adamw_torch_fused" on torch >= 2.8).
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.device == "cuda")

    def step(batch):
        batch = type(batch)({k: v.to(args.device, non_blocking=True) for k, v in batch.items()})  # dict or EditFlowBatch
        with autocast:
            loss = compute_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def build(method, args):
    torch.manual_seed(args.seed)
    config = encoder_config(args)
    if method == "ours":
        model = EditFlowForEditing(EditFlowConfig(encoder_config=config, mask_token_id=MASK, bos_token_id=BOS, pad_token_id=PAD))
        loss_fn = EditFlowLoss()
        return model, lambda m, b: loss_fn(m(**b.model_inputs()), b).loss
    if method in ("mlm", "mlm_sparse"):
        config.sparse_prediction = method == "mlm_sparse"
        return ModernBertForMaskedLM(config), lambda m, b: m(**b).loss
    return ModernBertModel(config), lambda m, b: m(**b).last_hidden_state.float().square().mean()


def collator_speed(args, rng) -> float:
    collator = EditFlowCollator(mask_token_id=MASK, bos_token_id=BOS, pad_token_id=PAD, x0_sampler=args.x0, seed=args.seed)
    features = random_x1(args, args.collator_batch, rng)
    collator(features)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.collator_seconds:
        collator(features)
        n += 1
    return n / (time.perf_counter() - start)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # CPU: keeps subnormal optimizer states from skewing any method's timing
    rng = np.random.default_rng(args.seed)
    n_batches = args.warmup + args.steps
    features = [random_x1(args, args.batch, rng) for _ in range(n_batches)]
    collator = EditFlowCollator(mask_token_id=MASK, bos_token_id=BOS, pad_token_id=PAD, x0_sampler=args.x0, seed=args.seed)
    batches = {
        "ours": [collator(f) for f in features],
        "mlm": [mlm_batch(f, args, rng) for f in features],
        "encoder": [{"input_ids": torch.tensor([x["input_ids"] for x in f])} for f in features],
    }
    batches["mlm_sparse"] = batches["mlm"]
    ours_widths = [b["input_ids"].shape[1] for b in batches["ours"]]
    ours_edits = [len(b["edit_kind"]) for b in batches["ours"]]

    params, times, peaks = {}, {}, {m: None for m in METHODS}

    def prepare(method):
        model, compute_loss = build(method, args)
        model.to(args.device).train()
        params[method] = sum(p.numel() for p in model.parameters())
        return make_step(model, compute_loss, args)

    if args.interleave:
        times = time_steps({m: prepare(m) for m in METHODS}, batches, args)
    else:  # one method at a time, so that each peak memory figure is that method's own
        for method in METHODS:
            gc.collect()
            if args.device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            times.update(time_steps({method: prepare(method)}, batches, args))
            if args.device == "cuda":
                peaks[method] = torch.cuda.max_memory_allocated() / 2**30
    seconds = {m: statistics.median(times[m]) for m in METHODS}
    for method in METHODS:
        print(f"{method:>10}: {seconds[method] * 1e3:8.1f} ms/step  params {params[method] / 1e6:.1f}M"
              + (f"  peak {peaks[method]:.2f} GiB" if peaks[method] is not None else ""), flush=True)  # fmt: skip
    gc.collect()

    batches_per_s = collator_speed(args, rng)
    print(f"collator: {batches_per_s:.1f} batches/s at {args.collator_batch} x {args.seq_len}, one process", flush=True)
    config = encoder_config(args)
    result = {
        "ours_s": seconds["ours"],
        "mlm_s": seconds["mlm"],
        "mlm_sparse_s": seconds["mlm_sparse"],
        "encoder_s": seconds["encoder"],
        "ratio": seconds["ours"] / seconds["mlm"],
        "ratio_to_sparse_mlm": seconds["ours"] / seconds["mlm_sparse"],  # issue U's bar: at most 1.0
        "ratio_paired_median": statistics.median(o / m for o, m in zip(times["ours"], times["mlm"])),
        "collator_batches_per_s": batches_per_s,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": "bf16 autocast" if args.device == "cuda" else "float32",
        "batch": args.batch,
        "seq_len": args.seq_len,
        "ours_mean_width": float(np.mean(ours_widths)),
        "ours_mean_edits": float(np.mean(ours_edits)),
        "model_size": args.model_size,
        "hidden": config.hidden_size,
        "layers": config.num_hidden_layers,
        "vocab": config.vocab_size,
        "params_m": {k: round(v / 1e6, 2) for k, v in params.items()},
        "x0": args.x0,
        "collator_batch": args.collator_batch,
        "warmup": args.warmup,
        "steps": args.steps,
        "interleave": args.interleave,
    }
    if args.device == "cuda":
        result["peak_mem_gib"] = {k: round(v, 2) for k, v in peaks.items()}
    print(json.dumps({**result, "provenance": provenance()}))


if __name__ == "__main__":
    main()
