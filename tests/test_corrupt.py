"""`corrupt[p:P]`, `corrupt_words[p:P]` and mixture couplings: the corruption law, the exact `max_x0_len` cap, the
spec grammar, where words begin in real vocabularies, and the collator's general minimum-edit alignment of corrupted
pairs (its edits rebuild x1 and number d(x0, x1))."""

import math
import re

import numpy as np
import pytest
import torch
from rapidfuzz.distance import Levenshtein

from editflow_hf.path.couplings import (
    BEGINS_WORD,
    BREAK,
    CONTINUES_WORD,
    Corrupt,
    CorruptWords,
    FixedMasks,
    Mixture,
    parse_x0_sampler,
    split_words,
    token_word_roles,
)
from test_alignment import apply_edits
from test_collator import BOS, MASK, make_collator, random_features, rows


def test_corrupt_rate_and_kinds():
    corrupt = parse_x0_sampler("corrupt[p:0.3]")
    assert isinstance(corrupt, Corrupt) and corrupt.p == 0.3 and not corrupt.masks_only
    rng = np.random.default_rng(0)
    x1 = np.arange(1000, 1200)
    pool = np.arange(5000, 5100)
    distances, lengths = [], []
    for _ in range(200):
        x0 = corrupt.corrupt(x1, rng, pool)
        distances.append(Levenshtein.distance(x0.tolist(), x1.tolist()))
        lengths.append(len(x0))
        assert set(x0.tolist()) <= set(x1.tolist()) | set(pool.tolist())
        assert len(x0) <= corrupt.max_x0_len(len(x1))
    # Every corrupted token is one edit (sub, del or ins), each kind a third: d ~ p * n, length ~ n.
    assert np.mean(distances) == pytest.approx(0.3 * 200, rel=0.05)
    assert np.mean(lengths) == pytest.approx(200, abs=2.0)


def test_corrupt_max_x0_len_is_exact_and_reached():
    corrupt = Corrupt(1.0)  # every token corrupted: the insertion cap ceil(p * n) is what bounds the length
    rng = np.random.default_rng(1)
    for n in (0, 1, 3, 10):
        longest = max(len(corrupt.corrupt(np.arange(n), rng, np.array([7, 8]))) for _ in range(300))
        assert longest <= corrupt.max_x0_len(n) == n + math.ceil(n)
    assert Corrupt(0.2).max_x0_len(10) == 12 and Corrupt(0.2).max_x0_len(11) == 14
    assert parse_x0_sampler("masks[length:64]").max_x0_len(500) == 64
    assert parse_x0_sampler("masks[min:8,max:20]").max_x0_len(5) == 20
    assert parse_x0_sampler("empty").max_x0_len(5) == 0
    assert parse_x0_sampler("masks[length:8] + corrupt[p:0.5]").max_x0_len(10) == 15
    assert parse_x0_sampler("masks[length:30] + corrupt[p:0.5]").max_x0_len(10) == 30


def test_corrupt_without_noise_pool_only_deletes():
    x0 = Corrupt(1.0).corrupt(np.arange(50), np.random.default_rng(0), np.zeros(0, np.int64))
    assert set(x0.tolist()) <= set(range(50)) and len(x0) < 50 and x0.tolist() == sorted(x0.tolist())


def test_mixture_grammar_and_draws():
    mix = parse_x0_sampler("0.25*masks[length:4] + 0.75*corrupt[p:0.2]")
    assert isinstance(mix, Mixture) and not mix.masks_only
    assert mix.spec == "0.25*masks[length:4] + 0.75*corrupt[p:0.2]" and parse_x0_sampler(mix.spec) == mix
    rng = np.random.default_rng(0)
    draws = [mix.draw(rng) for _ in range(4000)]
    assert np.mean([isinstance(d, Corrupt) for d in draws]) == pytest.approx(0.75, abs=0.03)
    assert isinstance(parse_x0_sampler("masks[length:4] + masks[length:8]").draw(rng), FixedMasks)
    assert parse_x0_sampler("masks[length:4] + empty").masks_only
    assert parse_x0_sampler("1*corrupt[p:0.1]") == Corrupt(0.1)  # a single weighted term is that sampler
    assert parse_x0_sampler(" masks[length:64] ") == FixedMasks(64)  # old specs unchanged


