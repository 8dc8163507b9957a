"""Command-line values as dLLM and HfArgumentParser spell them: booleans given as words (`--make_gif True`)."""

import argparse


def str_to_bool(value: str) -> bool:
    """`True`/`False` (any case), `yes`/`no`, `1`/`0`: dLLM passes booleans as values (`--make_gif True`)."""
    lowered = str(value).lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def add_bool_flag(parser: argparse.ArgumentParser, *names: str, help: str, dest: str | None = None) -> None:
    """A switch that also takes a value, as HfArgumentParser's booleans do: `--x`, `--x True`, `--x False`."""
    kwargs = {"dest": dest} if dest else {}
    parser.add_argument(*names, type=str_to_bool, nargs="?", const=True, default=False, help=help, **kwargs)
