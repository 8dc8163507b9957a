"""Tiny random decoder LMs (Llama, Qwen2, Qwen3) with a byte-level BPE tokenizer trained in a second, built offline
for the tests and for benchmarks/scaleout_smoke.py (no pytest import here)."""

import random
from pathlib import Path

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

WORDS = (
    "to be or not that is the question whether tis nobler in mind suffer slings and arrows of outrageous fortune "
    "take arms against a sea troubles by opposing end them die sleep no more say we heart ache thousand natural "
    "shocks flesh heir consummation devoutly wished perchance dream ay there rub"
).split()


def corpus(n_words: int = 800, seed: int = 0) -> str:
    """A few KB of Shakespeare-ish text, made here so that the tests need no data files."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) for _ in range(n_words // 10)]
    return "\n\n".join(lines) + "\n"


def bpe_tokenizer(special: dict[str, str]) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained in a second on `corpus()`, with only the given special tokens (no mask, no BOS
    unless given): the shape of Qwen's tokenizers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=list(special.values()), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus().splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)


DECODERS = {
    # Llama's tokenizer has BOS and EOS but no mask or pad token; this Qwen-like one has EOS only (no mask, BOS, pad).
    "llama": (LlamaConfig, LlamaForCausalLM, {"bos_token": "<s>", "eos_token": "</s>"}),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, {"eos_token": "<|endoftext|>"}),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, {"eos_token": "<|endoftext|>"}),
}


def build_tiny_causal_lm(kind: str, out_dir: Path, tie_word_embeddings: bool = False) -> Path:
    config_cls, model_cls, special = DECODERS[kind]
    tokenizer = bpe_tokenizer(special)
    torch.manual_seed(0)
    config = config_cls(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, head_dim=16, max_position_embeddings=256, tie_word_embeddings=tie_word_embeddings,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
    )  # fmt: skip
    model = model_cls(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
