"""x0 samplers (couplings): the source sequence x0 after BOS (+ prompt) of each training example.

A sampler is written as a short spec string (the `--x0_sampler` flag of the training scripts):

    "masks[length:64]"     always 64 masks
    "masks[min:8,max:64]"  a uniformly random count in [8, 64] (both ends included), drawn per example
    "empty"                no masks: x0 = BOS [+ prompt], the model grows the whole text by insertions
    "corrupt[p:0.2]"       x0 is x1 corrupted: the model learns to revise text (see `Corrupt`)
    "corrupt_words[p:0.3]" the same with whole words (see `CorruptWords`): words dropped, replaced, inserted
    "0.5*masks[length:64] + 0.5*corrupt[p:0.2]"
                           a mixture: each example draws one component with probability weight / sum of
                           weights (a missing `w*` is weight 1), so one model both writes and revises

Mask samplers (`masks`, `empty`) get len(x1) without the prompt and the collator's numpy Generator, and return
the number of masks (`__call__`); the collator aligns BOS + prompt + masks with x1 in closed form. `corrupt`
returns the x0 tokens themselves (`corrupt`), which the collator aligns with the general minimum-edit alignment.
`corrupt_words` also needs to know where words begin: the collator passes the vocabulary's `token_word_roles`
(`EditFlowCollator.from_tokenizer` computes them from the tokenizer).

`max_x0_len(n)`: the most tokens x0 can have after BOS + prompt when x1 has n tokens there (the full x0 has at
most prompt_len + max_x0_len(n) tokens), so a position check can refuse runs that would overflow the encoder.
"""

import math
import re

import numpy as np

# The x0 of training (and of evaluating a model that did not record its own): BOS + 64 masks, as in dLLM.
DEFAULT_X0_SAMPLER = "masks[length:64]"
VALID_FORMS = (
    '"masks[length:N]"', '"masks[min:A,max:B]"', '"empty"', '"corrupt[p:P]"', '"corrupt_words[p:P]"', '"w1*spec1 + w2*spec2"'
)
# What a token is to a word (`token_word_roles`): it continues the word before it, begins a word, or is a line break
# or special token, which is never corrupted and ends the word before it.
CONTINUES_WORD, BEGINS_WORD, BREAK = 0, 1, 2
_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*(?:\[(?P<args>[^\]]*)\])?\s*$")
_TERM = re.compile(r"^\s*(?:(?P<weight>[^*\[\]]+?)\s*\*)?\s*(?P<spec>.+?)\s*$")


