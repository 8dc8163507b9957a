"""Command-line values as dLLM and HfArgumentParser spell them: booleans given as words (`--make_gif True`)."""

import argparse

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
