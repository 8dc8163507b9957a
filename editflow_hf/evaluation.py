"""Evaluation of an Edit Flow checkpoint on held-out data (`evaluate`, the body of `editflow-eval`): the bound
per token, generation metrics (`generation_metrics`, `token_f1`, `generative_perplexity`) and restoration of
corrupted text (`restoration`). The command's help (`editflow-eval --help`) describes every number."""

import re
import string
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from rapidfuzz.distance import Levenshtein
from transformers import AutoTokenizer

from .checkpoints.gate import check_model_folder, loading_errors
from .data.files import scan_dataset_files
from .causal_lm import ReferenceLM, check_gguf_source, describe_scale
from .errors import EditFlowError
from .flags import MAX_LENGTH_RULE, NumberRule, check_finite, seed_rule
from .modeling.generation_editflow import EditFlowGenerationConfig, sampler_for
from .modeling.modeling_editflow import EditFlowForEditing
from .modeling.sampling_editflow import default_no_repeat_adjacent, default_write_order
from .objective.bound import edit_flow_bound
from .path.alignment import check_tie_break
from .path.collator import TIE_BREAK_CHOICES, EditFlowCollator
from .path.couplings import DEFAULT_X0_SAMPLER, Corrupt, parse_x0_sampler
from .registration import register

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, no punctuation, no articles (a, an, the), single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 of the normalised words (1.0 when both are empty)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def reference_texts(tokenizer, features: list[dict], eos_token_id: int | None) -> list[str]:
    """The held-out texts: each x1 after its prompt (pt: after BOS), up to EOS, as text. The sft answers that exact
    match and F1 compare with, and the real text the judge's scale is cut from."""
    return [tokenizer.decode(_cut(f["input_ids"][f["prompt_len"] :], eos_token_id), skip_special_tokens=True).strip()
            for f in features]  # fmt: skip


def judge_scale(texts: list[str], references: list[str], ref_model: str, device: str = "cpu", gguf_file: str | None = None,
                seed: int = 0) -> dict:  # fmt: skip
    """The judge's length-matched scale of the samples (`ReferenceLM.length_matched_scale`): real held-out windows
    and their shuffled words of each sample's own token length, where the samples sit between them, in words."""
    scale = ReferenceLM.load(str(ref_model), gguf_file, device).length_matched_scale(texts, references, seed=seed)
    return {**scale, "in_words": describe_scale(scale)}


