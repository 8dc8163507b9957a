"""The paper's recipe, option by option, against today's defaults on the same tiny backbone and budget.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/recipe.py --work_dir .bench/recipe \
        [--regimes pt,qa,long --pt_steps 150 --qa_steps 300 --long_steps 150 --lambda_prop 4]

Backbone: the tiny random 2-layer ModernBERT of benchmarks/quality.py (hidden 32, MiniLM WordPiece tokenizer).
Variants (training flags on top of the regime's): `default` (none), `power` (`--scheduler_cls power`, kappa = t^3),
`time` (`--time_conditioning True`), `localized` (`--path localized --lambda_prop L`), `prefix`
(`--prefix_conditioning True`, pt only) and `paper` (all of them; pt only).

- pt: tiny-shakespeare, blocks of 64 tokens, `masks[length:16]`, batch 16, lr 3e-3 constant. Metrics on 32 held-out
  blocks: the held-out bound (`editflow-eval`; every model on the factorized path with `masks[length:16]`, so the
  numbers are bounds on the same quantity), the conditional bound (the first 16 tokens given as the prompt, the
  other 47 to produce) and the continuation token F1 against the held-out block's true continuation (16 prompts,
  greedy tokens, tau 0.05, 16 masks; with `--guidance 0.5` also guided, for models trained with prefixes).
- qa: `training/sft.py` on the 32 pairs of tests/fixtures/qa.jsonl not in the held-back 8 (indices 0, 5, ..., 35);
  `editflow-eval` on the held-back 8: bound, exact match and token F1 of greedy answers (12 masks).
- long: as pt with blocks of 128 tokens and `masks[length:32]`: default against localized, where the paper says
  localized paths matter.

Tiny budgets on a shared CPU: differences within about two standard errors are noise. The last line is the JSON.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ itself, also when imported by a test
from provenance import provenance  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import HELD_BACK, QA_FIXTURE, build_backbone, final_train_loss, train  # noqa: E402

SHAKESPEARE = REPO_ROOT / "data" / "tiny-shakespeare.txt"


def variants(lambda_prop: float) -> dict[str, list[str]]:
    localized = ["--path", "localized", "--lambda_prop", str(lambda_prop)]
    return {
        "default": [],
        "power": ["--scheduler_cls", "power"],
        "time": ["--time_conditioning", "True"],
        "localized": localized,
        "prefix": ["--prefix_conditioning", "True"],
        "paper": ["--scheduler_cls", "power", "--time_conditioning", "True", *localized, "--prefix_conditioning", "True"],
    }


def conditional_metrics(checkpoint: Path, features: list[dict], prompt_tokens: int, masks: int, guidance: list[float]) -> dict:
    """Bound of the continuation given the first `prompt_tokens` tokens, and the token F1 of sampled continuations
    against the true ones (per guidance scale)."""
    import torch
    from transformers import AutoTokenizer

    from editflow_hf.evaluation import token_f1
    from editflow_hf.modeling.modeling_editflow import EditFlowForEditing
    from editflow_hf.modeling.sampling_editflow import TauLeapSampler
    from editflow_hf.objective.bound import edit_flow_bound
    from editflow_hf.path.collator import EditFlowCollator

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = EditFlowForEditing.from_pretrained(checkpoint).eval()
    config = model.config
    prompted = [{"input_ids": f["input_ids"], "prompt_len": 1 + prompt_tokens} for f in features]
    collator = EditFlowCollator.from_tokenizer(tokenizer, x0_sampler=f"masks[length:{masks}]", scheduler=config.scheduler,
                                               scheduler_kwargs=config.scheduler_kwargs, tie_break="left", seed=0)  # fmt: skip
    bound = edit_flow_bound(model, prompted, collator, num_t=16).to_dict()
    result = {"conditional_bound": round(bound["per_token"], 4), "conditional_stderr": round(bound["stderr"], 4)}
    rows = prompted[:16]
    starts = [f["input_ids"][: f["prompt_len"]] + [config.mask_token_id] * masks for f in rows]
    protected = [[True] * f["prompt_len"] + [False] * masks for f in rows]
    for w in guidance:
        sampler = TauLeapSampler(model, tau=0.05, temperature=0.0, guidance_scale=w, max_length=len(rows[0]["input_ids"]),
                                 generator=torch.Generator().manual_seed(0),
                                 suppress_token_ids=[config.mask_token_id, config.bos_token_id, config.pad_token_id])  # fmt: skip
        samples = sampler.sample(starts, protected, [True] * len(rows)).sequences
        f1 = [token_f1(tokenizer.decode(s[f["prompt_len"]:]), tokenizer.decode(f["input_ids"][f["prompt_len"]:]))
              for s, f in zip(samples, rows)]  # fmt: skip
        result[f"continuation_f1_w{w}"] = round(sum(f1) / len(f1), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default=".bench/recipe")
    parser.add_argument("--regimes", default="pt,qa,long")
    parser.add_argument("--pt_variants", default="default,power,time,localized,prefix,paper")
    parser.add_argument("--qa_variants", default="default,power,time,localized")
    parser.add_argument("--pt_steps", type=int, default=150)
    parser.add_argument("--qa_steps", type=int, default=300)
    parser.add_argument("--long_steps", type=int, default=150)
    parser.add_argument("--lambda_prop", type=float, default=4.0)
    parser.add_argument("--guidance", type=float, default=0.5, help="Guidance scale tried on models trained with prefixes.")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from editflow_hf.evaluation import _load_features, evaluate

    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    backbone = build_backbone(work)
    flags = variants(args.lambda_prop)
    pairs = [json.loads(line) for line in QA_FIXTURE.read_text().splitlines() if line.strip()]
    (work / "qa-train.jsonl").write_text("".join(json.dumps(p) + "\n" for i, p in enumerate(pairs) if i not in HELD_BACK))
    (work / "qa-heldback.jsonl").write_text("".join(json.dumps(pairs[i]) + "\n" for i in HELD_BACK))
    common = ["--per_device_train_batch_size", "16", "--eval_split_size", "0"]
    results = []
    for regime in args.regimes.split(","):
        names = (args.qa_variants if regime == "qa" else args.pt_variants if regime == "pt" else "default,localized").split(",")
        for name in names:
            start = time.perf_counter()
            if regime == "qa":
                checkpoint, seconds = train("sft.py", backbone, work / f"qa-{name}", args.qa_steps, [
                    "--dataset_args", str(work / "qa-train.jsonl"), "--max_length", "64", "--x0_sampler", "masks[length:12]",
                    *common, *flags[name]])  # fmt: skip
                metrics = evaluate(str(checkpoint), str(work / "qa-heldback.jsonl"), task="sft", max_length=64, seed=0,
                                   mask_length=12, num_samples=8, temperature=0.0, tau=0.05, x0_sampler="masks[length:12]",
                                   tie_break="right", corrupt_p=0)  # fmt: skip
                generation = metrics["generation"]
                row = {"exact_match": generation["exact_match"], "token_f1": round(generation["token_f1"], 4)}
            else:
                length, masks, steps = (64, 16, args.pt_steps) if regime == "pt" else (128, 32, args.long_steps)
                data = f"{SHAKESPEARE}[train,test:32]"
                checkpoint, seconds = train("pt.py", backbone, work / f"{regime}-{name}", steps, [
                    "--dataset_args", data, "--text_field", "text", "--max_length", str(length),
                    "--x0_sampler", f"masks[length:{masks}]", *common, *flags[name]])  # fmt: skip
                metrics = evaluate(str(checkpoint), data, split="test", task="pt", max_length=length, seed=0,
                                   mask_length=masks, num_samples=16, tau=0.05, x0_sampler=f"masks[length:{masks}]",
                                   tie_break="left", corrupt_p=0)  # fmt: skip
                generation = metrics["generation"]
                row = {"distinct_2": round(generation["distinct_2"], 4),
                       "repeated_2gram_rate": round(generation["repeated_2gram_rate"], 4)}  # fmt: skip
                if regime == "pt":
                    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
                    _, features = _load_features(str(checkpoint), data, tokenizer, task="pt", text_field="text",
                                                 max_length=length, split="test", seed=0)  # fmt: skip
                    guidance = [0.0, args.guidance] if "--prefix_conditioning" in flags[name] else [0.0]
                    row.update(conditional_metrics(checkpoint, features, 16, masks, guidance))
            row = {"regime": regime, "variant": name, "flags": " ".join(flags[name]), "train_seconds": round(seconds, 1),
                   "final_train_loss": round(final_train_loss(checkpoint), 4),
                   "bound": round(metrics["bound"]["per_token"], 4), "bound_stderr": round(metrics["bound"]["stderr"], 4),
                   **row, "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
            print(json.dumps(row), flush=True)
            results.append(row)
    print(json.dumps({**{"benchmark": "recipe", "results": results}, "provenance": provenance()}))


if __name__ == "__main__":
    main()
