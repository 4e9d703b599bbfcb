"""Exercises of 03_autoencoders.

The references here are independent of ``dmlcourse.autoencoders`` (which the notebook teaches and the
learner must not call): SciPy's ``subspace_angles`` for the principal angles, the layers run one after
the other on the basis vectors for the collapsed map, NumPy's eigenvalues (float64) for the
reconstruction error of PCA, and ``torch.distributions`` (an affine transform of the noise, the closed-form
``kl_divergence`` of two Normals) for the VAE objective and its gradient.
"""

# Every check here has the layout of the checks of the other lectures, on purpose, so that one
# reads like the next: an @exercise with its hints, a few random problems against an independent
# reference, the known mistakes named (_common.name_the_mistake), then the general message. The
# shapes repeat (a duplicate finder lists them); the code they share lives in _common.

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.linalg import subspace_angles

from . import exercise
from ._common import as_number, close, name_the_mistake, same


def _close(a, b, tol):
    return close(a, b, tol, relative=False)


def reference_principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The principal angles in degrees, largest first (SciPy)."""
    return torch.as_tensor(np.degrees(subspace_angles(a.double().numpy(), b.double().numpy())))


def reference_collapse(weights: list[torch.Tensor]) -> torch.Tensor:
    """The matrix M with x -> M x equal to the layers applied one after the other (x -> W_1 x -> W_2 W_1 x ...):
    run the layers on the basis vectors e_1, ..., e_d and read off the images."""
    basis = torch.eye(weights[0].shape[1], dtype=torch.float64)
    rows = basis
    for w in weights:
        rows = torch.nn.functional.linear(rows, w.double())   # each row e_k goes through the layer
    return rows.T


@exercise("03.1", "Principal angles", writes="my_angles",
          hints=["Make orthonormal bases of both column spaces first: torch.linalg.qr(A) gives Q with orthonormal "
                 "columns spanning the same space as A.",
                 "The singular values of Qa^T Qb are the COSINES of the principal angles; there are min(k, l) of them.",
                 "torch.rad2deg(torch.arccos(torch.linalg.svdvals(qa.T @ qb).clamp(-1, 1)))"],
          mistakes=["radians", "the cosines", "A and B not orthonormalised", "wrong number of angles"],
          implemented_by=["dmlcourse.autoencoders.principal_angles"])
def check_principal_angles(fn) -> str:
    """``fn(A, B) -> angles``: the principal angles, in degrees, between the column
    spaces of A (d, k) and B (d, l) (any order; min(k, l) of them)."""
    g = torch.Generator().manual_seed(0)
    for d, k, l in ((8, 3, 3), (12, 4, 2), (10, 2, 5)):
        a = 3 * torch.randn(d, k, generator=g, dtype=torch.float64)
        b = torch.randn(d, l, generator=g, dtype=torch.float64) * torch.arange(1, l + 1, dtype=torch.float64)
        ours = reference_principal_angles(a, b)
        yours = torch.as_tensor(fn(a.clone(), b.clone()), dtype=torch.float64).flatten()
        yours_sorted = torch.sort(yours, descending=True).values
        if _close(yours_sorted, ours, 1e-3):
            continue
        if _close(torch.sort(yours * 180 / math.pi, descending=True).values, ours, 1e-3):
            raise AssertionError("your angles are in RADIANS; the exercise asks for degrees (torch.rad2deg).")
        cosines = torch.sort(torch.cos(torch.deg2rad(ours))).values
        if _close(torch.sort(yours).values, cosines, 1e-6):
            raise AssertionError("you returned the cosines (the singular values); take arccos to get the angles.")
        raw = torch.linalg.svdvals(a.T @ b)
        if yours.numel() == raw.numel() and (
                _close(torch.sort(yours).values, torch.sort(raw).values, 1e-6)
                or _close(torch.sort(yours).values,
                          torch.sort(torch.rad2deg(torch.arccos(raw.clamp(-1, 1)))).values, 1e-6)):
            raise AssertionError("you used A and B directly: first make ORTHONORMAL bases of both column spaces "
                                 "(torch.linalg.qr or svd), otherwise the singular values are not cosines.")
        if yours.numel() != ours.numel():
            raise AssertionError(f"A is {d}x{k} and B is {d}x{l}: there are min(k, l) = {ours.numel()} principal "
                                 f"angles, you returned {yours.numel()}.")
        raise AssertionError(f"A {d}x{k}, B {d}x{l}: expected {ours.numpy().round(3)} degrees, "
                             f"got {yours_sorted.numpy().round(3)}.")
    return "the same as scipy.linalg.subspace_angles on 3 random pairs of subspaces."


@exercise("03.2", "Collapse the layers", writes="my_collapse",
          hints=["nn.Linear computes x -> W x with W of shape (out, in). Two layers give x -> W_2 (W_1 x).",
                 "Matrix products are associative: W_2 (W_1 x) = (W_2 W_1) x. The first layer ends up on the RIGHT.",
                 "m = weights[0]; then for each next w: m = w @ m"],
          mistakes=["the layers multiplied in the wrong order", "the transpose"],
          implemented_by=["dmlcourse.autoencoders._product"])
def check_collapse(fn) -> str:
    """``fn([W_1, ..., W_L]) -> M``: the single matrix that the stacked linear layers
    (``nn.Linear`` weights, W_l of shape (out, in), the first layer acting first) compute, x -> M x."""
    g = torch.Generator().manual_seed(0)
    for dims in ((6, 6, 6), (5, 5, 5, 5), (9, 7, 4)):
        ws = [torch.randn(b, a, generator=g, dtype=torch.float64) for a, b in zip(dims[:-1], dims[1:])]
        ours = reference_collapse(ws)
        try:
            yours = torch.as_tensor(fn([w.clone() for w in ws]), dtype=torch.float64)
        except NotImplementedError:   # the stub (a subclass of RuntimeError): not attempted
            raise
        except RuntimeError as exc:
            raise AssertionError("the shapes do not fit, so the layers multiply in the wrong order: the first layer "
                                 "acts first, so it is on the RIGHT, M = W_L ... W_2 W_1.") from exc
        if _close(yours, ours, 1e-8):
            continue
        rev = ws[0]
        for w in ws[1:]:
            rev = rev @ w
        if _close(yours, rev, 1e-8):
            raise AssertionError("the layers multiply in the wrong order: the first layer acts first, so it is on "
                                 "the RIGHT, M = W_L ... W_2 W_1.")
        if _close(yours, ours.T, 1e-8):
            raise AssertionError("you returned the transpose: nn.Linear stores W as (out, in) and computes W x, so "
                                 "M must have shape (out of the last layer, in of the first).")
        raise AssertionError(f"layers {dims}: your matrix differs from W_L ... W_1 by "
                             f"{(yours - ours).abs().max().item() if yours.shape == ours.shape else 'its shape'}.")
    return "the same as running the layers one after the other, on 3 random stacks."


def _eigenvalues(xc: torch.Tensor, ddof: int = 0) -> np.ndarray:
    """Eigenvalues of the covariance of the (centred) rows of xc, largest first (NumPy, float64)."""
    x = np.asarray(xc, dtype=np.float64)
    return np.linalg.eigvalsh(x.T @ x / (len(x) - ddof))[::-1]


def reference_pca_floor(xc: torch.Tensor, p: int) -> float:
    """The smallest mean squared reconstruction error of any rank-p linear map on centred xc (Eckart-Young):
    the sum of the eigenvalues of xc^T xc / N that a rank-p map must drop."""
    return float(_eigenvalues(xc)[p:].sum())


def _floor_problems():
    """Fresh centred data (float64) with unequal variances along random orthogonal axes, and a rank p."""
    g = torch.Generator().manual_seed(0)
    for n, d, p in ((200, 8, 3), (300, 12, 5), (150, 6, 1)):
        axes, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        spreads = torch.linspace(3.0, 0.5, d, dtype=torch.float64)       # no two variances alike, none tiny
        x = (torch.randn(n, d, generator=g, dtype=torch.float64) * spreads) @ axes.T + 2.0
        yield x - x.mean(0), p


def _sample_floor() -> dict:
    # a valid call of the check without its function (the probe of constant answers puts one in)
    xc, p = next(_floor_problems())
    floor = reference_pca_floor(xc, p)
    return dict(prediction=0.5, err_ae=1.001 * floor, err_pca=floor, xc=xc, p=p)


def _floor_mistakes(xc: torch.Tensor, p: int) -> dict:
    """What the known mistakes compute on xc, each with its message."""
    evals = _eigenvalues(xc)          # largest first
    ours = float(evals[p:].sum())
    return {
        f"that is the variance the top {p} directions KEEP; the error is what they drop (the other "
        "eigenvalues)": float(evals[:p].sum()),
        f"you added the {p} SMALLEST eigenvalues: torch.linalg.eigvalsh returns them in ascending order, and the "
        f"error is the sum of all of them except the {p} largest": float(evals[-p:].sum()),
        f"you dropped the {p} smallest eigenvalues instead of the {p} largest (torch.linalg.eigvalsh returns them "
        "in ascending order)": float(evals[:-p].sum()),
        "that is the total variance (all eigenvalues): the rank-p map keeps the top p, and loses only the rest":
            float(evals.sum()),
        "you divided by N - 1 (torch.cov): reconstruction_error is a mean over the N images, so use "
        "xc.T @ xc / N": float(_eigenvalues(xc, ddof=1)[p:].sum()),
        "that is a SUM over the N images; reconstruction_error is a mean: divide by N": ours * len(xc),
        "those are singular values of xc, not variances: square them and divide by N":
            float(np.sqrt(np.clip(evals[p:] * len(xc), 0, None)).sum()),
    }


@exercise("03.3", "Predict, then explain: what must a 10-D linear code lose?", writes="my_prediction and my_floor",
          hints=["A prediction is a guess: any fraction from 0 to 1 is accepted. Write it BEFORE computing anything.",
                 "A rank-p map keeps at most p directions of the data. The mean squared error it leaves is the "
                 "variance of the centred rows along the directions it does not keep, so the best map keeps the p "
                 "directions of largest variance. Which matrix has those variances as its eigenvalues?",
                 "Form the covariance of the centred rows with N in the denominator (reconstruction_error is a mean "
                 "over the N images, not an unbiased estimate), take its d eigenvalues, and add up all of them except "
                 "the p largest. Mind the order in which your eigenvalue routine returns them."],
          mistakes=["the variance the top p directions keep", "the p smallest eigenvalues (ascending order)",
                    "the p smallest dropped instead of the p largest", "the total variance", "N - 1 instead of N",
                    "a sum over the images instead of the mean", "singular values instead of variances"],
          implemented_by=["dmlcourse.autoencoders.pca_reconstruction_error"],
          sample=_sample_floor)
def check_linear_floor(floor, prediction, err_ae, err_pca, xc, p) -> str:
    """``floor(xc, p)``: the smallest mean squared reconstruction error a rank-p linear map can reach on the
    centred rows of xc; ``prediction``: the guessed fraction of the variance of xc that the linear autoencoder
    loses (err_ae over the total variance)."""
    prediction = as_number(prediction, "my_prediction", "your guess of the fraction of the variance lost")
    if not 0 <= prediction <= 1:
        raise AssertionError(f"my_prediction = {prediction}: a fraction of the variance is between 0 (nothing "
                             "lost) and 1 (everything lost).")
    if not callable(floor):
        raise AssertionError(f"my_floor is a {type(floor).__name__}; write it as a function, my_floor(xc, p), that "
                             "returns the number for any centred xc and rank p.")
    for xc_k, p_k in _floor_problems():
        where = f"on random centred data (N = {len(xc_k)} rows, d = {xc_k.shape[1]}, p = {p_k})"
        yours = as_number(floor(xc_k.clone(), p_k), "my_floor(xc, p)", "a mean squared error, e.g. with .item()")
        ours = reference_pca_floor(xc_k, p_k)
        if abs(yours - ours) > 1e-6 * ours:
            name_the_mistake(yours, {f"{where} my_floor gives {yours:.4f}: {m}.": v
                                     for m, v in _floor_mistakes(xc_k, p_k).items()},
                             matches=lambda a, b: abs(a - b) <= 1e-6 * abs(b))
            raise AssertionError(f"{where} the smallest error of a rank-{p_k} linear map is {ours:.4f}, my_floor "
                                 f"gives {yours:.4f}: add up the eigenvalues of xc.T @ xc / N beyond the largest p.")
    evals = _eigenvalues(xc)
    ours, total = float(evals[p:].sum()), float(evals.sum())
    yours = as_number(floor(xc.clone(), p), "my_floor(xc, p)", "a mean squared error, e.g. with .item()")
    if abs(yours - ours) > 1e-3 * ours:
        raise AssertionError(f"right on the random data, but on the notebook's xc my_floor gives {yours:.4f} and the "
                             f"float64 floor is {ours:.4f}: xc is float32, so compute in float64 (xc.double()).")
    lost = err_ae / total
    return (f"on xc the total variance is {total:.4f}; the linear AE loses err_ae = {err_ae:.4f}, a fraction "
            f"{lost:.3f} of it (your guess {prediction:.3f}, off by {abs(prediction - lost):.3f}). Your floor is "
            f"{ours:.4f} (err_ae is {err_ae / ours - 1:+.1e} above it, PCA {err_pca / ours - 1:+.1e}). Whatever its "
            f"layers, the linear AE is one rank-{p} map, and no rank-{p} map loses less than the variance outside "
            f"the top {p} directions (Eckart-Young). PCA sits on that floor, so the autoencoder can at best tie; the "
            "floor itself depends only on the eigenvalues of the data, not on the network.")


# --------------------------------------------------------------------------- 03.4: the VAE objective


def reference_vae_loss(x, mu, log_var, eps, decoder, beta) -> torch.Tensor:
    """mean_i ( ||x_i - D(f_i)||^2 + beta KL(N(mu_i, diag sigma_i^2) || N(0, I)) ) with f = mu + sigma eps, written
    with torch.distributions: the sample is the affine map of the given noise onto q, the KL its closed form."""
    from torch.distributions import Normal, kl_divergence
    from torch.distributions.transforms import AffineTransform

    q = Normal(mu, torch.sqrt(torch.exp(log_var)))
    f = AffineTransform(loc=q.loc, scale=q.scale)(eps)
    rec = torch.nn.functional.mse_loss(decoder(f), x, reduction="none").sum(-1)
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    return (rec + beta * kl).mean()


def _vae_variant(x, mu, log_var, eps, decoder, beta, *, std="exp_half", kl_var="var", half=True, reduce="mean",
                 use_eps=True, use_beta=True, log_sign=-1.0, kl_uses_std=False):
    """A known wrong version of the objective (the defaults give the right one), for naming mistakes."""
    s = {"exp_half": torch.exp(0.5 * log_var), "exp": torch.exp(log_var)}[std]
    var = s**2 if kl_uses_std else torch.exp(log_var)
    log_v = torch.log(var)
    f = mu + s * eps if use_eps else mu
    err = (x - decoder(f)) ** 2
    kl_terms = mu**2 + (var if kl_var == "var" else var.sqrt()) + log_sign * log_v - 1
    kl_terms = (0.5 if half else 1.0) * kl_terms
    b = beta if use_beta else 1.0
    if reduce == "mean_all":
        return err.mean() + b * kl_terms.mean()
    per_image = err.sum(1) + b * kl_terms.sum(1)
    return per_image.sum() if reduce == "sum" else per_image.mean()


_VAE_MISTAKES = {
    "log_var is the log of the VARIANCE: sigma = exp(log_var / 2), not exp(log_var)":
        [dict(std="exp"), dict(std="exp", kl_uses_std=True)],
    "your KL term is twice the right one: KL(N(mu, sigma^2) || N(0, 1)) = 1/2 (mu^2 + sigma^2 - log sigma^2 - 1) "
    "per dimension; the 1/2 is missing": [dict(half=False)],
    "that is the SUM over the batch; the objective is the MEAN over the images (the squared error and the KL are "
    "summed within each image, then averaged over the batch)": [dict(reduce="sum")],
    "you averaged over every entry (as F.mse_loss does by default): sum the squared error over the d pixels and the "
    "KL over the p code dimensions of each image, and average only over the batch": [dict(reduce="mean_all")],
    "the KL has sigma^2 = exp(log_var) in it, where you put sigma": [dict(kl_var="std")],
    "your loss does not use eps: the code fed to the decoder must be the SAMPLE f = mu + sigma * eps, not the mean "
    "mu (then sigma gets no gradient from the reconstruction)": [dict(use_eps=False)],
    "beta multiplies the KL term; your loss ignores it": [dict(use_beta=False)],
    "the sign of log sigma^2 in the KL: it is mu^2 + sigma^2 - log sigma^2 - 1": [dict(log_sign=1.0)],
}


def _vae_problems():
    for seed, (n, d, p, beta) in enumerate(((6, 5, 3, 2.0), (9, 7, 2, 0.5), (4, 6, 4, 1.0))):
        g = torch.Generator().manual_seed(seed)
        torch_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        decoder = torch.nn.Sequential(torch.nn.Linear(p, 8), torch.nn.Tanh(), torch.nn.Linear(8, d)).double()
        torch.random.set_rng_state(torch_state)
        x = torch.rand(n, d, generator=g, dtype=torch.float64)
        mu = torch.randn(n, p, generator=g, dtype=torch.float64)
        log_var = 1.5 * torch.randn(n, p, generator=g, dtype=torch.float64)   # negative and positive: sigma < 1 and > 1
        eps = torch.randn(n, p, generator=g, dtype=torch.float64)
        yield (n, d, p, beta), x, mu, log_var, eps, decoder


def _learner_loss(fn, x, mu, log_var, eps, decoder, beta):
    """The learner's loss on fresh leaf copies of mu and log_var (so their gradients can be read)."""
    mu_l, lv_l = mu.clone().requires_grad_(True), log_var.clone().requires_grad_(True)
    out = fn(x.clone(), mu_l, lv_l, eps.clone(), decoder, beta)
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"my_vae_loss returned {type(out).__name__}; return the loss as a torch tensor (no "
                             ".item()), so that the gradient can flow back to mu and log_var.")
    if out.numel() != 1:
        if out.shape == (len(x),):
            raise AssertionError("you returned one loss per image; return their MEAN over the batch (one number).")
        raise AssertionError(f"my_vae_loss returned a tensor of shape {tuple(out.shape)}; return one number, the "
                             "mean over the batch of (squared error + beta * KL).")
    return out.reshape(()), mu_l, lv_l


