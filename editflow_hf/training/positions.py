"""The longest x_t a run can build, against the encoder's position table (`check_positions`), so that a
--max_length / --x0_sampler pair that cannot fit fails before the data is loaded: `max_xt_length` for masks,
`max_xt_length_any_coupling` for corrupted text and mixtures."""

from ..errors import EditFlowError


def max_xt_length(task: str, max_length: int, max_masks: int) -> int:
    """The longest x_t the collator can build from an example of at most `max_length` tokens (BOS included)
    and an x0 of at most `max_masks` masks.

    Why: the alignment of x0 = x1[:p] + N masks with x1 (`alignment.align_masks`) has the p prompt columns and
    one block of max(N, M) columns, M = len(x1) - p, in which the longer side fills every column; so no column
    is blank on both sides and there are exactly p + max(N, M) = max(len(x0), len(x1)) columns. x_t is z_t
    without blanks and each column of z_t is that column of z0 or of z1, so len(x_t) <= max(len(x0), len(x1)).
    The bound is reached: with N >= M by z_t = z0 (t near 0), with N < M by z_t taking z1 in every insertion
    column (t near 1). Hence the largest x_t is max(len(x0), len(x1)) maximised over the data:
      pt:  p = 1 (BOS), len(x1) <= max_length, len(x0) = 1 + N           -> max(max_length, 1 + N_max)
      sft: p <= max_length - 1 (format_sft drops rows whose prompt fills max_length), len(x1) <= max_length,
           len(x0) = p + N <= max_length - 1 + N_max                      -> max(max_length, max_length - 1 + N_max)
    """
    longest_prompt = 1 if task == "pt" else max_length - 1
    return max(max_length, longest_prompt + max_masks)


def max_xt_length_any_coupling(task: str, max_length: int, x0_sampler) -> int:
    """A bound on len(x_t) for any coupling (corrupted text, mixtures), from `x0_sampler.max_x0_len`.

    Why: after the matched prefix (BOS, prompt: p tokens) the collator's alignment of a and b tokens is a minimum
    edit alignment, so its deletion and insertion columns D + I are at most its cost, at most max(a, b). Its
    columns number a + I = b + D, i.e. (a + b + D + I) / 2 <= (a + b + max(a, b)) / 2, and x_t has at most one
    token per column. With b = n x1 tokens after the prompt and a <= max_x0_len(n), maximised over the split of
    --max_length between prompt and answer (pt: p = 1; sft: p + n <= max_length).
    """

    def bound(prompt: int, n: int) -> int:
        a = x0_sampler.max_x0_len(n)
        return prompt + (a + n + max(a, n)) // 2

    if task == "pt":
        return max(bound(1, n) for n in range(max_length))
    return max(bound(max_length - n, n) for n in range(max_length))


def encoder_positions(config) -> int | None:
    """The number of positions the encoder can embed (an EditFlowConfig or a plain encoder config): the model's one
    position rule, `encoder_max_positions` (RoBERTa's offset applied), or None when the config does not say."""
    from ..modeling.configuration_editflow import encoder_max_positions

    return encoder_max_positions(getattr(config, "encoder_config", None) or config)


def check_positions(config, task: str, max_length: int, x0_sampler) -> None:
    """EditFlowError when the longest x_t (`max_xt_length`) exceeds the encoder's positions; the message gives
    the largest --max_length that fits."""
    if max_length < 2:
        raise EditFlowError(f"--max_length must be at least 2 (BOS and one token); got {max_length}.")
    positions = encoder_positions(config)
    if positions is None:
        return
    if not x0_sampler.masks_only:
        _check_positions_any_coupling(task, max_length, x0_sampler, positions)
        return
    max_masks = x0_sampler.max_masks
    longest = max_xt_length(task, max_length, max_masks)
    if longest <= positions:
        return
    if task == "pt":
        why = f"--max_length {max_length}" if max_length >= 1 + max_masks else f"BOS + {max_masks} masks of {x0_sampler.spec}"
        fixes = [f"lower --max_length to {positions}"] if max_length > positions else []
        if 1 + max_masks > positions:
            fixes.append(f"use at most {positions - 1} masks in --x0_sampler")
    else:
        why = f"a prompt of up to --max_length - 1 = {max_length - 1} tokens followed by {max_masks} masks of {x0_sampler.spec}"
        fitting = positions + 1 - max(1, max_masks)
        fixes = [f"lower --max_length to {fitting}"] if fitting >= 2 else []
        fixes.append("use fewer masks in --x0_sampler")
    raise EditFlowError(
        f"x_t can reach {longest} tokens ({why}) but the encoder has only {positions} positions; {' or '.join(fixes)}."
    )


def _check_positions_any_coupling(task: str, max_length: int, x0_sampler, positions: int) -> None:
    longest = max_xt_length_any_coupling(task, max_length, x0_sampler)
    if longest <= positions:
        return
    low, high = 1, max_length  # the bound grows with --max_length: the largest that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if max_xt_length_any_coupling(task, middle, x0_sampler) <= positions else (low, middle - 1)
    fix = f"lower --max_length to {low}" if low >= 2 else "use a backbone with more positions"
    raise EditFlowError(
        f"x_t can reach {longest} tokens (--max_length {max_length}, x0 from {x0_sampler.spec} interleaved with x1 "
        f"by the alignment) but the encoder has only {positions} positions; {fix}."
    )
