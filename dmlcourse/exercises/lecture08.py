"""Exercises of 08_uncertainty_pfe.

The references here are loops over the closed forms in float64 (``math.log``), independent of
``dmlcourse.uncertainty`` (which the notebook teaches and the learner must not call). The tests check that they
agree with the package, and that the MLS reference is the logarithm of a numerical Gaussian integral.
"""

# Every check here has the layout of the checks of the other lectures, on purpose, so that one
# reads like the next: an @exercise with its hints, a few random problems against an independent
# reference, the known mistakes named (_common.name_the_mistake), then the general message. The
# shapes repeat (a duplicate finder lists them); the code they share lives in _common.

from __future__ import annotations

import math

import torch

from . import exercise
from ._common import as_number, as_shaped_tensor, close, name_the_mistake

LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- references (float64 loops)

def reference_mls_terms(mu1, var1, mu2, var2) -> dict:
    """The MLS of each pair of rows and its parts, one dimension at a time:
    attention -1/2 sum d^2 / (v1 + v2), penalty -1/2 sum log(v1 + v2), constant -(D/2) log 2 pi."""
    att, pen, const = [], [], []
    for a, va, b, vb in zip(*(t.double().tolist() for t in (mu1, var1, mu2, var2))):
        att.append(-0.5 * sum((p - q) ** 2 / (u + w) for p, u, q, w in zip(a, va, b, vb)))
        pen.append(-0.5 * sum(math.log(u + w) for u, w in zip(va, vb)))
        const.append(-0.5 * len(a) * LOG_2PI)
    out = {k: torch.tensor(v, dtype=torch.float64) for k, v in
           (("attention", att), ("penalty", pen), ("constant", const))}
    out["total"] = out["attention"] + out["penalty"] + out["constant"]
    return out


def reference_mls(mu1, var1, mu2, var2) -> torch.Tensor:
    """log of the integral of N(z; mu1, var1) N(z; mu2, var2) dz, i.e. log N(0; mu1 - mu2, var1 + var2), per row."""
    return reference_mls_terms(mu1, var1, mu2, var2)["total"]


def reference_fuse(mu, var):
    """Precision-weighted fusion of the K rows of (K, D) means and variances: 1/var_f = sum_k 1/var_k,
    mu_f = var_f sum_k mu_k / var_k, one dimension at a time."""
    mu_l, var_l = mu.double().T.tolist(), var.double().T.tolist()
    var_f = [1.0 / sum(1.0 / v for v in vs) for vs in var_l]
    mu_f = [vf * sum(m / v for m, v in zip(ms, vs)) for vf, ms, vs in zip(var_f, mu_l, var_l)]
    return torch.tensor(mu_f, dtype=torch.float64), torch.tensor(var_f, dtype=torch.float64)


def reference_kl(mu, log_var) -> torch.Tensor:
    """KL( N(mu, diag exp(log_var)) || N(0, I) ) per row: 1/2 sum (mu^2 + var - log var - 1)."""
    return torch.tensor([0.5 * sum(m * m + math.exp(lv) - lv - 1 for m, lv in zip(ms, lvs))
                         for ms, lvs in zip(mu.double().tolist(), log_var.double().tolist())], dtype=torch.float64)


def reference_crossing(var_uncertain: float, var_certain: float, var_other: float) -> float:
    """The distance d = |mu1 - mu2| (D = 1) at which the MLS with var1 = var_uncertain equals the MLS with
    var1 = var_certain (var2 = var_other in both). With a = v_c + v_o and b = v_u + v_o:
    d^2 / a + log a = d^2 / b + log b, so d^2 (1/a - 1/b) = log(b / a)."""
    a, b = var_certain + var_other, var_uncertain + var_other
    return math.sqrt(math.log(b / a) / (1 / a - 1 / b))


# --------------------------------------------------------------------------- helpers

def _problems(n=12, d=6):
    for seed in range(2):
        g = torch.Generator().manual_seed(seed)
        yield (seed,
               torch.randn(n, d, generator=g, dtype=torch.float64),
               torch.rand(n, d, generator=g, dtype=torch.float64) * 2 + 0.05,
               torch.randn(n, d, generator=g, dtype=torch.float64) * 2,
               torch.rand(n, d, generator=g, dtype=torch.float64) * 2 + 0.05)




