"""Command-line values as dLLM and HfArgumentParser spell them: booleans given as words (`--make_gif True`); and
the checks of numeric flags (`NumberRule`, `check_finite`) that every command runs before it loads anything."""

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

from .errors import EditFlowError

# The words a boolean flag value may be, in any case.
TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "0", "off"})


def bool_word(value) -> bool | None:
    """True / False for a boolean word (`TRUE_WORDS`, `FALSE_WORDS`, any case, surrounding spaces ignored), None
    for anything else."""
    lowered = str(value).strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    return None


def str_to_bool(value: str) -> bool:
    """`True`/`False` (any case), `yes`/`no`, `1`/`0`, `on`/`off`: dLLM passes booleans as values (`--make_gif True`)."""
    parsed = bool_word(value)
    if parsed is not None:
        return parsed
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def add_bool_flag(parser: argparse.ArgumentParser, *names: str, help: str, dest: str | None = None) -> None:
    """A switch that also takes a value, as HfArgumentParser's booleans do: `--x`, `--x True`, `--x False`."""
    kwargs = {"dest": dest} if dest else {}
    parser.add_argument(*names, type=str_to_bool, nargs="?", const=True, default=False, help=help, **kwargs)


SEED_LIMIT = 2**32  # numpy's seeds: 0 .. 2**32 - 1


@dataclass(frozen=True)
class NumberRule:
    """`flag` must satisfy `ok` (None passes when `optional`); the message says it must be `what`."""

    flag: str
    ok: Callable[[float], bool]
    what: str
    optional: bool = False

    def check(self, value) -> None:
        if value is None and self.optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.ok(value):
            raise EditFlowError(f"--{self.flag} {value}: must be {self.what}.")


def check_finite(name: str, value) -> None:
    """EditFlowError when `value` (a number, or the numbers of a dict / list) is NaN or infinite."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(f"{name} {key}", item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_finite(name, item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise EditFlowError(f"--{name} {value}: must be a finite number.")


def seed_rule(flag: str = "seed", optional: bool = False) -> NumberRule:
    """A seed flag: numpy's range."""
    return NumberRule(flag, lambda v: 0 <= v < SEED_LIMIT, f"a whole number in [0, {SEED_LIMIT - 1}]", optional=optional)


MAX_LENGTH_RULE = NumberRule("max_length", lambda v: v >= 2, "at least 2 (BOS and one token)")
