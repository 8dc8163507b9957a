"""Where a batch-1 tau-leaping step spends its time, and an in-process A/B against another commit's sampler.

    python benchmarks/profile_step.py                                # sections of this checkout's step
    git archive main modeling | tar -x -C /tmp/base                  # export a baseline's remote code ...
    python benchmarks/profile_step.py --baseline /tmp/base/modeling  # ... and time both, interleaved

Sizes of benchmarks/sample.py (tiny random ModernBERT, hidden 32, vocab 30522; tau 0.01, BOS + 64 masks, batch 1).
Times are CPU time of this thread (`time.thread_time`), one torch thread: on a machine shared with other jobs the
wall clock mostly measures waiting for a core, CPU time what the step costs. Sections are timed by wrapping the
sampler's methods (the encoder, the model call around it, edit permissions, firing, token heads, token sampling,
applying the edits); "other" is the rest of the step (Python, small tensor ops, host reads). The A/B runs the two
samplers alternately on the same model and seeds, checks that their outputs are identical, and reports medians.
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


def sample_once(module, model, seed: int, tau: float, mask_length: int, **kwargs) -> tuple[float, list]:
    sampler = module.TauLeapSampler(
        model, tau=tau, generator=torch.Generator().manual_seed(seed), suppress_token_ids=[PAD, BOS, MASK], **kwargs
    )
    start = clock()
    out = sampler.sample([[BOS] + [MASK] * mask_length], [[True] + [False] * mask_length], [True]).sequences
    return clock() - start, out


def profile_sections(module, model, runs: int, tau: float, mask_length: int) -> dict:
    """Milliseconds per step spent in each wrapped section, and calls per step."""
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
    wrap(model.encoder, "forward", "encoder")
    wrap(sampler_cls, "model_rates", "model call (encoder + rate head)")
    wrap(sampler_cls, "_encode_rows", "model call (encoder + rate head)")
    wrap(module, "edit_permissions", "edit permissions")
    wrap(sampler_cls, "choose_edits", "firing (draws + compare)")
    wrap(model.sub_head, "forward", "token heads")
    wrap(model.ins_head, "forward", "token heads")
    wrap(sampler_cls, "_sample", "token sampling")
    wrap(module, "apply_edits", "apply edits")
    try:
        sample_once(module, model, 0, tau, mask_length)  # warm-up
        totals.clear()
        for seed in range(runs):
            sample_once(module, model, seed, tau, mask_length)
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
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = build_model(TINY, "cpu", torch.float32)
    result = {"sections": profile_sections(sampling_editflow, model, args.runs, args.tau, args.mask_length)}
    result["bare_encoder_ms"] = {str(w): round(bare_encoder_ms(model, w), 4) for w in (33, 65)}
    if args.baseline:
        baseline = load_baseline(args.baseline)
        result["baseline_sections"] = profile_sections(baseline, model, args.runs, args.tau, args.mask_length)
        sample_once(baseline, model, 0, args.tau, args.mask_length)
        sample_once(sampling_editflow, model, 0, args.tau, args.mask_length)
        times = {"baseline": [], "this": []}
        identical = True
        for seed in range(args.runs):
            base_s, base_out = sample_once(baseline, model, seed, args.tau, args.mask_length)
            this_s, this_out = sample_once(sampling_editflow, model, seed, args.tau, args.mask_length)
            times["baseline"].append(base_s)
            times["this"].append(this_s)
            identical &= base_out == this_out
        medians = {k: statistics.median(v) for k, v in times.items()}
        result["ab"] = {
            "baseline_s_per_seq": round(medians["baseline"], 4),
            "this_s_per_seq": round(medians["this"], 4),
            "speedup": round(medians["baseline"] / medians["this"], 2),
            "identical_outputs": identical,
        }
    result["config"] = {"tau": args.tau, "mask_length": args.mask_length, "runs": args.runs, "clock": "thread_time", "threads": 1}
    for name in ("baseline_sections", "sections"):
        for key, value in result.get(name, {}).items():
            print(f"{name:17s} {key:40s} {value}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