# --------------------------------------------------------------------------- 08.1 the MLS

@exercise("08.1", "The mutual likelihood score by hand", writes="my_mls",
          hints=["Per dimension l, z1 - z2 is Gaussian with mean mu1 - mu2 and variance var1 + var2; the MLS is the "
                 "log of its density at 0, summed over the D dimensions.",
                 "Three parts, each summed over dim 1: -1/2 (mu1 - mu2)^2 / (var1 + var2), -1/2 log(var1 + var2), "
                 "and the constant -1/2 log(2 pi) per dimension.",
                 "v = var1 + var2; return -0.5 * ((mu1 - mu2) ** 2 / v + torch.log(v)).sum(1) "
                 "- 0.5 * mu1.shape[1] * math.log(2 * math.pi)"],
          mistakes=["sign error", "log term missing", "constant missing", "official PFE form",
                    "divided by each variance", "inputs squared or square-rooted", "mean instead of sum"],
          implemented_by=["dmlcourse.uncertainty.mls_terms", "dmlcourse.uncertainty._mls_terms"])
def check_mls(fn) -> str:
    """``fn(mu1, var1, mu2, var2) -> (N,)`` scores: the mutual likelihood score with the 1/2 and the constant
    (D/2) log 2 pi, variances (not standard deviations) as inputs."""
    for seed, mu1, var1, mu2, var2 in _problems():
        n, d = mu1.shape
        yours = as_shaped_tensor(fn(mu1.clone(), var1.clone(), mu2.clone(), var2.clone()), (n,), "my_mls",
                        "one score per pair of rows")
        t = reference_mls_terms(mu1, var1, mu2, var2)
        ours = t["total"]
        if close(yours, ours):
            continue
        variants = {
            "sign error: you return minus the MLS (a loss, not a score). Higher must mean more likely the same.":
                -ours,
            "the log term is missing: add -1/2 sum log(var1 + var2) (the penalty term).":
                t["attention"] + t["constant"],
            f"the constant -(D/2) log(2 pi) = {-0.5 * d * LOG_2PI:.4f} is missing (it changes no ranking, but the "
            "MLS is a log-likelihood).": t["attention"] + t["penalty"],
            "this is the official PFE code's form (no 1/2, no constant): same ranking, but not the MLS itself. "
            "Add the 1/2 and the constant.": 2 * (t["attention"] + t["penalty"]),
            "the squared difference is divided by each variance separately; divide it by their SUM var1 + var2 "
            "(the variance of z1 - z2).":
                -0.5 * ((mu1 - mu2) ** 2 / var1 + (mu1 - mu2) ** 2 / var2 + torch.log(var1 + var2)).sum(1)
                - 0.5 * d * LOG_2PI,
            "you average over the D dimensions; the log-density of D independent dimensions is their SUM.": ours / d,
            "var1 and var2 ARE variances already: do not square them.":
                reference_mls(mu1, var1 ** 2, mu2, var2 ** 2),
            "var1 and var2 ARE variances already: do not take their square root.":
                reference_mls(mu1, var1.sqrt(), mu2, var2.sqrt()),
        }
        name_the_mistake(yours, variants)
        raise AssertionError(f"on a random problem (seed {seed}) your scores differ from the MLS by up to "
                             f"{(yours - ours).abs().max().item():.3g}.")
    return "the same as a float64 loop over the closed form on 2 random problems."


# --------------------------------------------------------------------------- 08.2 fusion

@exercise("08.2", "Fusing Gaussians by hand", writes="my_fuse",
          hints=["Multiply the K Gaussians of each dimension: the precisions (1/var) add up.",
                 "1/var_f = sum_k 1/var_k; the fused mean is the precision-weighted average of the means.",
                 "p = 1 / var; var_f = 1 / p.sum(0); return var_f * (p * mu).sum(0), var_f"],
          mistakes=["plain average", "weighted by the variance", "average variance as the fused variance"],
          implemented_by=["dmlcourse.uncertainty.fuse"])
