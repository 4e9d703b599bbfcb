"""Check functions for the exercises of 08_uncertainty_pfe."""

from __future__ import annotations

import math

import torch

from .. import uncertainty


def _problems(n=12, d=6):
    for seed in range(2):
        g = torch.Generator().manual_seed(seed)
        yield (torch.randn(n, d, generator=g, dtype=torch.float64),
               torch.rand(n, d, generator=g, dtype=torch.float64) * 2 + 0.05,
               torch.randn(n, d, generator=g, dtype=torch.float64) * 2,
               torch.rand(n, d, generator=g, dtype=torch.float64) * 2 + 0.05)


def check_mls(fn) -> None:
    """Check ``fn(mu1, var1, mu2, var2) -> (N,)`` scores: the mutual likelihood score with the 1/2 and the
    constant (D/2) log 2 pi, variances (not standard deviations) as inputs."""
    for mu1, var1, mu2, var2 in _problems():
        d = mu1.shape[1]
        ours = uncertainty.mutual_likelihood_score(mu1, var1, mu2, var2)
        yours = torch.as_tensor(fn(mu1, var1, mu2, var2)).double()
        if yours.shape != ours.shape:
            raise AssertionError(f"expected one score per pair, shape {tuple(ours.shape)}; got {tuple(yours.shape)}.")
        if torch.allclose(yours, ours, atol=1e-6):
            continue
        t = uncertainty.mls_terms(mu1, var1, mu2, var2)
        if torch.allclose(yours, -ours, atol=1e-6):
            raise AssertionError("sign error: you return minus the MLS (a loss, not a score). "
                                 "Higher must mean more likely the same.")
        if torch.allclose(yours, t["attention"] + t["constant"], atol=1e-6) or \
                torch.allclose(yours, t["attention"], atol=1e-6):
            raise AssertionError("the log term is missing: add -1/2 sum log(var1 + var2) (the penalty term).")
        if torch.allclose(yours, t["attention"] + t["penalty"], atol=1e-6):
            raise AssertionError(f"the constant -(D/2) log(2 pi) = {-0.5 * d * math.log(2 * math.pi):.4f} is "
                                 "missing (it changes no ranking, but the MLS is a log-likelihood).")
        if torch.allclose(yours, 2 * (t["attention"] + t["penalty"]), atol=1e-6):
            raise AssertionError("this is the official PFE code's form (no 1/2, no constant): same ranking, "
                                 "but not the MLS itself. Add the 1/2 and the constant.")
        if torch.allclose(yours, -0.5 * (((mu1 - mu2) ** 2 / var1 + (mu1 - mu2) ** 2 / var2)
                                          + torch.log(var1 + var2)).sum(1) - 0.5 * d * math.log(2 * math.pi),
                          atol=1e-6):
            raise AssertionError("the squared difference is divided by each variance separately; divide it by "
                                 "their SUM var1 + var2 (the variance of z1 - z2).")
        sd = uncertainty.mutual_likelihood_score(mu1, var1.sqrt(), mu2, var2.sqrt())
        if torch.allclose(yours, sd, atol=1e-6):
            raise AssertionError("your function treats its inputs as variances squared: var1 and var2 ARE "
                                 "variances already; do not square them.")
        raise AssertionError(f"your scores differ from the MLS by up to {(yours - ours).abs().max().item():.3g}.")
    print("MLS: correct on 2 random problems.")


def check_fusion(fn) -> None:
    """Check ``fn(mu, var) -> (mu_f, var_f)``: fuse K observations (K, D) of one class into one Gaussian (D,)
    by precision weighting."""
    for mu, var, _, _ in _problems(n=5):
        m_ours, v_ours = uncertainty.fuse(mu, var)
        out = fn(mu, var)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise AssertionError("return a pair (mu_f, var_f).")
        m, v = (torch.as_tensor(t).double() for t in out)
        if m.shape != m_ours.shape or v.shape != v_ours.shape:
            raise AssertionError(f"expected shapes {tuple(m_ours.shape)} and {tuple(v_ours.shape)}, "
                                 f"got {tuple(m.shape)} and {tuple(v.shape)}.")
        if torch.allclose(m, m_ours, atol=1e-6) and torch.allclose(v, v_ours, atol=1e-6):
            continue
        if torch.allclose(m, mu.mean(0), atol=1e-6):
            raise AssertionError("the fused mean is the plain average: weight each observation by its "
                                 "precision 1/var.")
        if torch.allclose(m, (var * mu).sum(0) / var.sum(0), atol=1e-6):
            raise AssertionError("you weight by the variance; weight by the precision 1/var (confident "
                                 "observations must count more).")
        if torch.allclose(m, m_ours, atol=1e-6) and torch.allclose(v, var.mean(0), atol=1e-6):
            raise AssertionError("the fused variance is not the average variance: 1/var_f = sum_k 1/var_k "
                                 "(more observations, less uncertainty).")
        if torch.allclose(m, m_ours, atol=1e-6):
            raise AssertionError("the mean is right but the variance is not: 1/var_f = sum_k 1/var_k.")
        raise AssertionError(f"your fused mean differs from ours by up to {(m - m_ours).abs().max().item():.3g}.")
    print("Fusion: correct on 2 random problems.")


def check_kl(fn) -> None:
    """Check ``fn(mu, log_var) -> (N,)``: KL(N(mu, exp(log_var)) || N(0, I)) per sample (DUL's regulariser)."""
    for mu, var, _, _ in _problems():
        log_var = var.log()
        ours = uncertainty.dul_kl(mu, log_var)
        yours = torch.as_tensor(fn(mu, log_var)).double()
        if yours.shape != ours.shape:
            raise AssertionError(f"expected one value per sample, shape {tuple(ours.shape)}; got {tuple(yours.shape)}.")
        if torch.allclose(yours, ours, atol=1e-6):
            continue
        if torch.allclose(yours, 2 * ours, atol=1e-6):
            raise AssertionError("the factor 1/2 is missing.")
        if torch.allclose(yours, ours + 0.5 * mu.shape[1], atol=1e-6):
            raise AssertionError("the -1 inside the sum is missing (the KL of N(0, I) to itself must be 0).")
        if torch.allclose(yours, 0.5 * (mu ** 2 + log_var - log_var.exp() - 1).sum(1), atol=1e-6):
            raise AssertionError("var and log var are swapped: it is var - log var (exp(log_var) - log_var).")
        raise AssertionError(f"your KL differs from ours by up to {(yours - ours).abs().max().item():.3g}.")
    print("KL to N(0, I): correct on 2 random problems.")
