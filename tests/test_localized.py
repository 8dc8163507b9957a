"""Localized propagation paths (paper appendix C.1): the closed-form draw against a direct simulation of its CTMC,
and the localized loss against a float64 reference computed from the auxiliary matrix M itself."""

import numpy as np
import pytest
import torch

from builders import BOS, MASK, PAD
from editflow_hf.modeling.scheduling_editflow import get_scheduler
from editflow_hf.objective.loss import EditFlowLoss
from editflow_hf.path import collator as collator_module
from editflow_hf.path.collator import EditFlowCollator
from editflow_hf.path.localized import sample_localized_path
from test_loss import VOCAB, reference_loss, tiny_model

N_COLUMNS, LAMBDA_PROP, TIMES = 5, 4.0, (0.35, 0.6, 0.85)


def simulate_ctmc(scheduler, n_samples, times, rng, dt=1e-3):
    """Step the CTMC of M (module doc of path.localized) forward in small steps, for n_samples independent copies:
    M[l, l] switches on with the exact probability of its rate over the step, 1 - (1 - kappa(s + dt)) / (1 - kappa(s)),
    M[l, j != l] at rate lambda_prop when M[l, j - 1] or M[l, j + 1] is on. Returns {t: M [S, N, N] bool}."""
    n = N_COLUMNS
    state = np.zeros((n_samples, n, n), dtype=bool)
    diagonal = np.eye(n, dtype=bool)
    p_prop = 1.0 - np.exp(-LAMBDA_PROP * dt)
    snapshots, s = {}, 0.0
    for target in sorted(times):
        while s < target - 1e-12:
            step = min(dt, target - s)
            k0, k1 = (float(scheduler.kappa(torch.tensor(v, dtype=torch.float64))) for v in (s, s + step))
            p_diag = 1.0 - (1.0 - k1) / (1.0 - k0)
            next_to_on = np.zeros_like(state)
            next_to_on[..., 1:] |= state[..., :-1]
            next_to_on[..., :-1] |= state[..., 1:]
            u = rng.random(state.shape)
            fire = np.where(diagonal, u < p_diag, next_to_on & (u < 1.0 - np.exp(-LAMBDA_PROP * step)))
            state = state | fire
            s += step
        snapshots[target] = state.copy()
    assert p_prop > 0
    return snapshots


def statistics_of_m(M):
    """Per column: P(m_i), E[runs next to column i while it is off], P(run of row 2 has k columns) for k = 0..N."""
    n = M.shape[-1]
    m = M.any(axis=1)
    left = np.zeros_like(M)
    left[..., 1:] = M[..., :-1]
    right = np.zeros_like(M)
    right[..., :-1] = M[..., 1:]
    runs = (left | right).sum(axis=1) * ~m
    run_length = M[:, 2, :].sum(axis=1)
    return m.mean(0), runs.mean(0), np.bincount(run_length, minlength=n + 1) / len(M)


def closed_form_as_M(draws, n):
    """The M matrices of closed-form draws (row l: [t*_l <= t] * [l - N_left <= j <= l + N_right])."""
    M = np.zeros((len(draws), n, n), dtype=bool)
    for s, (draw, t) in enumerate(draws):
        for row in range(n):
            if draw.switch_time[row] <= t:
                M[s, row, max(row - draw.n_left[row], 0) : row + draw.n_right[row] + 1] = True
    return M