@exercise("03.4", "The VAE objective, reparameterised", writes="my_vae_loss",
          hints=["Two steps. First the code: the reparameterisation turns the given noise eps into a sample of "
                 "N(mu, sigma^2), f = mu + sigma * eps. Then the loss of each image: the squared error between x and "
                 "decoder(f), plus beta times the KL of N(mu, sigma^2) from N(0, I); average it over the batch.",
                 "log_var is log sigma^2, so sigma = exp(log_var / 2) and sigma^2 = exp(log_var). Per image, sum the "
                 "squared error over the d pixels and the KL over the p code dimensions; average only over the "
                 "batch.",
                 "Per code dimension the KL to N(0, 1) is (mu^2 + sigma^2 - log sigma^2 - 1) / 2; log sigma^2 is "
                 "log_var itself. Keep every step a torch operation on mu and log_var (no .item(), .detach() or "
                 "new random numbers), so that loss.backward() reaches them."],
          mistakes=["log_var used as the log of sigma", "the KL without its 1/2", "a sum over the batch",
                    "a mean over every entry", "sigma instead of sigma^2 in the KL", "eps not used (the code is mu)",
                    "new noise drawn instead of eps", "beta ignored", "the sign of log sigma^2",
                    "the sample detached (no gradient through f)"],
          implemented_by=["dmlcourse.autoencoders.reparameterize", "dmlcourse.autoencoders.gaussian_kl",
                          "dmlcourse.autoencoders.vae_objective"])