class X0Sampler:
    """Decides x0 after BOS (+ prompt). Mask samplers implement `__call__` (the number of masks) and
    `max_x0_len`; other couplings set `masks_only = False` and implement `corrupt`. `max_masks` is the largest
    mask count a sampler can return (None: unbounded or not a mask sampler; the training scripts check it
    against the encoder's positions). `revises_only`: every x0 is a corrupted x1 (the model learns to revise
    text, never to write from masks or from BOS alone). `needs_word_roles`: `corrupt` needs the vocabulary's
    `token_word_roles` (where words begin)."""

    spec = ""
    masks_only = True
    revises_only = False
    needs_word_roles = False
    max_masks: int | None = None

    def __call__(self, x1_len: int, rng: np.random.Generator) -> int:
        raise NotImplementedError

    @property
    def sampling_mask_length(self) -> int:
        """The mask count sampling starts from by default with a model trained on this sampler (saved as
        `mask_length` in the checkpoint's generation_config.json)."""
        raise NotImplementedError

    def max_x0_len(self, x1_len: int) -> int:
        """The most x0 tokens after BOS + prompt for x1 with `x1_len` tokens there."""
        raise NotImplementedError

    def draw(self, rng: np.random.Generator) -> "X0Sampler":
        """The coupling of one example: itself (a mixture draws one of its components)."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.spec))


class FixedMasks(X0Sampler):
    """Always `length` masks (`masks[length:N]`)."""

    def __init__(self, length: int):
        self.length = length
        self.max_masks = length
        self.spec = f"masks[length:{length}]"

    def __call__(self, x1_len: int, rng: np.random.Generator) -> int:
        return self.length

    def max_x0_len(self, x1_len: int) -> int:
        return self.length

    @property
    def sampling_mask_length(self) -> int:
        return self.length


class UniformMasks(X0Sampler):
    """A uniformly random number of masks in [min_length, max_length], both included (`masks[min:A,max:B]`)."""

    def __init__(self, min_length: int, max_length: int):
        self.min_length = min_length
        self.max_length = max_length
        self.max_masks = max_length
        self.spec = f"masks[min:{min_length},max:{max_length}]"

    def __call__(self, x1_len: int, rng: np.random.Generator) -> int:
        return int(rng.integers(self.min_length, self.max_length + 1))

    def max_x0_len(self, x1_len: int) -> int:
        return self.max_length

    @property
    def sampling_mask_length(self) -> int:
        # The largest x0 it trained on: the model learned to delete the masks an answer does not need, so
        # starting from the most masks keeps the longest answers reachable in few insertions.
        return self.max_length


class EmptyX0(X0Sampler):
    """No masks: x0 is BOS (+ prompt) alone (`empty`)."""

    spec = "empty"
    max_masks = 0

    def __call__(self, x1_len: int, rng: np.random.Generator) -> int:
        return 0

    @property
    def sampling_mask_length(self) -> int:
        return 0

    def max_x0_len(self, x1_len: int) -> int:
        return 0


class Corrupt(X0Sampler):
    """x0 = x1 corrupted at rate p (`corrupt[p:P]`, 0 < P <= 1), so the model learns to revise real text.

    Each token of x1 after the prompt is, independently with probability p, corrupted in one of three ways with
    equal probability: substituted by a noise token, deleted, or kept with a noise token inserted after it.
    Insertions are capped at ceil(p * n) per example (n = tokens of x1 after the prompt; a random subset is kept
    when more are drawn), so x0 never has more than `max_x0_len(n) = n + ceil(p * n)` tokens after the prompt.
    Noise tokens are drawn uniformly from `noise_pool` (the collator passes the data tokens of the batch, so
    noise has the data's unigram distribution and never is a special token); with an empty pool a noise
    substitution becomes a deletion and a noise insertion is skipped.
    """

    masks_only = False
    revises_only = True

    def __init__(self, p: float):
        self.p = p
        self.spec = f"corrupt[p:{p:g}]"

    @property
    def sampling_mask_length(self) -> int:
        # A reviser starts from the text it is given: no masks.
        return 0

    def max_x0_len(self, x1_len: int) -> int:
        return x1_len + math.ceil(self.p * x1_len)

    def corrupt(self, x1: np.ndarray, rng: np.random.Generator, noise_pool: np.ndarray, word_roles=None) -> np.ndarray:
        """The corrupted copy of `x1` (the tokens after the prompt); `word_roles` is not used."""
        x1 = np.asarray(x1, dtype=np.int64)
        n = len(x1)
        kind = np.where(rng.random(n) < self.p, rng.integers(1, 4, n), 0)  # 0 keep, 1 sub, 2 del, 3 insert after
        inserted = np.flatnonzero(kind == 3)
        cap = math.ceil(self.p * n)
        if len(inserted) > cap:
            kind[rng.choice(inserted, size=len(inserted) - cap, replace=False)] = 0
        if len(noise_pool) == 0:
            kind = np.where(kind == 1, 2, np.where(kind == 3, 0, kind))
        noise = noise_pool[rng.integers(0, max(len(noise_pool), 1), n)] if len(noise_pool) else np.zeros(n, np.int64)
        token = np.where(kind == 1, noise, x1)
        repeat = np.where(kind == 2, 0, 1)
        out = np.repeat(token, repeat)
        # Each insertion goes right after its (kept) token: its position in `out` is the count of kept tokens so far.
        after = np.cumsum(repeat)[kind == 3]
        return np.insert(out, after, noise[kind == 3])


class CorruptWords(Corrupt):
    """x0 = x1 with whole words corrupted (`corrupt_words[p:P]`, 0 < P <= 1): the model learns to revise text
    whose errors are words (a wrong word, a missing one, one too many), not single tokens.

    Each word of x1 after the prompt is, independently with probability p, corrupted in one of three ways with
    equal probability: replaced by a noise word, dropped, or kept with a noise word inserted after it. Line breaks
    and special tokens stay. A word is a token that begins one (`BEGINS_WORD`, or the first token after
    a line break) and the tokens that continue it, by `word_roles`, the vocabulary's `token_word_roles` (a prompt
    that ends inside a word leaves the rest of that word to be corrupted as one). Noise words are drawn uniformly
    from the words of `noise_pool` that begin with a space (the collator passes the words of the batch's data tokens,
    cut example by example). The tokens a corruption adds beyond those it removes are capped at ceil(p * n) per example
    (corruptions drawn in a random order; one that would pass the cap is not made), so x0 never has more than
    `max_x0_len(n) = n + ceil(p * n)` tokens after the prompt. With no noise word, replacing becomes dropping and
    inserting is skipped.
    """

    needs_word_roles = True

    def __init__(self, p: float):
        self.p = p
        self.spec = f"corrupt_words[p:{p:g}]"

    @staticmethod
    def noise_words(noise_pool: np.ndarray, word_roles) -> list[np.ndarray]:
        """The words of `noise_pool` that begin with a space: the noise words `corrupt` draws from (the collator
        cuts them once per batch and passes the list as `noise_pool`)."""
        words, is_word = split_words(noise_pool, word_roles)
        return [w for w, ok in zip(words, is_word) if ok and word_roles[w[0]] == BEGINS_WORD]

    def corrupt(self, x1: np.ndarray, rng: np.random.Generator, noise_pool, word_roles=None) -> np.ndarray:
        """The corrupted copy of `x1` (the tokens after the prompt); `noise_pool`: tokens, or `noise_words`."""
        if word_roles is None:
            raise ValueError(
                f"{self.spec} needs to know where words begin: build the collator with "
                "EditFlowCollator.from_tokenizer(tokenizer, ...), or pass word_roles=token_word_roles(tokenizer)."
            )
        x1 = np.asarray(x1, dtype=np.int64)
        words, is_word = split_words(x1, word_roles)
        noise_words = noise_pool if isinstance(noise_pool, list) else self.noise_words(noise_pool, word_roles)
        kind = np.where(is_word & (rng.random(len(words)) < self.p), rng.integers(1, 4, len(words)), 0)
        if not noise_words:
            kind = np.where(kind == 1, 2, np.where(kind == 3, 0, kind))
        noise = [noise_words[i] for i in rng.integers(0, len(noise_words), len(words))] if noise_words else [None] * len(words)
        budget = math.ceil(self.p * len(x1))  # tokens added beyond those removed
        for i in rng.permutation(np.flatnonzero(kind != 0)):
            growth = len(noise[i]) - len(words[i]) if kind[i] == 1 else len(noise[i]) if kind[i] == 3 else 0
            if growth > budget:
                kind[i] = 0
            else:
                budget -= max(growth, 0)
        out = []
        for word, k, new in zip(words, kind, noise):
            out.append(new if k == 1 else word[:0] if k == 2 else word)
            if k == 3:
                out.append(new)
        return np.concatenate(out) if out else x1[:0]


def split_words(tokens: np.ndarray, word_roles) -> tuple[list[np.ndarray], np.ndarray]:
    """`tokens` cut into units: words (a token beginning one, then the tokens continuing it) and single tokens that
    are never corrupted (line breaks, special tokens); also whether each unit is a word."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if len(tokens) == 0:
        return [], np.zeros(0, bool)
    roles = np.asarray(word_roles)[tokens]
    after_break = np.concatenate([[True], roles[:-1] == BREAK])
    begins = (roles != CONTINUES_WORD) | after_break
    cuts = np.flatnonzero(begins)
    ends = np.append(cuts[1:], len(tokens))
    return [tokens[a:b] for a, b in zip(cuts.tolist(), ends.tolist())], roles[cuts] != BREAK


