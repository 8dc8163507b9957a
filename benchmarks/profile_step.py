"""Where a batch-1 tau-leaping step spends its time, and an in-process A/B against another commit's sampler.

    python benchmarks/profile_step.py                                # sections of this checkout's step
    git archive main modeling | tar -x -C /tmp/base                  # export a baseline's remote code ...
    python benchmarks/profile_step.py --baseline /tmp/base/modeling  # ... and time both, interleaved

Sizes of benchmarks/sample.py (tiny random ModernBERT, hidden 32, vocab 30522; tau 0.01, BOS + 64 masks, batch 1).
Times are CPU time of this thread (`time.thread_time`), one torch thread: on a machine shared with other jobs the
wall clock mostly measures waiting for a core, CPU time what the step costs. Sections are timed by wrapping the
sampler's methods (the encoder, the model call around it, edit permissions, firing, token heads, token sampling,
applying the edits); "other" is the rest of the step (Python, small tensor ops, host reads). The A/B runs the two
samplers alternately on the same model and seeds (batch sizes `--ab_batches`; `--compile`: this checkout's compiled
step, compiled during an untimed warm-up; the compiled step's sections are profiled too), reports median CPU seconds
per sequence and whether the outputs are identical (they are not across the change to per-row draws, which re-keyed
every random number). `--heads` also times a token head's vocabulary projection for a few rows, torch's `linear`
against `addmm` from W^T (`project_tokens`), at three model sizes.
The last line printed is JSON.
"""

import argparse
import importlib
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ itself, also when imported by a test
from provenance import provenance  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sample import BOS, MASK, PAD, TINY, build_model  # noqa: E402

from editflow_hf.modeling import sampling_editflow  # noqa: E402

clock = time.thread_time


