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


def check_device(value, flag: str = "--device") -> None:
    """EditFlowError (one line) unless `value` (None: the default device) names a torch device this machine has:
    a known device type (`--device banana` is not), with its backend built and a device visible (`--device cuda` on
    a CPU-only torch is not), and an index below the device count. Checked before any model loads."""
    if value is None:
        return
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        raise EditFlowError(f"{flag} {value}: not a torch device; use cpu, cuda, cuda:N or mps (or leave it out).") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise EditFlowError(f"{flag} {value}: {why}; use --device cpu (or leave it out).")
        if device.index is not None and device.index >= count:
            raise EditFlowError(f"{flag} {value}: there are {count} CUDA devices (cuda:0 to cuda:{count - 1}).")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EditFlowError(f"{flag} {value}: MPS is not available on this machine; use --device cpu (or leave it out).")
    elif device.type not in ("cpu", "cuda", "mps", "xpu", "meta"):
        accelerator = getattr(torch, device.type, None)
        if accelerator is None or not getattr(accelerator, "is_available", lambda: False)():
            raise EditFlowError(f"{flag} {value}: no {device.type} device on this machine; use --device cpu (or leave it out).")