def _ngrams(ids: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def generation_metrics(samples: list[list[int]], mask_token_id: int) -> dict:
    """Length, distinct-1/2, repeated-bigram rate and leftover masks of token-id samples (see the module doc)."""
    lengths = [len(s) for s in samples]
    metrics = {"num_samples": len(samples), "length": float(np.mean(lengths)) if samples else 0.0}
    for n in (1, 2):
        grams = [g for s in samples for g in _ngrams(s, n)]
        metrics[f"distinct_{n}"] = len(set(grams)) / len(grams) if grams else 0.0
    repeated = []
    for s in samples:
        bigrams = _ngrams(s, 2)
        if bigrams:
            repeated.append(sum(bigrams[i] in set(bigrams[:i]) for i in range(len(bigrams))) / len(bigrams))
    metrics["repeated_2gram_rate"] = float(np.mean(repeated)) if repeated else 0.0
    metrics["leftover_masks"] = sum(s.count(mask_token_id) for s in samples) / max(sum(lengths), 1)
    return metrics


def repeats_a_word(text: str) -> bool:
    """Whether `text` writes a word twice in a row ("The capital capital of Germany"), case and punctuation aside:
    the failure of a shifted substitution head that reads a mask's state."""
    words = [w.strip(string.punctuation) for w in text.lower().split()]
    words = [w for w in words if w]
    return any(a == b for a, b in zip(words, words[1:]))


def _cut(ids: list[int], eos_token_id: int | None) -> list[int]:
    return ids[: ids.index(eos_token_id)] if eos_token_id is not None and eos_token_id in ids else ids


def generative_perplexity(texts: list[str], ref_model: str, device: str = "cpu", gguf_file: str | None = None) -> float:
    """exp(mean NLL per token) of `texts` under a causal LM (a folder, or `gguf_file` inside it; each text scored
    after the LM's BOS, if it has one). The LM is loaded once per process (`ReferenceLM.load`)."""
    return ReferenceLM.load(str(ref_model), gguf_file, device).perplexity(texts)


def _load_features(model_path, dataset_args, tokenizer, *, task, text_field, max_length, split, seed) -> tuple[str, list[dict]]:
    from .data.prepare import prepare_datasets

    splits = prepare_datasets(
        task, dataset_args, tokenizer, text_field=text_field, max_length=max_length, eval_split_size=0, seed=seed
    )
    name = split if split != "auto" else ("test" if "test" in splits else "train")
    if name not in splits:
        raise EditFlowError(f"--split {name}: {dataset_args} has only {', '.join(splits)}.")
    return name, [{"input_ids": list(row["input_ids"]), "prompt_len": int(row.get("prompt_len", 1))} for row in splits[name]]


def _sample(model, starts: list[list[int]], protected: list[list[bool]], *, sampling: EditFlowGenerationConfig,
            max_length: int) -> list[list[int]]:  # fmt: skip
    """Sample the start rows as `generate()` would with the generation config `sampling` (every setting of it)."""
    sampler = sampler_for(model, sampling, max_length=max_length)
    return sampler.sample(starts, protected, [True] * len(starts)).sequences


EVAL_RULES = (
    MAX_LENGTH_RULE,
    seed_rule(),
    NumberRule("num_t", lambda v: v >= 1, "at least 1 grid point in t"),
    NumberRule("max_sequences", lambda v: v >= 2, "at least 2 sequences (the bound's standard error needs two)"),
    NumberRule("num_samples", lambda v: v >= 1, "at least 1 sample"),
    NumberRule("batch_size", lambda v: v >= 1, "at least 1 sequence per forward pass"),
    NumberRule("corrupt_p", lambda v: 0 <= v <= 1, "a rate in [0, 1] (0 skips the restoration test)"),
)


def check_eval_inputs(model_name_or_path, dataset_args, *, tie_break, x0_sampler, ref_model, ref_gguf_file=None,
                      task: str | None = None, text_field: str = "text", **numbers) -> None:  # fmt: skip
    """Everything `evaluate` can check before it loads a model or the data: the numbers (`EVAL_RULES`), the
    coupling and tie-break, the model and --ref_model folders, the local data files. EditFlowError (one line)."""
    for rule in EVAL_RULES:
        check_finite(rule.flag, numbers[rule.flag])
        rule.check(numbers[rule.flag])
    if tie_break is not None:
        try:
            check_tie_break(tie_break, TIE_BREAK_CHOICES, name="--tie_break")
        except ValueError as err:
            raise EditFlowError(str(err)) from None
    if x0_sampler is not None:
        try:
            parse_x0_sampler(x0_sampler)
        except ValueError as err:
            raise EditFlowError(f"--x0_sampler: {err}") from None
    if ref_gguf_file and ref_model is None:
        raise EditFlowError("--ref_gguf_file names a file inside the --ref_model folder; pass --ref_model too.")
    check_model_folder(model_name_or_path)
    if ref_model is not None:
        if not Path(ref_model).expanduser().is_dir():
            raise EditFlowError(f"--ref_model {ref_model}: no such folder; pass the folder of a local causal LM (saved with save_pretrained).")
        if ref_gguf_file:
            check_gguf_source(ref_model, ref_gguf_file, what="--ref_model")  # a GGUF folder has no config.json
        else:
            check_model_folder(ref_model, what="--ref_model")
    scan_dataset_files(dataset_args, task, text_field)  # rows checked for meaning as training checks them


def _generation(model, tokenizer, features: list[dict], sampling, *, task: str, num_samples: int, num_examples: int,
                max_length: int) -> tuple[list[str], dict]:  # fmt: skip
    """Sample `num_samples` texts (after each of `features`' prompts for sft, from BOS for pt) with the generation
    config `sampling`: the texts and their metrics (`generation_metrics`, repeated words, the write order; for sft
    exact match and token F1 against the references; the first `num_examples` texts)."""
    config = model.config
    mask_length = sampling.mask_length
    eos, mask = config.eos_token_id, config.mask_token_id
    prompts = [f["input_ids"][: f["prompt_len"]] for f in features] if task == "sft" else [[config.bos_token_id]] * num_samples
    room = [max(0, min(mask_length, max_length - len(p))) for p in prompts]
    starts = [p + [mask] * n for p, n in zip(prompts, room)]
    protected = [[True] * len(p) + [False] * n for p, n in zip(prompts, room)]
    sequences = _sample(model, starts, protected, sampling=sampling, max_length=max_length)
    generated = [_cut(seq[len(p) :], eos) for seq, p in zip(sequences, prompts)]
    texts = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in generated]
    generation = generation_metrics(generated, mask)
    generation["repeated_word_rate"] = float(np.mean([repeats_a_word(text) for text in texts])) if texts else 0.0
    generation["write_order"] = sampling.write_order or default_write_order(config)
    repeats = sampling.no_repeat_adjacent
    generation["no_repeat_adjacent"] = default_no_repeat_adjacent(config) if repeats is None else repeats
    if task == "sft":
        references = reference_texts(tokenizer, features, eos)
        generation["exact_match"] = float(np.mean([normalize_answer(a) == normalize_answer(r) for a, r in zip(texts, references)]))
        generation["token_f1"] = float(np.mean([token_f1(a, r) for a, r in zip(texts, references)]))
    generation["examples"] = texts[:num_examples]
    return texts, generation