# How tokenizers mark the space before a word: byte-level BPE (GPT-2, Llama 3, SmolLM2) "Ġ", SentencePiece "▁";
# and the characters that stand for whitespace in their vocabularies.
SPACE_MARKS = ("\u0120", "\u2581")
_WHITESPACE_MARKS = set("\u0120\u0109\u010d\u2581") | set(" \t\r")


def marks_spaces(tokenizer) -> bool:
    """Whether `tokenizer` marks the space before a word in its tokens (byte-level BPE "Ġ", SentencePiece "▁"), so
    that a token without the mark continues the word before it."""
    probe = tokenizer.convert_ids_to_tokens(tokenizer("hello world", add_special_tokens=False)["input_ids"])
    return any(str(piece).startswith(SPACE_MARKS) for piece in probe)


def token_word_roles(tokenizer) -> np.ndarray:
    """The role of every token id of `tokenizer` in a word (`CONTINUES_WORD`, `BEGINS_WORD`, `BREAK`), for
    `corrupt_words`. WordPiece vocabularies (BERT) mark the tokens that continue a word with "##"; byte-level BPE
    and SentencePiece mark those that begin one with a space mark ("Ġ", "▁"). A vocabulary with neither mark
    (e.g. split on whitespace before BPE) cannot tell, and every token counts as a word. Tokens that hold a line
    break, and special tokens, are breaks."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    tokens = [token if isinstance(token, str) else "" for token in tokens]
    wordpiece = sum(token.startswith("##") for token in tokens) > 0.05 * len(tokens)
    space_marked = marks_spaces(tokenizer)
    roles = np.full(len(tokens), BEGINS_WORD, np.int8)
    for i, token in enumerate(tokens):
        if not token or "\u010a" in token or "\n" in token or token == "<0x0A>":
            roles[i] = BREAK
        elif set(token) <= _WHITESPACE_MARKS:
            continue  # spaces (indentation, a lone "Ġ" before a word the vocabulary splits off): a word begins
        elif wordpiece and token.startswith("##") or space_marked and not token.startswith(SPACE_MARKS):
            roles[i] = CONTINUES_WORD
    roles[[i for i in tokenizer.all_special_ids if 0 <= i < len(roles)]] = BREAK
    return roles


class Mixture(X0Sampler):
    """Each example uses one component, drawn with probability weight / sum of weights (`0.5*A + 0.5*B`)."""

    def __init__(self, components: list[X0Sampler], weights: list[float]):
        self.components = components
        self.weights = weights
        self.probabilities = np.asarray(weights, dtype=np.float64) / sum(weights)
        self.masks_only = all(component.masks_only for component in components)
        self.revises_only = all(component.revises_only for component in components)
        self.needs_word_roles = any(component.needs_word_roles for component in components)
        self.spec = " + ".join(f"{w:g}*{c.spec}" for w, c in zip(weights, components))

    def draw(self, rng: np.random.Generator) -> X0Sampler:
        return self.components[int(rng.choice(len(self.components), p=self.probabilities))]

    def max_x0_len(self, x1_len: int) -> int:
        return max(component.max_x0_len(x1_len) for component in self.components)

    @property
    def sampling_mask_length(self) -> int:
        return max(component.sampling_mask_length for component in self.components)

    def __call__(self, x1_len: int, rng: np.random.Generator) -> int:
        raise TypeError("A mixture has no mask count of its own: call draw(rng) first, then the component.")

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.spec == other.spec

    __hash__ = X0Sampler.__hash__


def _bad(spec: str, why: str) -> ValueError:
    return ValueError(f"Invalid x0 sampler {spec!r}: {why}. Valid forms: {', '.join(VALID_FORMS)}.")


def _parse_args(spec: str, args: str, floats: tuple[str, ...] = ()) -> dict[str, int | float]:
    parsed = {}
    for item in filter(None, (part.strip() for part in args.split(","))):
        key, sep, value = (s.strip() for s in item.partition(":"))
        if not sep or not key:
            raise _bad(spec, f"argument {item!r} is not of the form key:value")
        if key in parsed:
            raise _bad(spec, f"argument {key!r} is given twice")
        try:
            parsed[key] = float(value) if key in floats else int(value)
        except ValueError:
            kind = "a number" if key in floats else "an integer"
            raise _bad(spec, f"argument {key!r} must be {kind}, got {value!r}") from None
        if parsed[key] < 0:
            raise _bad(spec, f"argument {key!r} must be >= 0, got {parsed[key]}")
    return parsed


def parse_x0_sampler(spec: "str | X0Sampler") -> X0Sampler:
    """Build an `X0Sampler` from its spec string (an `X0Sampler` passes through); ValueError for anything else."""
    if isinstance(spec, X0Sampler):
        return spec
    if not isinstance(spec, str):
        raise _bad(str(spec), f"expected a string, got {type(spec).__name__}")
    if "+" not in spec and "*" not in spec:
        return _parse_single(spec, spec)
    components, weights = [], []
    for term in spec.split("+"):
        match = _TERM.match(term)
        if match is None or not term.strip():
            raise _bad(spec, f"cannot read the mixture term {term.strip()!r}; write weight*sampler, e.g. 0.5*corrupt[p:0.2]")
        try:
            weight = float(match["weight"]) if match["weight"] is not None else 1.0
        except ValueError:
            raise _bad(spec, f"weight {match['weight']!r} is not a number") from None
        if not weight > 0:
            raise _bad(spec, f"mixture weights must be positive, got {match['weight']}")
        components.append(_parse_single(spec, match["spec"]))
        weights.append(weight)
    return components[0] if len(components) == 1 else Mixture(components, weights)


def _parse_single(spec: str, part: str) -> X0Sampler:
    """One sampler of `spec` (all of it, or one term of a mixture)."""
    match = _SPEC.match(part)
    if match is None:
        raise _bad(spec, "cannot parse it")
    name, args = match.group("name").lower(), match.group("args")
    parsed = _parse_args(spec, args or "", floats=("p",) if name in ("corrupt", "corrupt_words") else ())
    if name in ("corrupt", "corrupt_words"):
        if set(parsed) != {"p"}:
            raise _bad(spec, f'"{name}" takes exactly one argument p (the corruption rate); got {", ".join(sorted(parsed)) or "none"}')
        if not 0 < parsed["p"] <= 1:
            raise _bad(spec, f"p must be in (0, 1], got {parsed['p']}")
        return Corrupt(parsed["p"]) if name == "corrupt" else CorruptWords(parsed["p"])
    if name == "empty":
        if args is not None and parsed:
            raise _bad(spec, '"empty" takes no arguments')
        return EmptyX0()
    if name != "masks":
        raise _bad(spec, f"unknown sampler name {match.group('name')!r}")
    keys = set(parsed)
    if keys == {"length"}:
        return FixedMasks(parsed["length"])
    if keys == {"min", "max"}:
        if parsed["min"] > parsed["max"]:
            raise _bad(spec, f"min ({parsed['min']}) must not exceed max ({parsed['max']})")
        return UniformMasks(parsed["min"], parsed["max"])
    unknown = keys - {"length", "min", "max"}
    if unknown:
        raise _bad(spec, f"unknown argument(s) {', '.join(sorted(unknown))}")
    raise _bad(spec, f'"masks" needs either length, or both min and max; got {", ".join(sorted(keys)) or "none"}')


__all__ = [
    "DEFAULT_X0_SAMPLER", "X0Sampler", "FixedMasks", "UniformMasks", "EmptyX0", "Corrupt", "CorruptWords", "Mixture",
    "VALID_FORMS", "parse_x0_sampler", "split_words", "token_word_roles", "marks_spaces", "SPACE_MARKS", "CONTINUES_WORD",
    "BEGINS_WORD", "BREAK",
]
