"""Which deterministic token rule reads (issue R item 4): on a pretrained-only checkpoint (the quickstart's), samples of
each candidate rule for `do_sample=False`, unconditional, after a prompt and as a chat turn, `--rows` rows each (every
row its own generator, keyed by the seed and its index): the share of punctuation among the text's characters, the
longest run of punctuation-only words, distinct-2, and the judge's perplexity (SmolLM2-135M-Instruct, each text
scored alone) when it is installed.

    python benchmarks/greedy_rule.py --checkpoint .models/quickstart/MiniLM/tiny-shakespeare/checkpoint-final

Rules: `argmax` (the most likely token at every substitution / insertion: what `do_sample=False` meant before),
`paper` (temperature 0.8 and top-p 0.5, what the paper samples its reported numbers with) and `sample` (temperature
1, the sampling default) for scale. The last printed line is the JSON of every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from provenance import provenance  # noqa: E402
RULES = {
    "argmax": dict(temperature=1.0, top_k=1),  # top_k 1: the most likely token
    "paper": dict(temperature=0.8, top_p=0.5),
    "sample": dict(temperature=1.0, top_p=1.0),
}
PROMPTS = {"unconditional": "", "prompted": "To be, or not to be", "chat": [{"role": "user", "content": "Hi!"}]}


def punctuation_share(text: str) -> float:
    """The share of punctuation among the non-space characters of `text` (1.0 for an empty text: nothing reads)."""
    chars = [char for char in text if not char.isspace()]
    return sum(unicodedata.category(char).startswith("P") for char in chars) / len(chars) if chars else 1.0


def longest_punctuation_run(text: str) -> int:
    """The most punctuation-only words in a row."""
    longest = current = 0
    for word in text.split():
        current = current + 1 if all(unicodedata.category(char).startswith("P") for char in word) else 0
        longest = max(longest, current)
    return longest


def distinct_2(texts: list[str]) -> float:
    pairs = [tuple(words[i : i + 2]) for words in (text.split() for text in texts) for i in range(len(words) - 1)]
    return len(set(pairs)) / len(pairs) if pairs else 0.0


def figures(texts: list[str], judge=None) -> dict:
    out = {
        "punctuation_share": sum(map(punctuation_share, texts)) / len(texts),
        "over_half_punctuation": sum(punctuation_share(text) > 0.5 for text in texts),
        "longest_punctuation_run": max(map(longest_punctuation_run, texts)),
        "distinct_2": distinct_2(texts),
        "words": sum(len(text.split()) for text in texts) / len(texts),
        "examples": texts[:2],
    }
    if judge is not None:
        out["judged_perplexity"] = judge.perplexity([text for text in texts if text.split()])
    return out


def load_judge(ref_model: str | None):
    from quality import resolve_judge

    from editflow_hf.causal_lm import ReferenceLM

    folder, name = resolve_judge(ref_model, None)
    return ReferenceLM.load(folder, name, "cpu") if folder else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--rows", type=int, default=20, help="Rows per rule and prompt (each its own generator).")
    parser.add_argument("--tau", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--ref_model", default=None, help="Judge folder (default: the offline SmolLM2 if installed; none: off).")
    args = parser.parse_args()

    from transformers import AutoModel, AutoTokenizer, pipeline

    import editflow_hf
    from editflow_hf.modeling.generation_editflow import reserved_token_ids

    editflow_hf.register()
    model = AutoModel.from_pretrained(args.checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    generate = pipeline("editflow-generation", model=model, tokenizer=tokenizer)
    # A checkpoint trained before suppress_tokens were recorded: the default a new one has.
    suppress = {} if model.generation_config.suppress_tokens is not None else {"suppress_tokens": reserved_token_ids(tokenizer)}
    judge = load_judge(args.ref_model)
    results = {}
    for rule in args.rules.split(","):
        for name, prompt in PROMPTS.items():
            start = time.perf_counter()
            outputs = generate(prompt, num_return_sequences=args.rows, tau=args.tau, seed=args.seed, progress_bar=False,
                               **RULES[rule], **suppress)  # fmt: skip
            texts = [output["generated_text"] for output in outputs]
            results[f"{rule}/{name}"] = {**figures(texts, judge), "seconds": round(time.perf_counter() - start, 1)}
            row = results[f"{rule}/{name}"]
            print(f"{rule:>7} {name:>13}: punctuation {row['punctuation_share']:.2f} ({row['over_half_punctuation']}/"
                  f"{args.rows} over half), longest run {row['longest_punctuation_run']}, distinct-2 "
                  f"{row['distinct_2']:.2f}, {row['words']:.1f} words, judged {row.get('judged_perplexity', float('nan')):.0f}"
                  f" | {row['examples'][0][:80]!r}", flush=True)  # fmt: skip
    print(json.dumps({**results, "provenance": provenance()}))


if __name__ == "__main__":
    main()
