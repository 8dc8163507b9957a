"""Kappa schedulers: how fast the probability path moves from x0 to x1.

Each column of the aligned pair (z0, z1) shows z1 at time t with probability kappa(t), else z0.
The edit rates are scaled by the weight w(t) = kappa'(t) / (1 - kappa(t)): the model predicts
rates per unit of w, so the same network serves every t (training loss and tau-leaping alike).

Two families of names: this project's short names (`linear`, `cubic`, `cosine`, `power` (t^p, p=3 the paper's); `cubic`'s a and b are the end
slopes of a Hermite cubic) and dLLM's class names (`LinearKappaScheduler`, `CubicKappaScheduler`,
`CosineKappaScheduler`), which give exactly dLLM's schedules with dLLM's arguments and defaults (its cubic's a
and b are other coefficients: `CubicKappaScheduler(a=1, b=1)` is 2t^3 - 3t^2 + 2t). A model's config records
the name it was trained with, so sampling uses the same schedule.
"""

import math

import torch


class KappaScheduler:
    """Base class: subclasses define `kappa(t)` and `derivative(t)` on tensors of times in [0, 1]."""

    name = ""

    def kappa(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def derivative(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def weight(self, t: torch.Tensor, max_w: float | None = None) -> torch.Tensor:
        """w(t) = kappa'(t) / (1 - kappa(t)), clamped at `max_w` when given (it diverges as t -> 1)."""
        w = self.derivative(t) / (1.0 - self.kappa(t)).clamp_min(1e-12)
        return w if max_w is None else w.clamp(max=max_w)

    def inverse_kappa(self, k: torch.Tensor) -> torch.Tensor:
        """t such that kappa(t) = k, for k in [0, 1] (kappa is increasing from 0 to 1). Bisection in float64 to
        about 1e-15 (50 halvings); subclasses with a closed form override it. The localized path draws the
        switch time of a column by the inverse method: t* = kappa^{-1}(1 - u), u ~ U(0, 1)."""
        k = torch.as_tensor(k, dtype=torch.float64)
        low, high = torch.zeros_like(k), torch.ones_like(k)
        for _ in range(50):
            mid = (low + high) / 2
            below = self.kappa(mid) < k
            low, high = torch.where(below, mid, low), torch.where(below, high, mid)
        return (low + high) / 2

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class LinearScheduler(KappaScheduler):
    """kappa(t) = t,  kappa'(t) = 1,  w(t) = 1 / (1 - t)."""

    name = "linear"

    def kappa(self, t):
        return t

    def derivative(self, t):
        return torch.ones_like(t)

    def inverse_kappa(self, k):
        return torch.as_tensor(k, dtype=torch.float64)


class PowerScheduler(KappaScheduler):
    """kappa(t) = t^p,  kappa'(t) = p t^(p-1),  w(t) = p t^(p-1) / (1 - t^p),  kappa^{-1}(k) = k^(1/p).

    `exponent=3` (the default) is the paper's cubic scheduler kappa_t = t^3 (Havasi et al. 2025, section 5:
    better than linear for Edit Flows and Mask DFM); this project's `cubic` is a Hermite cubic, another curve.
    """

    name = "power"

    def __init__(self, exponent: float = 3.0):
        if not exponent > 0:
            raise ValueError(f"The power scheduler needs exponent > 0; got {exponent}.")
        self.exponent = float(exponent)

    def kappa(self, t):
        return t**self.exponent

    def derivative(self, t):
        return self.exponent * t ** (self.exponent - 1)

    def inverse_kappa(self, k):
        return torch.as_tensor(k, dtype=torch.float64) ** (1.0 / self.exponent)


class CubicScheduler(KappaScheduler):
    """Cubic Hermite path with slope `a` at t=0 and `b` at t=1 (a = b = 1 is the linear path):

    kappa(t)  = -2t^3 + 3t^2 + a (t^3 - 2t^2 + t) + b (t^3 - t^2)
    kappa'(t) = -6t^2 + 6t + a (3t^2 - 4t + 1) + b (3t^2 - 2t)
    """

    name = "cubic"

    def __init__(self, a: float = 2.0, b: float = 0.5):
        self.a = float(a)
        self.b = float(b)

    def kappa(self, t):
        a, b = self.a, self.b
        return -2 * t**3 + 3 * t**2 + a * (t**3 - 2 * t**2 + t) + b * (t**3 - t**2)

    def derivative(self, t):
        a, b = self.a, self.b
        return -6 * t**2 + 6 * t + a * (3 * t**2 - 4 * t + 1) + b * (3 * t**2 - 2 * t)


class CosineScheduler(KappaScheduler):
    """kappa(t) = 1 - cos(pi t / 2),  kappa'(t) = (pi / 2) sin(pi t / 2)."""

    name = "cosine"

    def kappa(self, t):
        return 1.0 - torch.cos(0.5 * math.pi * t)

    def derivative(self, t):
        return 0.5 * math.pi * torch.sin(0.5 * math.pi * t)


class CubicKappaScheduler(KappaScheduler):
    """dLLM's `CubicKappaScheduler(a=1.0, b=1.0)`:

    kappa(t)  = (a+1) t^3 - (a+b+1) t^2 + (b+1) t
    kappa'(t) = 3 (a+1) t^2 - 2 (a+b+1) t + (b+1)
    """

    name = "CubicKappaScheduler"

    def __init__(self, a: float = 1.0, b: float = 1.0):
        self.a = float(a)
        self.b = float(b)

    def kappa(self, t):
        a, b = self.a, self.b
        return (a + 1) * t**3 - (a + b + 1) * t**2 + (b + 1) * t

    def derivative(self, t):
        a, b = self.a, self.b
        return 3 * (a + 1) * t**2 - 2 * (a + b + 1) * t + (b + 1)


class LinearKappaScheduler(CubicKappaScheduler):
    """dLLM's `LinearKappaScheduler`: its cubic with defaults a=-1, b=0, i.e. kappa(t) = t (and, as in dLLM, other
    a and b give that cubic)."""

    name = "LinearKappaScheduler"

    def __init__(self, a: float = -1.0, b: float = 0.0):
        super().__init__(a=a, b=b)


class CosineKappaScheduler(CosineScheduler):
    """dLLM's `CosineKappaScheduler`: kappa(t) = 1 - cos(pi t / 2), as `cosine`."""

    name = "CosineKappaScheduler"


SCHEDULERS = {cls.name: cls for cls in (LinearScheduler, CubicScheduler, CosineScheduler, PowerScheduler)}
DLLM_SCHEDULERS = {cls.name: cls for cls in (LinearKappaScheduler, CubicKappaScheduler, CosineKappaScheduler)}


def get_scheduler(name: "str | KappaScheduler", **kwargs) -> KappaScheduler:
    """Build a scheduler by name, e.g. `get_scheduler("cubic", a=2, b=0.5)` (this project's meaning) or
    `get_scheduler("CubicKappaScheduler", a=1, b=1)` (dLLM's; its class names match in any case). `LinearScheduler`
    and the like name the short ones. A `KappaScheduler` instance is returned as it is (its arguments are already
    set; kwargs are not allowed)."""
    if isinstance(name, KappaScheduler):
        if kwargs:
            raise ValueError(f"Scheduler arguments {kwargs} apply to a scheduler given by name, not to {name!r}.")
        return name
    dllm_names = {key.lower(): key for key in DLLM_SCHEDULERS}
    if name.lower() in dllm_names:
        cls = DLLM_SCHEDULERS[dllm_names[name.lower()]]
    else:
        key = name.lower().removesuffix("scheduler").strip("_")
        if key not in SCHEDULERS:
            valid = ", ".join([*SCHEDULERS, *DLLM_SCHEDULERS])
            raise ValueError(f"Unknown kappa scheduler {name!r}; valid names: {valid}.")
        cls = SCHEDULERS[key]
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"Bad arguments {kwargs} for the {cls.name!r} scheduler: {err}") from None


__all__ = [
    "KappaScheduler", "LinearScheduler", "CubicScheduler", "CosineScheduler", "PowerScheduler", "LinearKappaScheduler",
    "CubicKappaScheduler", "CosineKappaScheduler", "SCHEDULERS", "DLLM_SCHEDULERS", "get_scheduler",
]  # fmt: skip
