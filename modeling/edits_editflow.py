"""What an edit is and how a decode is recorded: shared by the loss, the sampler, the pipeline and the trace views.

`EditKind` fixes the integer codes of the three edit operations (training batches, loss and sampler agree on
them); `EDIT_RULES`, `WRITE_ORDERS` and `INFILL_MODES` are the values of the settings that choose when edits fire,
which drawn writes fire and what a mask in the prompt becomes (the generation config checks them, the commands offer
them as flag choices); `TraceStep` / `DecodeTrace` are the record of a decode that the sampler writes, the pipeline
returns (`to_dict()`) and the trace views draw. Remote code: imports only the standard library, so that a command's
`--help` can read these without loading torch.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import IntEnum


class EditKind(IntEnum):
    """The three edit operations, with the integer codes that training batches and tensors carry."""

    SUB = 0  # substitute the token at a position
    DEL = 1  # delete the token at a position
    INS = 2  # insert a token in the gap after a position


# When an edit fires: sample (tau-leaping), threshold (more likely than not) or gain (expected gain of the edit).
EDIT_RULES = ("sample", "threshold", "gain")
# Which drawn writes fire: all of them, or those whose token head does not read a mask still to be written.
WRITE_ORDERS = ("parallel", "frontier")
# What a [MASK] in the prompt becomes: a span the model may grow or shrink, or exactly one token.
INFILL_MODES = ("free", "fixed")


def pad_token_id_of(config) -> int:
    """The id that pads a batch of rows of a model with `config`: its `pad_token_id`, else 0."""
    return config.pad_token_id if config.pad_token_id is not None else 0


def unwritable_token_ids(config) -> list[int]:
    """The special tokens no edit may write (the sampler's `suppress_token_ids`): mask, BOS and padding. Mask and
    BOS are kept only where x0 put them; the sampler never inserts or substitutes them."""
    return [config.mask_token_id, config.bos_token_id, config.pad_token_id]


@dataclass
class TraceStep:
    """One step of a decode that changed a sequence.

    Attributes:
        step: 1-based index of the tau step.
        t: the time reached by the step (in (0, 1]).
        tokens: the whole sequence after the step, BOS included.
        inserted: indices into `tokens` of the tokens this step inserted.
        substituted: indices into `tokens` of the tokens whose value this step changed.
        deleted: indices into the previous step's tokens of the tokens this step deleted.
    """

    step: int
    t: float
    tokens: list[int]
    inserted: list[int] = field(default_factory=list)
    substituted: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)


@dataclass
class DecodeTrace:
    """The decode of one sequence: its start and every step that changed it (steps that changed nothing are left out).

    Attributes:
        prompt_len: leading tokens shown as the prompt (BOS included).
        initial: the start sequence (BOS + prompt + masks).
        steps: the changing steps, in order.

    `to_dict()` gives the JSON-friendly form the pipeline returns under "trace" and `from_dict()` reads it back
    (checking its shape once, so the trace views can trust it).
    """

    prompt_len: int
    initial: list[int]
    steps: list[TraceStep] = field(default_factory=list)

    @classmethod
    def start(cls, sequences: Sequence[Sequence[int]], prompt_lengths: Sequence[int] | None = None) -> "list[DecodeTrace]":
        """Empty traces of a batch of start sequences (`prompt_lengths` default to 1: BOS)."""
        prompt_lengths = list(prompt_lengths) if prompt_lengths is not None else [1] * len(sequences)
        return [cls(prompt_len=int(p), initial=[int(x) for x in ids]) for p, ids in zip(prompt_lengths, sequences)]

    @property
    def final_tokens(self) -> list[int]:
        """The sequence after the last step (the start sequence when no step changed it)."""
        return self.steps[-1].tokens if self.steps else self.initial

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: "dict | DecodeTrace") -> "DecodeTrace":
        """A trace from `to_dict()`'s form (a `DecodeTrace` passes through); ValueError naming what is malformed."""
        if isinstance(data, cls):
            return data
        try:
            steps = [TraceStep(**step) for step in data["steps"]]
            return cls(prompt_len=int(data.get("prompt_len", 0)), initial=list(data["initial"]), steps=steps)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(
                "A decode trace must be a DecodeTrace or its to_dict() form {'prompt_len', 'initial', 'steps': "
                f"[{{'step', 't', 'tokens', 'inserted', 'substituted', 'deleted'}}, ...]}}; got {type(data).__name__} ({err})."
            ) from None


__all__ = [
    "EDIT_RULES",
    "INFILL_MODES",
    "WRITE_ORDERS",
    "DecodeTrace",
    "EditKind",
    "TraceStep",
    "pad_token_id_of",
    "unwritable_token_ids",
]