def load_baseline(folder: str):
    """The sampler module of an exported `modeling/` folder, imported as its own package."""
    folder = Path(folder).resolve()
    spec = importlib.util.spec_from_file_location("baseline_modeling", folder / "__init__.py", submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules["baseline_modeling"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("baseline_modeling.sampling_editflow")


def sample_once(module, model, seed: int, tau: float, mask_length: int, batch: int = 1, **kwargs) -> tuple[float, list]:
    sampler = module.TauLeapSampler(
        model, tau=tau, generator=torch.Generator().manual_seed(seed), suppress_token_ids=[PAD, BOS, MASK], **kwargs
    )
    start = clock()
    out = sampler.sample([[BOS] + [MASK] * mask_length] * batch, [[True] + [False] * mask_length] * batch, [True] * batch)
    return clock() - start, out.sequences


def profile_sections(module, model, runs: int, tau: float, mask_length: int, **sampler_kwargs) -> dict:
    """Milliseconds per step spent in each wrapped section, and calls per step (`sampler_kwargs`: e.g. compile=True)."""
    totals: dict[str, list[float]] = {}
    patched = []

    def wrap(owner, name, key):
        original = getattr(owner, name, None)
        if original is None:
            return

        def timed(*args, **kwargs):
            start = clock()
            try:
                return original(*args, **kwargs)
            finally:
                totals.setdefault(key, []).append(clock() - start)

        setattr(owner, name, timed)
        patched.append((owner, name, original))

    sampler_cls = module.TauLeapSampler
    wrap(sampler_cls, "step", "step")
    if sampler_kwargs.get("compile"):  # timing inside the compiled region would break its graph: time the call
        wrap(module.CompiledEditRates, "__call__", "compiled encoder + rate head (the whole call)")
    else:
        wrap(model.encoder, "forward", "encoder")
    # the sampler's parts: their own classes and modules since the split by concern, methods of the sampler before
    runner_cls = getattr(module, "EditRateRunner", sampler_cls)
    wrap(runner_cls, "model_rates", "model call (encoder + rate head)")
    wrap(sampler_cls, "_encode_rows", "model call (encoder + rate head)")
    wrap(module, "edit_permissions", "edit permissions")
    wrap(getattr(module, "EditFiring", sampler_cls), "choose_edits", "firing (draws + compare)")
    heads_module = sys.modules[runner_cls.__module__]  # the module that calls project_tokens
    if hasattr(heads_module, "project_tokens"):  # the heads through the transposed projection
        wrap(heads_module, "project_tokens", "token heads")
    else:
        wrap(model.sub_head, "forward", "token heads")
        wrap(model.ins_head, "forward", "token heads")
    wrap(sampler_cls, "_sample", "token sampling")
    if hasattr(module, "TokenRule"):
        wrap(module.TokenRule, "draw", "token sampling")
    wrap(module, "apply_edits", "apply edits")
    try:
        for seed in range(2 if sampler_kwargs.get("compile") else 1):  # warm-up (compiling the shapes the run meets)
            sample_once(module, model, 1000 + seed, tau, mask_length, **sampler_kwargs)
        totals.clear()
        for seed in range(runs):
            sample_once(module, model, seed, tau, mask_length, **sampler_kwargs)
    finally:
        for owner, name, original in reversed(patched):
            if owner is model.encoder or owner is model.sub_head or owner is model.ins_head:
                delattr(owner, name)  # back to the class's forward
            else:
                setattr(owner, name, original)
    steps = len(totals["step"])
    sections = {key: {"ms_per_step": round(sum(v) / steps * 1e3, 4), "calls_per_step": round(len(v) / steps, 3)} for key, v in totals.items()}
    step_ms = sections["step"]["ms_per_step"]
    inner = ("model call (encoder + rate head)", "edit permissions", "firing (draws + compare)", "token heads", "token sampling", "apply edits")
    sections["other (python, small ops, host reads)"] = {"ms_per_step": round(step_ms - sum(sections[k]["ms_per_step"] for k in inner if k in sections), 4)}
    return sections


def head_projection_ms(repeats: int = 30) -> dict:
    """CPU ms of a token head's vocabulary projection for a step's few fired rows: torch's `linear` (x W^T + b from W
    `[V, H]`) against `addmm` from a row-major copy of W^T (what `project_tokens` runs), at the tiny model's, MiniLM's
    and ModernBERT-large's head sizes and 1-16 rows; medians of `repeats` calls."""
    out = {}
    for vocab, hidden in ((30522, 32), (30522, 384), (50368, 1024)):
        weight, bias = torch.randn(vocab, hidden) * 0.05, torch.zeros(vocab)
        transposed = weight.t().contiguous()
        for rows in (1, 2, 4, 8, 16):
            x = torch.randn(rows, hidden)
            row = {}
            for name, fn in (("linear", lambda: torch.nn.functional.linear(x, weight, bias)), ("addmm_transposed", lambda: torch.addmm(bias, x, transposed))):
                fn()
                times = []
                for _ in range(repeats if hidden < 1024 else max(3, repeats // 5)):
                    start = clock()
                    fn()
                    times.append(clock() - start)
                row[name] = round(statistics.median(times) * 1e3, 4)
            out[f"{vocab}x{hidden}_rows{rows}"] = row
    return out


def bare_encoder_ms(model, width: int, repeats: int = 200) -> float:
    input_ids = torch.full((1, width), MASK)
    input_ids[0, 0] = BOS
    attention_mask = torch.ones_like(input_ids)
    with torch.no_grad():
        for _ in range(10):
            model.encoder(input_ids=input_ids, attention_mask=attention_mask)
        times = []
        for _ in range(repeats):
            start = clock()
            model.encoder(input_ids=input_ids, attention_mask=attention_mask)
            times.append(clock() - start)
    return statistics.median(times) * 1e3


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=None, help="An exported modeling/ folder to A/B against (e.g. main's).")
    parser.add_argument("--runs", type=int, default=10, help="Sequences per measurement.")
    parser.add_argument("--tau", type=float, default=0.01)
    parser.add_argument("--mask_length", type=int, default=64)
    parser.add_argument("--ab_batches", default="1", help="Comma-separated batch sizes of the A/B (e.g. 1,64).")
    parser.add_argument("--compile", action="store_true", help="A/B this checkout's compiled step (compiled untimed first).")
    parser.add_argument("--heads", action="store_true", help="Also time the vocabulary projection: linear vs addmm from W^T.")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = build_model(TINY, "cpu", torch.float32)
    result = {"sections": profile_sections(sampling_editflow, model, args.runs, args.tau, args.mask_length)}
    if args.compile:
        result["compiled_sections"] = profile_sections(sampling_editflow, model, args.runs, args.tau, args.mask_length, compile=True)
    if args.heads:
        result["head_projection_ms"] = head_projection_ms()
        for key, row in result["head_projection_ms"].items():
            print(f"head projection {key:24s} {row}")
    result["bare_encoder_ms"] = {str(w): round(bare_encoder_ms(model, w), 4) for w in (33, 65)}
    if args.baseline:
        baseline = load_baseline(args.baseline)
        result["baseline_sections"] = profile_sections(baseline, model, args.runs, args.tau, args.mask_length)
        this_kwargs = {"compile": True} if args.compile else {}
        result["ab"] = {}
        for batch in (int(b) for b in args.ab_batches.split(",")):
            runs = args.runs if batch == 1 else max(1, args.runs // 4)
            sample_once(baseline, model, 0, args.tau, args.mask_length, batch)
            start = time.perf_counter()
            for seed in range(2):  # warm-up; with --compile this compiles the shapes the run meets
                sample_once(sampling_editflow, model, 1000 + seed, args.tau, args.mask_length, batch, **this_kwargs)
            warmup_s = time.perf_counter() - start
            times = {"baseline": [], "this": []}
            identical = True
            for seed in range(runs):
                base_s, base_out = sample_once(baseline, model, seed, args.tau, args.mask_length, batch)
                this_s, this_out = sample_once(sampling_editflow, model, seed, args.tau, args.mask_length, batch, **this_kwargs)
                times["baseline"].append(base_s / batch)
                times["this"].append(this_s / batch)
                identical &= base_out == this_out
            medians = {k: statistics.median(v) for k, v in times.items()}
            result["ab"][f"batch_{batch}"] = {
                "baseline_s_per_seq": round(medians["baseline"], 5),
                "this_s_per_seq": round(medians["this"], 5),
                "speedup": round(medians["baseline"] / medians["this"], 2),
                "identical_outputs": identical,
                "this_warmup_wall_s": round(warmup_s, 2),
                "runs": runs,
            }
    result["config"] = {"tau": args.tau, "mask_length": args.mask_length, "runs": args.runs, "clock": "thread_time", "threads": 1,
                        "compile": args.compile}
    for name in ("baseline_sections", "sections", "compiled_sections"):
        for key, value in result.get(name, {}).items():
            print(f"{name:17s} {key:40s} {value}")
    print(json.dumps({**result, "provenance": provenance()}))
    return result


if __name__ == "__main__":
    main()