@pytest.mark.parametrize("scheduler_name", ["linear", "power"])
def test_closed_form_draw_matches_ctmc_simulation(scheduler_name):
    scheduler = get_scheduler(scheduler_name)
    n_samples = 4000
    simulated = simulate_ctmc(scheduler, n_samples, TIMES, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for t in TIMES:
        draws = [(sample_localized_path(N_COLUMNS, t, scheduler, LAMBDA_PROP, rng), t) for _ in range(n_samples)]
        M = closed_form_as_M(draws, N_COLUMNS)
        # The draw's own summaries agree with its M (the loss uses neighbour_runs, the path uses switched).
        m_ref, runs_ref, _ = statistics_of_m(M)
        assert np.array_equal(np.stack([d.switched for d, _ in draws]), M.any(axis=1))
        left, right = np.zeros_like(M), np.zeros_like(M)
        left[..., 1:], right[..., :-1] = M[..., :-1], M[..., 1:]
        expected_runs = (left | right).sum(axis=1) * ~M.any(axis=1)
        assert np.array_equal(np.stack([d.neighbour_runs for d, _ in draws]), expected_runs)
        # Switch times: P(t*_l <= t) = kappa(t).
        switched_rows = np.mean([d.switch_time <= t for d, _ in draws])
        kappa = float(scheduler.kappa(torch.tensor(t)))
        assert abs(switched_rows - kappa) < 4 * np.sqrt(kappa * (1 - kappa) / (n_samples * N_COLUMNS)) + 1e-3
        # Column marginals, neighbour-run means and the run-length distribution of the middle row against the CTMC.
        for ours, theirs in zip((m_ref, runs_ref, statistics_of_m(M)[2]), statistics_of_m(simulated[t])):
            spread = np.sqrt(np.maximum(ours, theirs).clip(0.01) * 2 / n_samples)
            assert np.all(np.abs(ours - theirs) < 5 * spread + 0.01), (t, ours, theirs)


def test_propagation_changes_the_distribution():
    """The simulation distinguishes lambda_prop: the closed form with no propagation fails the same comparison."""
    scheduler = get_scheduler("linear")
    simulated = simulate_ctmc(scheduler, 3000, (0.6,), np.random.default_rng(2))[0.6]
    rng = np.random.default_rng(3)
    draws = [(sample_localized_path(N_COLUMNS, 0.6, scheduler, 0.0, rng), 0.6) for _ in range(3000)]
    ours = statistics_of_m(closed_form_as_M(draws, N_COLUMNS))[0]
    assert np.abs(ours - statistics_of_m(simulated)[0]).max() > 0.1


def test_localized_loss_matches_float64_reference(monkeypatch):
    """Each remaining edit weighs lambda_eff = w(t) + lambda_prop * sum_l [M[l, i-1] or M[l, i+1]], with M rebuilt
    from the recorded draws, in a plain per-edit loop."""
    recorded = []

    def recording_sample(n_columns, t, scheduler, lambda_prop, rng):
        draw = sample_localized_path(n_columns, t, scheduler, lambda_prop, rng)
        recorded.append((draw, t))
        return draw

    def recording_zt(z0, z1, draw):
        recorded[-1] = (*recorded[-1], z0, z1)
        return np.where(draw.switched, z1, z0)

    monkeypatch.setattr(collator_module, "sample_localized_path", recording_sample)
    monkeypatch.setattr(collator_module, "localized_zt", recording_zt)
    rng = np.random.default_rng(7)
    features = [{"input_ids": [BOS] + rng.integers(4, VOCAB, size=rng.integers(4, 18)).tolist()} for _ in range(6)]
    collator = EditFlowCollator(
        mask_token_id=MASK, bos_token_id=BOS, pad_token_id=PAD, x0_sampler="masks[min:2,max:20]", scheduler="power",
        path="localized", lambda_prop=LAMBDA_PROP, seed=0,
    )  # fmt: skip
    batch = collator(features)
    scheduler = get_scheduler("power")
    prop_rate = []
    for draw, t, z0, z1 in recorded:
        n = len(z0)
        M = closed_form_as_M([(draw, t)], n)[0]
        m = M.any(axis=0)
        for column in np.flatnonzero(np.where(m, z1, z0) != z1):
            beside = [M[l, column - 1] if column > 0 else False for l in range(n)]
            beside = [b or (M[l, column + 1] if column + 1 < n else False) for l, b in enumerate(beside)]
            prop_rate.append(LAMBDA_PROP * sum(beside))
    assert len(prop_rate) == len(batch.edit_kind) and max(prop_rate) > 0
    torch.testing.assert_close(batch.edit_prop_rate.double(), torch.tensor(prop_rate, dtype=torch.float64))

    model = tiny_model(3).double().eval()
    with torch.no_grad():
        ours = EditFlowLoss(scheduler=scheduler, max_w=20.0)(model(**batch.model_inputs()), batch)
        expected = reference_loss(model, batch, scheduler="power", max_w=20.0, prop_rate=prop_rate)
        factorized = reference_loss(model, batch, scheduler="power", max_w=20.0)
    torch.testing.assert_close(ours.loss, expected, rtol=1e-6, atol=1e-6)
    assert abs(float(expected - factorized)) > 1e-3  # the effective rates matter on this case
