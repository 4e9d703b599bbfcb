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
                 "Test your function on a case you can do in your head: D = 1, mu1 = mu2, var1 = var2 = 1/(4 pi). "
                 "Then var1 + var2 = 1/(2 pi), and the penalty and the constant cancel: the score must be 0."],
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
                 "Test it in your head: K = 2 observations with the same variance give var_f = var / 2 and the plain "
                 "average of the two means; an observation with a huge variance should barely move mu_f."],
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


# --------------------------------------------------------------------------- 08.3 where the KL pulls

def reference_kl_gradients(mu, log_var):
    """The gradients of KL(N(mu, diag exp(log_var)) || N(0, I)), summed over the rows, with respect to mu and
    log_var, one entry at a time: d/dmu 1/2 mu^2 = mu, d/ds 1/2 (exp(s) - s) = 1/2 (exp(s) - 1)."""
    g_mu = [[m for m in ms] for ms in mu.double().tolist()]
    g_lv = [[0.5 * (math.exp(lv) - 1) for lv in lvs] for lvs in log_var.double().tolist()]
    return torch.tensor(g_mu, dtype=torch.float64), torch.tensor(g_lv, dtype=torch.float64)


@exercise("08.3", "Where DUL's regulariser pulls", writes="my_kl_gradients",
          hints=["Work one entry at a time: with s = log σ², one dimension contributes 1/2 (μ² + exp(s) − s − 1) "
                 "to the KL, and no other entry appears in it. So each gradient has the shape of its input, "
                 "entry by entry.",
                 "Differentiate with respect to s = log σ², the quantity the network outputs, not σ²: "
                 "d/ds exp(s) = exp(s), and the −s term gives −1. Keep the factor 1/2 on both terms.",
                 "Once you have the two formulas, set each one to zero: which mean and which variance does the KL "
                 "alone pull every dimension to?"],
          mistakes=["gradient with respect to the variance", "1/2 missing", "the -1 of -log var missing",
                    "sign flipped", "the pair swapped"],
          implemented_by=["dmlcourse.uncertainty.dul_kl"])
def check_kl_gradients(fn) -> str:
    """``fn(mu, log_var) -> (grad_mu, grad_log_var)``, each of the inputs' shape (N, D): the gradients of the KL
    term of DUL, summed over the N rows, worked out by hand (not by autograd)."""
    for seed, mu, var, _, _ in _problems():
        log_var = var.log()
        out = fn(mu.clone(), log_var.clone())
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise AssertionError("return a pair (grad_mu, grad_log_var), each of the shape of the inputs.")
        g_mu = as_shaped_tensor(out[0], mu.shape, "my_kl_gradients", "grad_mu: one entry per entry of mu")
        g_lv = as_shaped_tensor(out[1], mu.shape, "my_kl_gradients", "grad_log_var: one entry per entry of log_var")
        ref_mu, ref_lv = reference_kl_gradients(mu, log_var)
        if close(g_mu, ref_mu) and close(g_lv, ref_lv):
            continue
        if close(g_mu, ref_lv) and close(g_lv, ref_mu):
            raise AssertionError("the two gradients are swapped: return (grad_mu, grad_log_var) in that order.")
        if close(g_mu, -ref_mu) and close(g_lv, -ref_lv):
            raise AssertionError("both signs are flipped: return the gradient itself (the direction in which the KL "
                                 "grows), not the descent step.")
        if not close(g_mu, ref_mu):
            name_the_mistake(g_mu, {"grad_mu: d/dμ of 1/2 μ² is μ; you dropped the 1/2 (2μ).": 2 * mu})
            raise AssertionError(f"grad_mu differs from d KL/dμ by up to {(g_mu - ref_mu).abs().max().item():.3g} "
                                 f"(seed {seed}); only the 1/2 μ² term depends on μ.")
        name_the_mistake(g_lv, {
            "that is the gradient with respect to the variance σ², 1/2 (1 − 1/σ²); the network outputs s = log σ², "
            "and d/ds = σ² · d/dσ².": 0.5 * (1 - 1 / var),
            "the factor 1/2 is missing on the log-variance gradient.": var - 1,
            "the −1 is missing: the KL contains −log σ² = −s, whose derivative with respect to s is −1.": 0.5 * var,
        })
        raise AssertionError(f"grad_log_var differs from d KL/d log σ² by up to {(g_lv - ref_lv).abs().max().item():.3g} "
                             f"(seed {seed}).")
    return ("the same as the gradients of a float64 loop on 2 random problems. Both vanish at μ = 0 and σ² = 1: on "
            "its own the KL pulls every image to N(0, I), its variance up towards 1; the cross-entropy on the noisy "
            "sample z is what keeps σ² small where the image is easy to classify.")


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
