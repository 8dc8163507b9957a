"""The one error type of user-facing failures, and the wrapper that turns it into a CLI's one-line message."""

import sys
from collections.abc import Callable


class EditFlowError(ValueError):
    """A failure the user can fix (bad input, an incomplete folder, no network...). The message is one line that
    names the fix; every CLI prints it as `prog: error: message` and exits with `code` (2 for bad input, 3 for a
    push that failed after the model was saved)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def run_cli(prog: str, body: Callable, catch: tuple[type[BaseException], ...] = (ValueError, OSError)):
    """Run a CLI's `body` and return what it returns; an error of the `catch` types (by default EditFlowError,
    ValueError and OSError) ends as one line on stderr, `prog: error: message`, and its exit code is returned."""
    try:
        return body()
    except catch as err:
        message = " ".join(str(err).split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        return getattr(err, "code", 2)


__all__ = ["EditFlowError", "run_cli"]