def check_fusion(fn) -> str:
    """``fn(mu, var) -> (mu_f, var_f)``: fuse K observations (K, D) of one class into one Gaussian (D,)."""
    for seed, mu, var, _, _ in _problems(n=5):
        m_ours, v_ours = reference_fuse(mu, var)
        out = fn(mu.clone(), var.clone())
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise AssertionError("return a pair (mu_f, var_f).")
        m = as_shaped_tensor(out[0], m_ours.shape, "my_fuse's mean", "one value per dimension")
        v = as_shaped_tensor(out[1], v_ours.shape, "my_fuse's variance", "one value per dimension")
        if close(m, m_ours) and close(v, v_ours):
            continue
        if close(m, mu.mean(0)):
            raise AssertionError("the fused mean is the plain average: weight each observation by its precision 1/var.")
        if close(m, (var * mu).sum(0) / var.sum(0)):
            raise AssertionError("you weight by the variance; weight by the precision 1/var (confident observations "
                                 "must count more).")
        if close(m, m_ours) and close(v, var.mean(0)):
            raise AssertionError("the fused variance is not the average variance: 1/var_f = sum_k 1/var_k (more "
                                 "observations, less uncertainty).")
        if close(m, m_ours) and close(v, 1 / (1 / var).mean(0)):
            raise AssertionError("1/var_f is the SUM of the precisions, not their mean: K observations make the "
                                 "fused Gaussian K times as sure as a typical one.")
        if close(m, m_ours):
            raise AssertionError("the mean is right but the variance is not: 1/var_f = sum_k 1/var_k.")
        raise AssertionError(f"on a random problem (seed {seed}) your fused mean differs from the precision-weighted "
                             f"one by up to {(m - m_ours).abs().max().item():.3g}.")
    return "the same as a float64 loop over the formula on 2 random problems."


# --------------------------------------------------------------------------- 08.3 DUL's KL

@exercise("08.3", "DUL's regulariser by hand", writes="my_kl",
          hints=["For one dimension, KL(N(mu, var) || N(0, 1)) = 1/2 (mu^2 + var - log var - 1); the dimensions are "
                 "independent, so sum over them.",
                 "You are given log_var, not var: var = log_var.exp().",
                 "return 0.5 * (mu ** 2 + log_var.exp() - log_var - 1).sum(1)"],
          mistakes=["1/2 missing", "-1 missing", "var and log var swapped", "mean instead of sum"],
          implemented_by=["dmlcourse.uncertainty.dul_kl"])
def check_kl(fn) -> str:
    """``fn(mu, log_var) -> (N,)``: KL(N(mu, exp(log_var)) || N(0, I)) per sample (DUL's regulariser)."""
    for seed, mu, var, _, _ in _problems():
        log_var = var.log()
        yours = as_shaped_tensor(fn(mu.clone(), log_var.clone()), (len(mu),), "my_kl", "one value per sample")
        ours = reference_kl(mu, log_var)
        if close(yours, ours):
            continue
        d = mu.shape[1]
        variants = {
            "the factor 1/2 is missing.": 2 * ours,
            "the -1 inside the sum is missing (the KL of N(0, I) to itself must be 0).": ours + 0.5 * d,
            "var and log var are swapped: it is var - log var (exp(log_var) - log_var).":
                0.5 * (mu ** 2 + log_var - log_var.exp() - 1).sum(1),
            "you average over the D dimensions; the KL of independent dimensions is their SUM.": ours / d,
        }
        name_the_mistake(yours, variants)
        raise AssertionError(f"on a random problem (seed {seed}) your KL differs from the formula by up to "
                             f"{(yours - ours).abs().max().item():.3g}.")
    return "the same as a float64 loop over the formula on 2 random problems."


# --------------------------------------------------------------------------- 08.4 predict, then explain

def _sample_crossing() -> dict:
    # section 2's grid and curves, from the float64 reference (var1 = 0.01, 0.1, 1, 10; var2 = 0.01)
    dist = torch.linspace(0, 4, 41, dtype=torch.float64)
    S = torch.stack([reference_mls(dist[:, None], torch.full((41, 1), v, dtype=torch.float64),
                                   torch.zeros(41, 1, dtype=torch.float64),
                                   torch.full((41, 1), 0.01, dtype=torch.float64))
                     for v in (0.01, 0.1, 1.0, 10.0)])
    return dict(prediction=0.5, crossing=reference_crossing(10.0, 0.01, 0.01), dist=dist, S=S)


