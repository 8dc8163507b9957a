"""Kappa schedulers: endpoints, derivative against finite differences, the clamped weight, name errors."""

import pytest
import torch

from editflow_hf.modeling.scheduling_editflow import SCHEDULERS, get_scheduler

CASES = [
    ("linear", {}), ("cosine", {}), ("cubic", {}), ("cubic", {"a": 1.0, "b": 1.0}), ("cubic", {"a": 0.5, "b": 3.0}),
    ("LinearKappaScheduler", {}), ("CubicKappaScheduler", {}), ("CubicKappaScheduler", {"a": 2.0, "b": 0.5}),
    ("CosineKappaScheduler", {}), ("power", {}), ("power", {"exponent": 1.5}),
]  # fmt: skip


@pytest.mark.parametrize("name, kwargs", CASES)
def test_inverse_kappa(name, kwargs):
    """kappa(kappa^{-1}(k)) = k (closed forms for linear and power, bisection otherwise): the localized path draws
    switch times with it."""
    scheduler = get_scheduler(name, **kwargs)
    k = torch.linspace(0.0, 1.0, 41, dtype=torch.float64)
    torch.testing.assert_close(scheduler.kappa(scheduler.inverse_kappa(k)), k, atol=1e-9, rtol=0)


def test_power_is_the_papers_t_cubed():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(get_scheduler("power").kappa(t), t**3)
    torch.testing.assert_close(get_scheduler("power").inverse_kappa(t**3), t)


@pytest.mark.parametrize("name, kwargs", CASES)
def test_endpoints_and_monotone(name, kwargs):
    scheduler = get_scheduler(name, **kwargs)
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    kappa = scheduler.kappa(t)
    torch.testing.assert_close(kappa[0], torch.tensor(0.0, dtype=torch.float64))
    torch.testing.assert_close(kappa[-1], torch.tensor(1.0, dtype=torch.float64))
    assert (kappa.diff() >= -1e-12).all() and (scheduler.derivative(t) >= -1e-12).all()


@pytest.mark.parametrize("name, kwargs", CASES)
def test_derivative_matches_finite_differences(name, kwargs):
    scheduler = get_scheduler(name, **kwargs)
    t = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    h = 1e-6
    numeric = (scheduler.kappa(t + h) - scheduler.kappa(t - h)) / (2 * h)
    torch.testing.assert_close(scheduler.derivative(t), numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, kwargs", CASES)
def test_weight_formula_and_clamp(name, kwargs):
    scheduler = get_scheduler(name, **kwargs)
    t = torch.linspace(0.0, 0.999, 500, dtype=torch.float64)
    weight = scheduler.weight(t)
    torch.testing.assert_close(weight, scheduler.derivative(t) / (1 - scheduler.kappa(t)))
    clamped = scheduler.weight(t, max_w=5.0)
    assert clamped.max() <= 5.0 and (weight > 5.0).any()
    torch.testing.assert_close(clamped[weight <= 5.0], weight[weight <= 5.0])
    assert torch.isfinite(scheduler.weight(torch.ones(1, dtype=torch.float64), max_w=5.0)).all()


def test_linear_weight_is_one_over_one_minus_t():
    t = torch.tensor([0.0, 0.5, 0.9])
    torch.testing.assert_close(get_scheduler("linear").weight(t), 1 / (1 - t))


def test_cubic_with_unit_slopes_is_linear():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(get_scheduler("cubic", a=1.0, b=1.0).kappa(t), t)


def test_dllm_cubic_is_dllms_formula():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(get_scheduler("CubicKappaScheduler", a=1, b=1).kappa(t), 2 * t**3 - 3 * t**2 + 2 * t)
    torch.testing.assert_close(get_scheduler("CubicKappaScheduler", a=1, b=1).derivative(t), 6 * t**2 - 6 * t + 2)
    a, b = 2.0, 0.5
    dllm = get_scheduler("CubicKappaScheduler", a=a, b=b)
    torch.testing.assert_close(dllm.kappa(t), (a + 1) * t**3 - (a + b + 1) * t**2 + (b + 1) * t)
    torch.testing.assert_close(dllm.derivative(t), 3 * (a + 1) * t**2 - 2 * (a + b + 1) * t + (b + 1))
    # dLLM's defaults are a = b = 1, and its cubic is not this project's `cubic` with the same arguments.
    torch.testing.assert_close(get_scheduler("CubicKappaScheduler").kappa(t), 2 * t**3 - 3 * t**2 + 2 * t)
    assert (get_scheduler("cubic", a=a, b=b).kappa(t) - dllm.kappa(t)).abs().max() > 0.05


def test_dllm_linear_and_cosine():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    linear = get_scheduler("LinearKappaScheduler")
    torch.testing.assert_close(linear.kappa(t), t)
    torch.testing.assert_close(linear.derivative(t), torch.ones_like(t))
    # As in dLLM, LinearKappaScheduler is its cubic with defaults a=-1, b=0: other arguments give that cubic.
    torch.testing.assert_close(get_scheduler("LinearKappaScheduler", a=1, b=1).kappa(t), 2 * t**3 - 3 * t**2 + 2 * t)
    cosine = get_scheduler("CosineKappaScheduler")
    torch.testing.assert_close(cosine.kappa(t), 1 - torch.cos(torch.pi / 2 * t))
    torch.testing.assert_close(cosine.derivative(t), torch.pi / 2 * torch.sin(torch.pi / 2 * t))
    with pytest.raises(ValueError, match="Bad arguments"):
        get_scheduler("CosineKappaScheduler", a=1.0)


@pytest.mark.parametrize("name", ["LinearKappaScheduler", "CubicKappaScheduler", "CosineKappaScheduler", "cubickappascheduler"])
def test_dllm_names_round_trip(name):
    """The name a scheduler records (model.config.scheduler) rebuilds the same schedule."""
    scheduler = get_scheduler(name, **({"a": 0.5, "b": 2.0} if "cubic" in name.lower() else {}))
    assert scheduler.name.lower() == name.lower()
    rebuilt = get_scheduler(scheduler.name, **{k: v for k, v in vars(scheduler).items()})
    t = torch.linspace(0, 1, 11)
    torch.testing.assert_close(rebuilt.kappa(t), scheduler.kappa(t))


def test_name_variants():
    assert type(get_scheduler("LinearScheduler")) is SCHEDULERS["linear"]
    assert type(get_scheduler("cosine")) is SCHEDULERS["cosine"]


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_scheduler("quadratic")
    for name in ("linear", "cubic", "cosine"):
        assert name in str(err.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Bad arguments"):
        get_scheduler("linear", a=2.0)


def test_an_instance_is_used_as_it_is():
    cubic = get_scheduler("cubic", a=2.0, b=0.5)
    assert get_scheduler(cubic) is cubic
    with pytest.raises(ValueError, match="apply to a scheduler given by name"):
        get_scheduler(cubic, a=1.0)
