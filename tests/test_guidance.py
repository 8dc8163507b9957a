"""Sampling settings as functions of t, and naive rate classifier-free guidance (paper appendix C): w = 0 is the
unguided sampler exactly, guided rates and token distributions match two plain forward passes, and guidance moves
samples toward the conditioning on a toy model."""

import math

import pytest
import torch
from torch import nn

from builders import BOS, MASK, PAD, tiny_editflow_model
from editflow_hf.modeling.guidance_editflow import TimeSchedule
from editflow_hf.modeling.sampling_editflow import TauLeapSampler

VOCAB = 48


def test_time_schedules():
    assert TimeSchedule(0.7)(0.3) == 0.7 and TimeSchedule(0.7).is_constant
    linear = TimeSchedule((1.0, 0.8))
    assert linear(0.0) == 1.0 and math.isclose(linear(1.0), 0.8) and not linear.is_constant
    formula = TimeSchedule("0.8*t + 1.0*(1-t)", "temperature")
    for t in (0.0, 0.25, 1.0):
        assert math.isclose(formula(t), 0.8 * t + 1.0 * (1 - t))
    assert math.isclose(TimeSchedule("60 * t**1.5 * (1-t)**0.5")(0.5), 60 * 0.5**1.5 * 0.5**0.5)
    for bad in ("__import__('os')", "t +", "x * 2", "open('f')"):
        with pytest.raises(ValueError, match="formula"):
            TimeSchedule(bad, "temperature")
    with pytest.raises(ValueError, match=r"temperature.*>= 0"):
        TimeSchedule("1 - 2*t", "temperature")
    with pytest.raises(ValueError, match="pair"):
        TimeSchedule((1.0, 2.0, 3.0))


def _start(batch=4, prompt=(9, 10, 11), masks=6):
    sequences = [[BOS, *prompt] + [MASK] * masks for _ in range(batch)]
    protected = [[True] * (1 + len(prompt)) + [False] * masks for _ in range(batch)]
    return sequences, protected, [True] * batch


def _run(model, seed, **kwargs):
    sampler = TauLeapSampler(model, tau=0.1, generator=torch.Generator().manual_seed(seed), max_length=20,
                             suppress_token_ids=[PAD, BOS, MASK], **kwargs)  # fmt: skip
    return sampler.sample(*_start()).sequences


@pytest.mark.parametrize("time_conditioning", [False, True])
def test_zero_guidance_is_the_unguided_sampler(time_conditioning):
    model = tiny_editflow_model(seed=0, rate_bias=1.0, vocab_size=VOCAB)
    if time_conditioning:
        model.enable_time_conditioning()
        with torch.no_grad():
            model.time_embedding.output.weight.normal_(0.0, 0.3)
    unguided = _run(model, 3)
    assert _run(model, 3, guidance_scale=0.0) == unguided
    assert _run(model, 3, guidance_scale=8.0) != unguided  # the same seed, guided: other samples


def test_guided_rates_and_tokens_match_two_plain_passes():
    """model_rates with w = 1.5 against the model run on x_t and on BOS + (x_t after the prompt), combined by hand."""
    model = tiny_editflow_model(seed=1, vocab_size=VOCAB).double()
    w = 1.5
    rows = [[BOS, 9, 10, MASK, 20, MASK], [BOS, 30, MASK, 21, PAD, PAD], [BOS, MASK, 22, PAD, PAD, PAD]]
    prompt_lens = [3, 2, 1]  # the last row has no prompt: nothing to guide
    ids = torch.tensor(rows)
    mask = ids != PAD
    protected = torch.zeros_like(mask)
    for b, p in enumerate(prompt_lens):
        protected[b, :p] = True
    sampler = TauLeapSampler(model, guidance_scale=w)
    with torch.no_grad():
        rates, hidden = sampler.runner.model_rates(ids, mask, 0.3, protected)
        for b, p in enumerate(prompt_lens):
            length = int(mask[b].sum())
            cond = model(ids[b : b + 1, :length])
            uncond = model(torch.tensor([[BOS] + rows[b][p:length]]))
            cond_rates = torch.stack([cond.sub_rate[0], cond.del_rate[0], cond.ins_rate[0]], -1)
            uncond_rates = torch.stack([uncond.sub_rate[0], uncond.del_rate[0], uncond.ins_rate[0]], -1)
            for i in range(length):
                if p == 1 or i < p - 1:  # no prompt, or inside the prompt: the conditional values
                    expected_rates, expected_logits = cond_rates[i], cond.ins_logits[0, i]
                else:
                    j = i - p + 1
                    expected_rates = torch.where(  # the unconditional BOS has no sub / del rate: lambda_c there
                        (cond_rates[i] > 0) & (uncond_rates[j] > 0), cond_rates[i] ** (1 + w) * uncond_rates[j] ** (-w), cond_rates[i]
                    )
                    assert torch.isfinite(rates[b, i]).all()
                    expected_logits = (1 + w) * torch.log_softmax(cond.ins_logits[0, i], -1) - w * torch.log_softmax(uncond.ins_logits[0, j], -1)
                torch.testing.assert_close(rates[b, i].double(), expected_rates.float().double(), rtol=1e-5, atol=1e-7)
                logits = sampler.runner.token_logits(model.ins_head, hidden[b, i][None], 0.3)[0]
                torch.testing.assert_close(
                    torch.log_softmax(logits.double(), -1), torch.log_softmax(expected_logits.double(), -1), rtol=1e-5, atol=1e-5
                )


TOKEN_A, TOKEN_B, CONDITION = 20, 21, 9