@pytest.mark.parametrize(
    "spec, message",
    [
        ("corrupt", "exactly one argument p"),
        ("corrupt[p:0]", "p must be in"),
        ("corrupt[p:1.5]", "p must be in"),
        ("corrupt[p:x]", "must be a number"),
        ("corrupt[p:0.1,q:2]", "exactly one argument p"),
        ("corrupt_words", '"corrupt_words" takes exactly one argument p'),
        ("corrupt_words[p:0]", "p must be in"),
        ("0*masks[length:4] + corrupt[p:0.1]", "weights must be positive"),
        ("masks[length:4] + ", "mixture term"),
        ("masks[length:4] + bogus", "unknown sampler name"),
        ("x*masks[length:4] + corrupt[p:0.1]", "not a number"),
    ],
)
def test_bad_specs_one_clear_error(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_x0_sampler(spec)
    assert "Valid forms" in str(err.value) and "corrupt[p:P]" in str(err.value) and "corrupt_words[p:P]" in str(err.value)


@pytest.mark.parametrize("x0_sampler", ["corrupt[p:0.3]", "masks[length:6] + corrupt[p:0.3]"])
@pytest.mark.parametrize("tie_break", ["spread", "left", "right", "random"])
def test_collator_aligns_corrupted_pairs_minimally(x0_sampler, tie_break):
    rng = np.random.default_rng(0)
    collator = make_collator(x0_sampler=x0_sampler, tie_break=tie_break, seed=3)
    saw_corrupt = saw_masks = False
    for _ in range(5):
        features = random_features(rng, prompt=True)
        near_zero = collator(features, t=np.zeros(len(features)))  # x_t = x0: the edits are the whole alignment
        for b, x_t, pos, kind, token in rows(near_zero):
            x1, prompt_len = features[b]["input_ids"], features[b]["prompt_len"]
            assert apply_edits(x_t, pos, kind, token) == x1
            assert x_t[:prompt_len].tolist() == x1[:prompt_len]
            assert (pos[kind != 2] >= prompt_len).all() and (pos[kind == 2] >= prompt_len - 1).all()
            if MASK in x_t.tolist():
                saw_masks = True
                continue
            saw_corrupt = True
            # The general alignment is a minimum one: as many edits as the Levenshtein distance x0 -> x1.
            assert len(pos) == Levenshtein.distance(x_t.tolist(), x1)
            assert set(x_t.tolist()) <= {BOS} | {i for f in features for i in f["input_ids"]}
        for b, x_t, pos, kind, token in rows(collator(features)):
            assert apply_edits(x_t, pos, kind, token) == features[b]["input_ids"]
    assert saw_corrupt and (saw_masks or "masks" not in x0_sampler)


def test_auto_tie_break_resolves_per_regime():
    from editflow_hf.path.collator import AUTO_TIE_BREAK
    from editflow_hf.training.args import EditFlowTrainingArguments

    assert EditFlowTrainingArguments(output_dir="x", use_cpu=True).tie_break == "auto"
    with pytest.raises(ValueError, match="--tie_break must be one of auto, spread, left, right, random"):
        EditFlowTrainingArguments(output_dir="x", use_cpu=True, tie_break="middle")
    auto = make_collator(seed=0)
    assert auto.tie_break == "auto" and auto.tie_breaks_by_regime == {"sft": "right", "pt": "left"}
    assert auto.resolve_tie_break(1) == AUTO_TIE_BREAK["pt"] == "left"
    assert auto.resolve_tie_break(5) == AUTO_TIE_BREAK["sft"] == "right"
    # A recorded per-regime choice (what checkpoints store for "auto") aligns like "auto" did.
    recorded = make_collator(seed=0, tie_break={"sft": "spread", "pt": "random"})
    assert recorded.resolve_tie_break(5) == "spread" and recorded.resolve_tie_break(1) == "random"
    with pytest.raises(ValueError, match="keys 'sft' and 'pt'"):
        make_collator(tie_break={"sft": "right"})
    # The same draws as the explicit tie-break of each regime (random draws nothing extra for left/spread).
    features = [{"input_ids": [BOS, 1001, 1002, 1003], "prompt_len": 2}, {"input_ids": [BOS] + list(range(1100, 1120))}]
    for feature, regime in zip(features, ("sft", "pt")):
        explicit = make_collator(seed=0, tie_break=AUTO_TIE_BREAK[regime], x0_sampler="masks[length:8]")
        resolved = make_collator(seed=0, x0_sampler="masks[length:8]")
        a, b = explicit([feature]), resolved([feature])
        assert all(torch.equal(a[key], b[key]) for key in a)


# A toy vocabulary for word corruption: 5 a line break, 100-199 tokens that begin a word, 200-299 tokens that continue
# one; 0-4 special tokens.
NEWLINE = 5
TOY_ROLES = np.full(300, BREAK, np.int8)
TOY_ROLES[100:200], TOY_ROLES[200:300] = BEGINS_WORD, CONTINUES_WORD


def toy_text(rng, n_words: int) -> np.ndarray:
    """Words of 1-3 tokens (each word's tokens distinct from every other word's), a line break every ~8 words."""
    tokens = []
    for i in range(n_words):
        if i and rng.random() < 0.12:
            tokens.append(NEWLINE)
        tokens += [100 + i % 100] + [200 + (3 * i + k) % 100 for k in range(int(rng.integers(0, 3)))]
    return np.array(tokens)


def word_ids(tokens: np.ndarray) -> list:
    """The text as a sequence of units (each word as the tuple of its tokens), for a word-level edit distance."""
    words, _ = split_words(tokens, TOY_ROLES)
    return [tuple(w.tolist()) for w in words]


def test_corrupt_words_drops_replaces_and_inserts_whole_words_and_keeps_line_breaks():
    corrupt = parse_x0_sampler("corrupt_words[p:0.3]")
    assert isinstance(corrupt, CorruptWords) and corrupt.revises_only and corrupt.needs_word_roles
    rng = np.random.default_rng(0)
    x1 = toy_text(rng, 60)
    pool = toy_text(np.random.default_rng(5), 200) + 0  # noise words: other words of the batch
    x1_words, pool_words = set(word_ids(x1)), set(word_ids(pool))
    n_words = sum(1 for w in word_ids(x1) if w != (NEWLINE,))
    distances, word_counts = [], []
    for _ in range(300):
        x0 = corrupt.corrupt(x1, rng, pool, TOY_ROLES)
        assert len(x0) <= corrupt.max_x0_len(len(x1))
        units = word_ids(x0)
        # Whole words only: every unit of x0 is a word of x1 or of the pool, never a piece of one.
        assert set(units) <= x1_words | pool_words
        assert x0.tolist().count(NEWLINE) == x1.tolist().count(NEWLINE)  # line breaks are never corrupted
        vocab = {w: i for i, w in enumerate(x1_words | pool_words)}
        distances.append(Levenshtein.distance([vocab[w] for w in units], [vocab[w] for w in word_ids(x1)]))
        word_counts.append(sum(1 for w in units if w != (NEWLINE,)))
    # Every corrupted word is one word-level edit (replace, drop, insert), each kind a third: d ~ p * words.
    assert np.mean(distances) == pytest.approx(0.3 * n_words, rel=0.1)
    assert np.mean(word_counts) == pytest.approx(n_words, abs=1.0)


def test_corrupt_words_caps_the_length_at_max_x0_len():
    corrupt = CorruptWords(1.0)  # every word corrupted, noise words of 3 tokens: the cap bounds the length
    pool = np.array([100, 200, 201] * 10)
    rng = np.random.default_rng(2)
    for n in (1, 3, 10):
        x1 = np.arange(101, 101 + n)  # one-token words
        longest = max(len(corrupt.corrupt(x1, rng, pool, TOY_ROLES)) for _ in range(300))
        assert n + math.ceil(n) - 3 < longest <= corrupt.max_x0_len(n) == 2 * n
    # Without noise words, replacing drops and inserting is skipped.
    x0 = CorruptWords(1.0).corrupt(np.arange(101, 150), rng, np.zeros(0, np.int64), TOY_ROLES)
    assert len(x0) < 49 and set(x0.tolist()) <= set(range(101, 150)) and x0.tolist() == sorted(x0.tolist())
    with pytest.raises(ValueError, match="needs to know where words begin.*from_tokenizer"):
        corrupt.corrupt(np.arange(101, 110), rng, pool)
    assert parse_x0_sampler("masks[length:8] + corrupt_words[p:0.5]").max_x0_len(10) == 15


def _metaspace_tokenizer():
    """A SentencePiece-style BPE ("▁" marks the space before a word), trained in a second."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from tiny_decoders import corpus

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    alphabet = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:,."))
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "<s>"], initial_alphabet=alphabet)
    backend.train_from_iterator(corpus().splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>")


@pytest.mark.parametrize("kind", ["wordpiece", "byte-level", "metaspace"])
def test_token_word_roles_find_the_words_of_real_vocabularies(kind):
    """Cut by the roles, a text's tokens give back its words (a multi-token word stays one), line breaks apart."""
    from transformers import AutoTokenizer

    from builders import minilm_dir
    from tiny_decoders import bpe_tokenizer

    text = "First Citizen:\nBefore we proceed any further, hear me speak.\nunfortunate mutineers"
    if kind == "wordpiece":
        tokenizer = AutoTokenizer.from_pretrained(minilm_dir())  # BERT's: lower-cases, splits punctuation off
        expected = re.findall(r"\w+|[^\w\s]", text.lower())
    elif kind == "byte-level":
        tokenizer = bpe_tokenizer({"bos_token": "<s>", "eos_token": "</s>"})
        expected = re.findall(r"\n| ?[^\s]+", text)
    else:
        tokenizer, text = _metaspace_tokenizer(), text.replace("\n", " ")  # no newline token in this vocabulary
        expected = re.findall(r" ?[^\s]+", text)
    roles = token_word_roles(tokenizer)
    assert roles.shape == (len(tokenizer),) and all(roles[i] == BREAK for i in tokenizer.all_special_ids)
    ids = tokenizer.encode(text, add_special_tokens=False)
    words, is_word = split_words(np.array(ids), roles)
    decoded = [tokenizer.decode(w.tolist()) for w in words]
    assert [d.strip(" ") for d in decoded] == [e.strip(" ") for e in expected]
    assert is_word.tolist() == [e != "\n" for e in expected]
    assert any(len(w) > 1 for w in words)  # some word is several tokens, and stays whole


def test_collator_with_corrupt_words_takes_the_roles_from_the_tokenizer(minilm_path):
    """`from_tokenizer` gives a word coupling the vocabulary's roles (a bare collator says how to get them); its
    batches hold whole-word corruptions, words never made of two examples' tokens, whose edits rebuild x1
    minimally, the prompt untouched."""
    from transformers import AutoTokenizer

    from editflow_hf.path.collator import EditFlowCollator

    with pytest.raises(ValueError, match="corrupts whole words.*from_tokenizer"):
        make_collator(x0_sampler="0.5*corrupt[p:0.2] + 0.5*corrupt_words[p:0.3]")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    collator = EditFlowCollator.from_tokenizer(tokenizer, x0_sampler="corrupt_words[p:0.4]", seed=0)
    assert (collator.word_roles == token_word_roles(tokenizer)).all()
    assert EditFlowCollator.from_tokenizer(tokenizer, x0_sampler="corrupt[p:0.2]").word_roles is None
    bos = tokenizer.cls_token_id
    # The second prompt ends inside "mu ##tine ##ers": its tail starts with the rest of that word.
    texts = ["the quick brown mutineers jump over the lazy dog", "unfortunate mutineers sailed into the harbour at dawn"]
    features = [{"input_ids": [bos, *tokenizer.encode(t, add_special_tokens=False)], "prompt_len": 1 + 2 * i} for i, t in enumerate(texts)]
    allowed = set()
    for feature in features:
        words, _ = split_words(np.array(feature["input_ids"][feature["prompt_len"]:]), collator.word_roles)
        allowed |= {tuple(w.tolist()) for w in words}
    seen = set()
    for _ in range(30):
        for b, x_t, pos, kind, token in rows(collator(features, t=np.zeros(2))):
            x1, prompt_len = features[b]["input_ids"], features[b]["prompt_len"]
            assert apply_edits(x_t, pos, kind, token) == x1 and x_t[:prompt_len].tolist() == x1[:prompt_len]
            assert len(pos) == Levenshtein.distance(x_t.tolist(), x1)
            words, _ = split_words(x_t[prompt_len:], collator.word_roles)
            seen |= {tuple(w.tolist()) for w in words}
    assert seen <= allowed  # whole words of the batch only: none cut, none across the examples' boundary
    mutineers = tuple(tokenizer.encode("mutineers", add_special_tokens=False))
    assert len(mutineers) == 3 and mutineers in seen and len(seen) > 12


def test_trainer_learns_with_word_corruption_and_records_it(tiny_editflow_dir, tmp_path):
    """The Trainer builds its collator from the tokenizer, so a word coupling trains from the flag alone."""
    import json

    from builders import train_in_process

    texts = ["the quick brown mutineers jump over the lazy dog", "unfortunate mutineers sailed into the harbour"] * 4
    spec = "0.5*corrupt[p:0.2] + 0.5*corrupt_words[p:0.3]"
    out = train_in_process(tiny_editflow_dir, texts, tmp_path / "words", steps=2, batch_size=4, x0_sampler=spec)
    assert json.loads((out / "config.json").read_text())["x0_sampler"] == spec
