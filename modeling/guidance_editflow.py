"""Sampling settings as functions of t, and classifier-free guidance for Edit Flows (Havasi et al. 2025, app. C).

Time schedules. The paper's samplers vary settings with the flow time, e.g. the token temperature
0.8 t + 1.0 (1 - t). `TimeSchedule` takes a number (constant), a pair `(value at t=0, value at t=1)` (linear in t)
or a formula in `t` such as `"0.8*t + 1.0*(1-t)"` (numbers, `t`, + - * / **, parentheses; parsed, never `eval`ed).

Classifier-free guidance, the paper's "naive rate CFG" (the best of the three variants it tried). With the
conditional rates lambda_c and token distributions Q_c (the model reading the prompt) and the unconditional ones
lambda_u, Q_u (the model reading x_t without the prompt) and guidance scale w:

    lambda = lambda_c^(1 + w) * lambda_u^(-w)           per position and edit kind
    Q      = softmax((1 + w) log Q_c - w log Q_u)       the token distributions guided the same way

w = 0 is the conditional model. The unconditional input of a row is x_t with its conditioning (the leading
protected tokens after BOS, i.e. the prompt) removed: BOS + the generated part. Its position j >= 1 is the
conditional position j + p - 1 (p = BOS + prompt length), and its BOS gap (insertions right after BOS) is the
conditional gap after the last prompt token; positions inside the prompt are never edited and keep lambda_c.
"""

import ast
import math
import operator

import torch

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.Pow: operator.pow}  # fmt: skip


def _evaluate(node: ast.AST, t: float) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, t)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id == "t":
        return t
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left, t), _evaluate(node.right, t))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, t)
        return -value if isinstance(node.op, ast.USub) else value
    raise ValueError(f"unsupported element {ast.dump(node)[:60]}")


class TimeSchedule:
    """A sampling setting as a function of the flow time t in [0, 1] (module doc): `schedule(t) -> float`.

    Args:
        spec: a number, a pair `(at_t0, at_t1)` (linear: at_t0 (1 - t) + at_t1 t), or a formula string in `t`.
        name: the setting's name, for error messages (e.g. "temperature").
        minimum: the smallest value allowed anywhere on [0, 1] (checked on a grid of 101 times).
    """

    def __init__(self, spec, name: str = "value", minimum: float = 0.0):
        if isinstance(spec, TimeSchedule):
            spec = spec.spec
        self.name = name
        if isinstance(spec, str):
            try:
                self._tree = ast.parse(spec.strip(), mode="eval")
                _evaluate(self._tree, 0.5)
            except (SyntaxError, ValueError, ZeroDivisionError, OverflowError) as err:
                raise ValueError(
                    f"`{name}` formula {spec!r} is not valid ({err}); write it in t with numbers and + - * / ** ( ), "
                    "e.g. '0.8*t + 1.0*(1-t)'."
                ) from None
            self.spec = spec.strip()
        elif isinstance(spec, (list, tuple)):
            if len(spec) != 2 or not all(_is_real(v) for v in spec):
                raise ValueError(f"`{name}` as a pair must be (value at t=0, value at t=1); got {spec!r}.")
            self.spec = [float(spec[0]), float(spec[1])]
        elif _is_real(spec):
            self.spec = float(spec)
        else:
            raise ValueError(f"`{name}` must be a number, a pair (at t=0, at t=1) or a formula in t; got {spec!r}.")
        for k in range(101):
            value = self(k / 100)
            if not math.isfinite(value) or value < minimum:
                raise ValueError(f"`{name}` = {self.spec!r} is {value} at t = {k / 100}; it must be finite and >= {minimum} on [0, 1].")

    @property
    def is_constant(self) -> bool:
        return isinstance(self.spec, float) or (isinstance(self.spec, list) and self.spec[0] == self.spec[1])

    def __call__(self, t: float) -> float:
        if isinstance(self.spec, float):
            return self.spec
        if isinstance(self.spec, list):
            return self.spec[0] * (1.0 - t) + self.spec[1] * t
        try:
            return float(_evaluate(self._tree, float(t)))
        except (ZeroDivisionError, OverflowError):
            return math.nan

    def __repr__(self) -> str:
        return f"TimeSchedule({self.spec!r})"


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def condition_lengths(protected: torch.BoolTensor) -> torch.LongTensor:
    """p per row: the length of the leading run of protected tokens (BOS + prompt), `[B]`."""
    return protected.long().cumprod(dim=1).sum(dim=1).clamp_min(1)


def unconditional_inputs(
    tokens: torch.LongTensor, lengths: torch.LongTensor, cond_len: torch.LongTensor, pad_token_id: int
) -> tuple[torch.LongTensor, torch.LongTensor]:
    """The unconditional rows: BOS + tokens[p:length] of each row, right-padded; returns (tokens, lengths)."""
    batch, width = tokens.shape
    u_lengths = lengths - cond_len + 1
    column = torch.arange(width, device=tokens.device)[None, :]
    source = torch.where(column == 0, torch.zeros_like(column), column + cond_len[:, None] - 1).clamp(max=width - 1)
    u_tokens = torch.gather(tokens, 1, source)
    u_tokens = torch.where(column < u_lengths[:, None], u_tokens, torch.full_like(u_tokens, pad_token_id))
    return u_tokens, u_lengths


def to_conditional_positions(values: torch.Tensor, cond_len: torch.LongTensor, width: int) -> tuple[torch.Tensor, torch.BoolTensor]:
    """Place per-position values of the unconditional rows `[B, L_u, ...]` at their conditional positions `[B, width,
    ...]`: position i >= p - 1 takes unconditional position i - p + 1. Returns the placed values and the mask of the
    positions that got one (False inside the prompt)."""
    column = torch.arange(width, device=values.device)[None, :]
    source = column - cond_len[:, None] + 1
    has = (source >= 0) & (source < values.shape[1])
    index = source.clamp(0, values.shape[1] - 1)
    index = index.reshape(*index.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:])
    return torch.gather(values, 1, index), has


def guided_rates(cond: torch.Tensor, uncond: torch.Tensor, scale: float, floor: float = 1e-30) -> torch.Tensor:
    """lambda_c^(1 + w) * lambda_u^(-w), computed in log space, where both rates are positive; lambda_c elsewhere
    (0 at masked positions; the unconditional BOS, whose substitution and deletion rates are 0, sits under the last
    prompt token, which is protected)."""
    log_rate = (1.0 + scale) * cond.clamp_min(floor).log() - scale * uncond.clamp_min(floor).log()
    return torch.where((cond > 0) & (uncond > 0), log_rate.exp(), cond)


def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """(1 + w) log_softmax(cond) - w log_softmax(uncond): the logits of the guided token distribution."""
    cond_lp = torch.log_softmax(cond.float(), dim=-1)
    uncond_lp = torch.log_softmax(uncond.float(), dim=-1)
    return (1.0 + scale) * cond_lp - scale * uncond_lp


__all__ = [
    "TimeSchedule", "condition_lengths", "guided_logits", "guided_rates", "to_conditional_positions",
    "unconditional_inputs",
]  # fmt: skip