def check_vae_loss(fn) -> str:
    """``fn(x, mu, log_var, eps, decoder, beta) -> loss``: the mean over the batch of ||x_i - decoder(f_i)||^2 +
    beta KL(N(mu_i, diag exp(log_var_i)) || N(0, I)), with the code f = mu + exp(log_var / 2) * eps."""
    for (n, d, p, beta), x, mu, log_var, eps, decoder in _vae_problems():
        where = f"(a batch of {n} images of d = {d} pixels, codes of p = {p}, beta = {beta})"
        mu_r, lv_r = mu.clone().requires_grad_(True), log_var.clone().requires_grad_(True)
        loss = reference_vae_loss(x, mu_r, lv_r, eps, decoder, beta)
        g_mu, g_lv = torch.autograd.grad(loss, [mu_r, lv_r])
        ours = float(loss.detach())
        out, mu_l, lv_l = _learner_loss(fn, x, mu, log_var, eps, decoder, beta)
        yours = float(out.detach())
        if not math.isfinite(yours):
            raise AssertionError(f"your loss is {yours} {where}: log_var is negative wherever sigma < 1, so it is not "
                                 "a variance (no square root or log of it); sigma = exp(log_var / 2).")
        if not same(yours, ours, 1e-8):
            again = float(_learner_loss(fn, x, mu, log_var, eps, decoder, beta)[0].detach())
            if not same(again, yours, 1e-12):
                raise AssertionError("your loss changes from one call to the next with the same inputs: use the eps "
                                     "you are given as the noise; do not draw new random numbers.")
            with torch.no_grad():
                variants = {msg: [float(_vae_variant(x, mu, log_var, eps, decoder, beta, **kw)) for kw in kws]
                            for msg, kws in _VAE_MISTAKES.items()}
            for msg, values in variants.items():
                if any(same(yours, v, 1e-8) for v in values):
                    raise AssertionError(f"{yours:.6f} instead of {ours:.6f} {where}: {msg}.")
            raise AssertionError(f"{where} the objective is {ours:.6f}, yours is {yours:.6f}: mean over the "
                                 "images of (squared error of decoder(mu + sigma * eps) + beta * KL).")
        if not out.requires_grad:
            raise AssertionError("your loss has the right value but no gradient: it was computed outside autograd "
                                 "(torch.no_grad, .item(), NumPy). The reparameterisation exists so that the gradient "
                                 "reaches mu and log_var.")
        y_mu, y_lv = torch.autograd.grad(out, [mu_l, lv_l], allow_unused=True)
        for name, y, o in (("mu", y_mu, g_mu), ("log_var", y_lv, g_lv)):
            if y is None or not close(y, o, 1e-7):
                raise AssertionError(f"your loss has the right value, but its gradient with respect to {name} is "
                                     f"wrong {where}: the sample f must stay a function of mu and log_var (no "
                                     ".detach() or .data on it, on sigma or on eps's product), so that the "
                                     "reconstruction error sends its gradient through f = mu + sigma * eps.")
    return ("value and gradients with respect to mu and log_var equal torch.distributions' (an affine map of the "
            "noise and the closed-form KL of two Normals) on 3 random batches: the noise eps is an input, and the "
            "gradient flows through the sample.")
