"""Edit mode on real text: does a `corrupt[p:0.2]` model bring corrupted tiny-shakespeare closer to the clean text,
and how much does it change clean text? By tau and by the time t0 at which the user's text is placed on the path.

    OMP_NUM_THREADS=1 python benchmarks/revision.py --work_dir .bench/revision [--steps 600]

Setup (issue J, item 6): the tiny random 2-layer ModernBERT of benchmarks/quality.py, `training/pt.py` for --steps
steps (lr 3e-3 constant, batch 32) with `--x0_sampler "corrupt[p:0.2]"` on the first 12 blocks of tiny-shakespeare
(31 tokens after BOS, as pt groups them with --max_length 32); then, at temperature 0, tau-leaping in edit mode
(BOS protected, nothing else) from t0 to 1 on: the clean blocks, and copies corrupted as training corrupts
(`Corrupt(0.2)`: each token with probability 0.2 substituted / deleted / followed by an inserted corpus token),
for the 12 held-in blocks and the 12 blocks after them (held out). Reports the mean token edit distance to the
clean blocks, and the mean rates the model gives clean text, with the number of edits they predict on clean text:

    E[edits on a clean block] ~= n * (sub + del + ins rate) * sum_k h_k w(t_k) ~= n * rate * (ln((1 - t0) / tau) + 1)

(the linear schedule's w = 1 / (1 - t): the sum of h * w over the steps grows like ln(1 / tau), so a small
false-alarm rate turns into many edits, more with a smaller tau). The last printed line is the JSON of all rows.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default=".bench/revision")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--taus", default="0.02,0.005")
    parser.add_argument("--t0s", default="0,0.5,0.9")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from rapidfuzz.distance import Levenshtein
    from transformers import AutoTokenizer

    from editflow_hf.modeling.modeling_editflow import EditFlowForEditing
    from editflow_hf.modeling.sampling_editflow import TauLeapSampler
    from editflow_hf.path.couplings import Corrupt
    from quality import build_backbone, train

    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    backbone = build_backbone(work)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    text = (REPO_ROOT / "data" / "tiny-shakespeare.txt").read_text()[:20000]
    ids = tokenizer.encode(text, add_special_tokens=False, verbose=False)
    blocks = [ids[i * 31 : (i + 1) * 31] for i in range(24)]
    held_in, held_out = blocks[:12], blocks[12:]
    train_file = work / "blocks.txt"
    train_file.write_text(tokenizer.decode(sum(held_in, [])) + "\n")
    checkpoint, seconds = train("pt.py", backbone, work / f"corrupt-{args.steps}", args.steps, [
        "--dataset_args", str(train_file), "--max_length", "32", "--eval_split_size", "0",
        "--x0_sampler", "corrupt[p:0.2]"])  # fmt: skip
    model = EditFlowForEditing.from_pretrained(checkpoint).eval()
    bos = tokenizer.bos_token_id

    def revise(rows: list[list[int]], tau: float, t0: float) -> list[list[int]]:
        sampler = TauLeapSampler(model, tau=tau, temperature=0.0, generator=torch.Generator().manual_seed(0),
                                 suppress_token_ids=[tokenizer.mask_token_id, bos, tokenizer.pad_token_id])  # fmt: skip
        state = sampler.init_state([[bos, *r] for r in rows], [[True] + [False] * len(r) for r in rows], [True] * len(rows))
        state.step = int(round(t0 / tau))  # the text is placed at t0 on the path
        while state.step < sampler.num_steps:
            sampler.step(state)
        return [state.tokens[i, 1 : state.lengths[i]].tolist() for i in range(len(rows))]

    def distance(rows, clean):
        return float(np.mean([Levenshtein.distance(a, b) for a, b in zip(rows, clean)]))

    with torch.no_grad():
        out = model(torch.tensor([[bos, *b] for b in held_in]))
    rate = float((out.sub_rate + out.del_rate + out.ins_rate)[:, 1:].mean())
    rng = np.random.default_rng(0)
    pool = np.concatenate(blocks)
    rows = []
    for name, clean in (("held-in", held_in), ("held-out", held_out)):
        noisy = [Corrupt(0.2).corrupt(np.array(b), rng, pool).tolist() for b in clean]
        for tau in map(float, args.taus.split(",")):
            for t0 in map(float, args.t0s.split(",")):
                start = time.perf_counter()
                row = {"blocks": name, "tau": tau, "t0": t0, "noisy_before": distance(noisy, clean),
                       "noisy_after": distance(revise(noisy, tau, t0), clean), "clean_after": distance(revise(clean, tau, t0), clean),
                       "predicted_clean_edits": 31 * rate * (math.log((1 - t0) / tau) + 1),
                       "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
                print(json.dumps(row), flush=True)
                rows.append(row)
    print(json.dumps({"benchmark": "revision", "steps": args.steps, "train_seconds": round(seconds, 1),
                      "mean_rate_on_clean_held_in": rate, "rows": rows}))  # fmt: skip


if __name__ == "__main__":
    main()