def evaluate(
    model_name_or_path: str,
    dataset_args: str,
    *,
    task: str = "pt",
    text_field: str = "text",
    max_length: int = 512,
    split: str = "auto",
    seed: int = 0,
    num_t: int = 16,
    max_sequences: int = 256,
    num_samples: int = 16,
    num_examples: int = 4,
    mask_length: int | None = None,
    batch_size: int = 32,
    tau: float | None = None,
    temperature: float | None = None,
    write_order: str | None = None,
    top_k: int | None = None,
    no_repeat_adjacent: bool | None = None,
    corrupt_p: float = 0.2,
    tie_break: str | None = None,
    x0_sampler: str | None = None,
    ref_model: str | None = None,
    ref_gguf_file: str | None = None,
    device: str | None = None,
) -> dict:
    """All of `editflow-eval` as a function; returns the JSON-able result (see the module docstring)."""
    check_eval_inputs(
        model_name_or_path, dataset_args, max_length=max_length, seed=seed, num_t=num_t, max_sequences=max_sequences,
        num_samples=num_samples, batch_size=batch_size, corrupt_p=corrupt_p, tie_break=tie_break, x0_sampler=x0_sampler,
        ref_model=ref_model, ref_gguf_file=ref_gguf_file, task=task, text_field=text_field,
    )  # fmt: skip
    register()  # the tokenizer of an Edit Flow checkpoint loads without trust_remote_code
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    flags = {"tau": tau, "mask_length": mask_length, "temperature": temperature, "write_order": write_order, "top_k": top_k,
             "no_repeat_adjacent": no_repeat_adjacent}  # fmt: skip
    EditFlowGenerationConfig(**{key: value for key, value in flags.items() if value is not None})  # checked before loading
    torch.manual_seed(seed)
    with loading_errors(model_name_or_path):
        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
        model = EditFlowForEditing.from_pretrained(model_name_or_path, dtype=torch.float32).to(device).eval()
    config = model.config
    # Sampling settings: the checkpoint's generation config, with the ones given on top.
    sampling = model.generation_config.updated(seed=seed, **flags)
    features_split, features = _load_features(model_name_or_path, dataset_args, tokenizer, task=task, text_field=text_field,
                              max_length=max_length, split=split, seed=seed)  # fmt: skip
    features = features[:max_sequences]
    if len(features) < 2:
        raise EditFlowError(f"{dataset_args}: {len(features)} evaluation sequence(s); the bound needs at least 2.")
    x0_sampler = x0_sampler or getattr(config, "x0_sampler", None) or DEFAULT_X0_SAMPLER
    collator = EditFlowCollator.from_tokenizer(
        tokenizer,
        x0_sampler=x0_sampler,
        scheduler=config.scheduler,
        scheduler_kwargs=config.scheduler_kwargs,
        tie_break=tie_break or getattr(config, "tie_break", None) or "auto",
        seed=seed,
    )
    bound = edit_flow_bound(model, features, collator, num_t=num_t, batch_size=batch_size)
    result = {
        "model": str(model_name_or_path),
        "dataset": dataset_args,
        "task": task,
        "split": features_split,
        "seed": seed,
        "x0_sampler": collator.x0_sampler.spec,
        "bound": bound.to_dict(),
    }

    texts, result["generation"] = _generation(model, tokenizer, features[:num_samples], sampling, task=task, num_samples=num_samples,
                                              num_examples=num_examples, max_length=max_length)  # fmt: skip
    if ref_model:
        scale = judge_scale(texts, reference_texts(tokenizer, features, config.eos_token_id), ref_model, device, ref_gguf_file, seed)
        result["judge_scale"], result["generative_perplexity"] = scale, scale["samples"]  # the samples scored once

    if corrupt_p > 0:
        result["restoration"] = restoration(model, features[:num_samples], corrupt_p, sampling=sampling,
                                            max_length=max_length, seed=seed)  # fmt: skip
    return result