@exercise("08.4", "Predict, then explain: when does uncertainty score higher?",
          writes="my_prediction and my_crossing",
          hints=["A prediction is a guess: any distance >= 0 is accepted. Write it BEFORE you compute anything.",
                 "With D = 1 write both scores: -1/2 (d^2 / a + log a) - 1/2 log 2 pi with a = 0.01 + 0.01 "
                 "(both certain) and with b = 10 + 0.01 (one uncertain). Set them equal: the constant cancels, and "
                 "so does the 1/2.",
                 "Gather the two squared-distance terms on one side and the two logarithms on the other: d^2 "
                 "times the gap between the two precisions 1/a and 1/b equals the log of the ratio of the two "
                 "variances. Solve that for d^2 and take the positive root."],
          mistakes=["penalty forgotten (crossing at 0)", "var2 forgotten", "variances taken as standard deviations",
                    "the 1/2 dropped on one term only", "read off the plot's grid"],
          graded=("crossing",), sample=_sample_crossing)
def check_crossing(prediction, crossing, dist, S) -> str:
    """``prediction``: a guessed |mu1 - mu2| from which the uncertain input (var1 = 10) scores higher than the
    certain one (var1 = 0.01), with var2 = 0.01 and D = 1; ``crossing``: that distance, exactly; ``dist`` and
    ``S``: the grid and the curves of section 2's plot (rows: var1 = 0.01, 0.1, 1, 10)."""
    guess = as_number(prediction, "my_prediction")
    if guess < 0:
        raise AssertionError("my_prediction is a distance |μ1 − μ2|: give a number >= 0.")
    yours = as_number(crossing, "my_crossing")
    exact = reference_crossing(10.0, 0.01, 0.01)
    if abs(yours - exact) > 1e-4:
        if abs(yours) < 1e-6:
            raise AssertionError("0 is what the attention term alone gives (a larger variance always divides the "
                                 "distance by more). The penalty -1/2 log(σ1² + σ2²) is what lets the certain pair "
                                 "win at short distances: keep it.")
        if abs(yours - reference_crossing(10.0, 0.01, 0.0)) < 1e-4:
            raise AssertionError("the variance of z1 - z2 is σ1² + σ2²: add σ2² = 0.01 to both variances.")
        if abs(yours - reference_crossing(100.0, 1e-4, 1e-4)) < 1e-4:
            raise AssertionError("10, 0.01 and 0.01 are variances σ², not standard deviations: do not square them.")
        if abs(yours - exact * math.sqrt(2)) < 1e-4 or abs(yours - exact / math.sqrt(2)) < 1e-4:
            raise AssertionError("the 1/2 multiplies both terms (attention and penalty), so it cancels; you kept it "
                                 "on only one of them.")
        if abs(yours - exact) < 0.1:
            raise AssertionError(f"{yours:.3f} is close, but the plot's grid has steps of 0.1; set the two scores "
                                 "equal and solve for |μ1 − μ2| exactly.")
        raise AssertionError(f"my_crossing = {yours:.4f}: at that distance the two scores are not equal. Write both "
                             "MLS with D = 1, set them equal and solve for |μ1 − μ2|.")
    dist, S = torch.as_tensor(dist, dtype=torch.float64), torch.as_tensor(S, dtype=torch.float64)
    above = torch.nonzero(S[-1] > S[0]).flatten()
    grid = f" In the plot above the σ1² = 10 curve passes the σ1² = 0.01 curve at |μ1 − μ2| = {dist[above[0]]:.1f}, " \
        "the first grid point after the crossing." if len(above) else ""
    return (f"you guessed {guess:.2f}; the curves cross at |μ1 − μ2| = {exact:.3f} (off by {abs(guess - exact):.2f})."
            f"{grid} Closer than that the certain pair wins (the penalty: log 0.02 against log 10.01); farther, its "
            "attention term falls as d²/0.02 = 50 d², the uncertain pair's only as d²/10.01, so uncertainty flattens "
            "the score instead of lowering it.")