class ToyEncoder(nn.Module):
    """hidden[..., 0] = 1 in rows whose token after BOS is CONDITION (the prompt), hidden[..., 1] = 1 everywhere."""

    def forward(self, input_ids, attention_mask=None, t=None, **kwargs):
        hidden = torch.zeros((*input_ids.shape, 32))
        hidden[..., 0] = (input_ids[:, 1:2] == CONDITION).float() if input_ids.shape[1] > 1 else 0.0
        hidden[..., 1] = 1.0
        return hidden


def toy_model():
    """Insertions only, of A or B: P(A) = 0.8 after the prompt CONDITION, 0.5 without it (the unconditional model)."""
    model = tiny_editflow_model(seed=2, vocab_size=VOCAB)
    toy = ToyEncoder()
    model.encode = lambda input_ids, attention_mask, t=None, **kwargs: toy(input_ids)
    with torch.no_grad():
        model.rate_head.weight.zero_()
        model.rate_head.bias.copy_(torch.tensor([-30.0, -30.0, 0.5]))  # no sub / del; insertions
        head = nn.Linear(32, VOCAB)
        head.weight.zero_()
        head.bias.fill_(-30.0)
        head.bias[TOKEN_A] = head.bias[TOKEN_B] = math.log(0.5)
        head.weight[TOKEN_A, 0] = math.log(0.8) - math.log(0.5)
        head.weight[TOKEN_B, 0] = math.log(0.2) - math.log(0.5)
    model.ins_head = head
    return model


def share_of_a(model, guidance_scale, seed=0, rows=64):
    sampler = TauLeapSampler(model, tau=0.05, guidance_scale=guidance_scale, max_length=12,
                             generator=torch.Generator().manual_seed(seed), suppress_token_ids=[PAD, BOS, MASK])  # fmt: skip
    sequences = sampler.sample([[BOS, CONDITION]] * rows, [[True, True]] * rows, [True] * rows).sequences
    generated = [token for row in sequences for token in row[2:]]
    assert len(generated) > 100 and set(generated) <= {TOKEN_A, TOKEN_B}
    return sum(token == TOKEN_A for token in generated) / len(generated)


def test_guidance_moves_samples_toward_the_conditioning():
    model = toy_model()
    plain = share_of_a(model, 0.0)
    guided = share_of_a(model, 2.0)
    # w = 2: Q proportional to Q_c^3 / Q_u^2, i.e. 0.8^3 : 0.2^3 = 98.5% A, against 80% for the conditional model.
    assert abs(plain - 0.8) < 0.06
    assert guided > 0.95


def test_temperature_schedule_reaches_the_token_draws():
    """A schedule equal to a constant samples exactly as that constant (the schedule is what the draws read), and a
    schedule that changes with t gives other samples than either end held fixed."""
    model = tiny_editflow_model(seed=0, rate_bias=1.0, vocab_size=VOCAB)
    assert _run(model, 5, temperature="0*t") == _run(model, 5, temperature=0.0)
    assert _run(model, 5, temperature=(1.0, 1.0)) == _run(model, 5, temperature=1.0)
    sampler = TauLeapSampler(model, temperature="0.8*t + 1.0*(1-t)")
    assert sampler.token_rule.temperature_at(0.0) == 1.0 and math.isclose(sampler.token_rule.temperature_at(0.5), 0.9)
    assert sampler.runner.reuse_unchanged_rows  # temperature does not touch the rates: reuse stays on
    assert not TauLeapSampler(model, guidance_scale=(0.0, 1.0)).runner.reuse_unchanged_rows


def test_generation_config_carries_and_checks_the_settings():
    from editflow_hf.modeling.generation_editflow import EditFlowGenerationConfig

    config = EditFlowGenerationConfig(guidance_scale=0.5, temperature_schedule="0.8*t + 1.0*(1-t)")
    again = EditFlowGenerationConfig.from_dict(config.to_dict())
    assert again.guidance_scale == 0.5 and again.temperature_schedule == "0.8*t + 1.0*(1-t)"
    with pytest.raises(ValueError, match="guidance_scale"):
        EditFlowGenerationConfig(guidance_scale="0.5 * import")
    with pytest.raises(ValueError, match="temperature_schedule"):
        EditFlowGenerationConfig().updated(temperature_schedule=[1.0])


def test_sample_flags_carry_the_schedules_and_refuse_a_bad_one_in_one_line(tmp_path):
    """`--guidance_scale` / `--temperature_schedule` on editflow-sample and editflow-chat: a number, 'a,b' or a
    formula in t reach the pipeline's arguments; a formula the generation config cannot read is refused as a flag."""
    from editflow_hf.errors import EditFlowError
    from editflow_hf.sampling_flags import build_parser, check_common_args, sampling_kwargs

    parse = build_parser().parse_args
    base = ["--model_name_or_path", str(tmp_path)]
    args = parse([*base, "--guidance_scale", "0.5", "--temperature_schedule", "0.8*t + 1.0*(1-t)"])
    assert sampling_kwargs(args)["guidance_scale"] == 0.5
    assert sampling_kwargs(args)["temperature_schedule"] == "0.8*t + 1.0*(1-t)"
    assert sampling_kwargs(parse([*base, "--guidance_scale", "1,0"]))["guidance_scale"] == [1.0, 0.0]
    assert "guidance_scale" not in sampling_kwargs(parse(base))  # unset: the checkpoint's default applies
    check_common_args(args)
    with pytest.raises(EditFlowError, match="--guidance_scale"):
        check_common_args(parse([*base, "--guidance_scale", "__import__('os')"]))
