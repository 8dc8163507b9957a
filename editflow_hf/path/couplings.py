"""x0 samplers: how many mask tokens follow BOS (+ prompt) in the source sequence x0 of each training example.

A sampler is written as a short spec string (the `--x0_sampler` flag of the training scripts):

    "masks[length:64]"     always 64 masks
    "masks[min:8,max:64]"  a uniformly random count in [8, 64] (both ends included), drawn per example
    "empty"                no masks: x0 = BOS [+ prompt], the model grows the whole text by insertions

The sampler gets len(x1) without the prompt (so a sampler could depend on it) and the collator's numpy
Generator, and returns the number of masks.
"""

import re

import numpy as np

VALID_FORMS = ('"masks[length:N]"', '"masks[min:A,max:B]"', '"empty"')
_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*(?:\[(?P<args>[^\]]*)\])?\s*$")


class X0Sampler:
    """Decides the number of masks after BOS (+ prompt) in x0. Subclasses implement `__call__` and set
    `max_masks`, the largest count they can return (None: unbounded or unknown; the training scripts check it
    against the encoder's positions)."""

    spec = ""
    max_masks: int | None = None

    def __call__(self, x1_len: int, rng: np.random.Generator) -> int:
        raise NotImplementedError

    @property
    def sampling_mask_length(self) -> int:
        """The mask count sampling starts from by default with a model trained on this sampler (saved as
        `mask_length` in the checkpoint's generation_config.json)."""
        raise NotImplementedError

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


def _bad(spec: str, why: str) -> ValueError:
    return ValueError(f"Invalid x0 sampler {spec!r}: {why}. Valid forms: {', '.join(VALID_FORMS)}.")


def _parse_args(spec: str, args: str) -> dict[str, int]:
    parsed = {}
    for item in filter(None, (part.strip() for part in args.split(","))):
        key, sep, value = (s.strip() for s in item.partition(":"))
        if not sep or not key:
            raise _bad(spec, f"argument {item!r} is not of the form key:value")
        if key in parsed:
            raise _bad(spec, f"argument {key!r} is given twice")
        try:
            parsed[key] = int(value)
        except ValueError:
            raise _bad(spec, f"argument {key!r} must be an integer, got {value!r}") from None
        if parsed[key] < 0:
            raise _bad(spec, f"argument {key!r} must be >= 0, got {parsed[key]}")
    return parsed


def parse_x0_sampler(spec: "str | X0Sampler") -> X0Sampler:
    """Build an `X0Sampler` from its spec string (an `X0Sampler` passes through); ValueError for anything else."""
    if isinstance(spec, X0Sampler):
        return spec
    if not isinstance(spec, str):
        raise _bad(str(spec), f"expected a string, got {type(spec).__name__}")
    match = _SPEC.match(spec)
    if match is None:
        raise _bad(spec, "cannot parse it")
    name, args = match.group("name").lower(), match.group("args")
    parsed = _parse_args(spec, args or "")
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


__all__ = ["X0Sampler", "FixedMasks", "UniformMasks", "EmptyX0", "VALID_FORMS", "parse_x0_sampler"]