def restoration(model, features: list[dict], p: float, *, max_length: int, seed: int,
                sampling: EditFlowGenerationConfig | None = None, **settings) -> dict:  # fmt: skip
    """Corrupt each x1 after its prompt as `corrupt[p:P]` does, let the model revise it in edit mode (BOS and
    prompt protected; the generation config `sampling`, by default the checkpoint's, with `settings` such as
    `edit_rule` on top), and measure the token edit distance to the clean text before and after."""
    sampling = (sampling or model.generation_config).updated(seed=seed, **settings)
    strength, edit_rule, gain_margin = sampling.strength, sampling.edit_rule, sampling.gain_margin
    rng = np.random.default_rng(seed)
    corrupt = Corrupt(p)
    data = [np.asarray(f["input_ids"][f["prompt_len"] :]) for f in features]
    pool = np.concatenate(data)
    starts, protected = [], []
    for f, clean in zip(features, data):
        noisy = corrupt.corrupt(clean, rng, pool)
        prompt = f["input_ids"][: f["prompt_len"]]
        starts.append(prompt + noisy.tolist()[: max_length - len(prompt)])
        protected.append([True] * len(prompt) + [False] * (len(starts[-1]) - len(prompt)))
    revised = _sample(model, starts, protected, sampling=sampling, max_length=max_length)
    before = [Levenshtein.distance(s[f["prompt_len"] :], c.tolist()) for s, f, c in zip(starts, features, data)]
    after = [Levenshtein.distance(r[f["prompt_len"] :], c.tolist()) for r, f, c in zip(revised, features, data)]
    recorded = getattr(model.config, "x0_sampler", None)
    return {
        "corrupt_p": p,
        "strength": strength,
        "edit_rule": edit_rule,
        **({"gain_margin": gain_margin} if edit_rule == "gain" else {}),
        "num_sequences": len(features),
        "edit_distance_before": float(np.mean(before)),
        "edit_distance_after": float(np.mean(after)),
        "trained_x0_sampler": recorded,
        "trained_to_edit": recorded is not None and not parse_x0_sampler(recorded).masks_only,
    }
