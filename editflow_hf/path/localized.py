"""Localized propagation paths (Havasi et al. 2025, arXiv 2506.09018, appendix C.1), sampled in closed form.

The factorized path lets each column of the aligned pair (z0, z1) switch from z0 to z1 independently (probability
kappa(t) by time t). For long sequences x_t is then a scatter of unrelated tokens. The localized path makes an
edit incite edits next to it: auxiliary booleans M (N x N, all false at t = 0) follow N independent CTMCs, one per
row l:

    M[l, l] switches on at rate  lambda_indep(t) = kappa'(t) / (1 - kappa(t))      (the factorized rate)
    M[l, j] (j != l) switches on at rate  lambda_prop * [M[l, j-1] or M[l, j+1]]   (spreads from the diagonal)

and column i of z_t shows z1 when any row has switched it on: m_i = OR_l M[l, i]. So row l is false until its
switch time t*_l, then a run [l - N_left, l + N_right] that grows one column at a time at rate lambda_prop on each
side. The closed-form draw at time t (no simulation):

    t*_l     = kappa^{-1}(1 - u_l),  u_l ~ U(0, 1)      (inverse method: P(t*_l <= t) = kappa(t))
    N_left_l, N_right_l ~ Poisson(lambda_prop * (t - t*_l)), independent, when t*_l <= t  (nothing otherwise)
    M[l, j]  = [t*_l <= t] * [l - N_left_l <= j <= l + N_right_l]      (clipped to the columns 0..N-1)

The rate at which a column i still off (m_i false) switches on is then the effective rate

    lambda_eff_i(t) = lambda_indep(t) + lambda_prop * sum_l [M[l, i-1] or M[l, i+1]]

(its own row, plus one propagation per run that ends right next to it), which replaces w(t) as the weight of that
column's edit in the loss (`objective.loss`). With lambda_prop = 0 it is the factorized path in distribution.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..modeling.scheduling_editflow import KappaScheduler

PATHS = ("factorized", "localized")


@dataclass(frozen=True)
class LocalizedPathDraw:
    """One draw of the localized path's auxiliary state at time t for N columns (numpy arrays of length N).

    Attributes:
        switch_time: t*_l of each row (may exceed t: not switched yet).
        n_left, n_right: propagation counts of each row (0 for rows not switched).
        switched: m_i, whether column i shows z1.
        neighbour_runs: sum_l [M[l, i-1] or M[l, i+1]] for columns still off (0 where m_i is true): the number of
            runs that can propagate into column i, lambda_eff_i = lambda_indep + lambda_prop * neighbour_runs_i.
    """

    switch_time: np.ndarray
    n_left: np.ndarray
    n_right: np.ndarray
    switched: np.ndarray
    neighbour_runs: np.ndarray


def sample_localized_path(
    n_columns: int, t: float, scheduler: KappaScheduler, lambda_prop: float, rng: np.random.Generator
) -> LocalizedPathDraw:
    """Draw (t*, N_left, N_right) for `n_columns` rows at time `t` and the column state they give (module doc)."""
    if lambda_prop < 0:
        raise ValueError(f"lambda_prop must be >= 0; got {lambda_prop}.")
    u = rng.random(n_columns)
    switch_time = scheduler.inverse_kappa(torch.from_numpy(1.0 - u)).numpy()
    elapsed = np.clip(t - switch_time, 0.0, None)
    on = switch_time <= t
    n_left = np.where(on, rng.poisson(lambda_prop * elapsed), 0)
    n_right = np.where(on, rng.poisson(lambda_prop * elapsed), 0)
    rows = np.arange(n_columns)
    left = np.clip(rows - n_left, 0, None)[on]
    right = np.clip(rows + n_right, None, n_columns - 1)[on]
    # Columns covered by at least one run: +1 at each run's start, -1 after its end, cumulative sum.
    cover = np.zeros(n_columns + 1, np.int64)
    np.add.at(cover, left, 1)
    np.add.at(cover, right + 1, -1)
    switched = np.cumsum(cover[:n_columns]) > 0
    # A run [left, right] borders column right + 1 and column left - 1 (when they exist).
    neighbour_runs = np.bincount(right + 1, minlength=n_columns + 1)[:n_columns]
    neighbour_runs = neighbour_runs + np.bincount(left[left > 0] - 1, minlength=n_columns)[:n_columns]
    neighbour_runs = np.where(switched, 0, neighbour_runs)
    return LocalizedPathDraw(switch_time, n_left, n_right, switched, neighbour_runs)


def localized_zt(z0: np.ndarray, z1: np.ndarray, draw: LocalizedPathDraw) -> np.ndarray:
    """z_t of the localized path: z1 on the switched columns, z0 elsewhere."""
    return np.where(draw.switched, z1, z0)


__all__ = ["PATHS", "LocalizedPathDraw", "localized_zt", "sample_localized_path"]
