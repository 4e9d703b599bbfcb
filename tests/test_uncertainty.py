"""dmlcourse.uncertainty against float64 formulas, numerical integration, SciPy and
torch.distributions."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from dmlcourse import uncertainty as U


def _gaussians(n=6, d=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mu1, mu2 = (
        torch.randn(n, d, generator=g, dtype=dtype),
        torch.randn(n, d, generator=g, dtype=dtype),
    )
    var1 = torch.rand(n, d, generator=g, dtype=dtype) * 2 + 0.05
    var2 = torch.rand(n, d, generator=g, dtype=dtype) * 2 + 0.05
    return mu1, var1, mu2, var2


def _direct(mu1, var1, mu2, var2):
    """Eq. 3 of the lecture, one pair and one dimension at a time, in Python floats."""
    out = []
    for a in range(mu1.shape[0]):
        s = 0.0
        for l in range(mu1.shape[1]):
            v = float(var1[a, l]) + float(var2[a, l])
            s += (float(mu1[a, l]) - float(mu2[a, l])) ** 2 / v + math.log(v)
        out.append(-0.5 * s - 0.5 * mu1.shape[1] * math.log(2 * math.pi))
    return torch.tensor(out, dtype=torch.float64)


def test_mls_matches_the_direct_formula():
    mu1, var1, mu2, var2 = _gaussians()
    assert torch.allclose(
        U.mutual_likelihood_score(mu1, var1, mu2, var2), _direct(mu1, var1, mu2, var2), atol=1e-10
    )
    got32 = U.mutual_likelihood_score(mu1.float(), var1.float(), mu2.float(), var2.float())
    assert got32.dtype == torch.float32 and torch.allclose(
        got32.double(), _direct(mu1, var1, mu2, var2), atol=1e-4
    )
    # log-variances give the same scores
    assert torch.allclose(
        U.mutual_likelihood_score(mu1, var1.log(), mu2, var2.log(), log_var=True),
        _direct(mu1, var1, mu2, var2),
        atol=1e-10,
    )
    terms = U.mls_terms(mu1, var1, mu2, var2)
    assert torch.allclose(terms["attention"] + terms["penalty"] + terms["constant"], terms["total"])


@pytest.mark.parametrize(
    "m1, v1, m2, v2", [(0.0, 1.0, 0.5, 2.0), (-1.0, 0.1, 2.0, 0.3), (3.0, 5.0, 3.0, 0.01)]
)
def test_mls_is_the_log_of_the_gaussian_integral_1d(m1, v1, m2, v2):
    # p(z1 = z2) = integral of N(z; m1, v1) N(z; m2, v2) dz, by numerical quadrature
    f = lambda z: stats.norm.pdf(z, m1, math.sqrt(v1)) * stats.norm.pdf(z, m2, math.sqrt(v2))
    val, _ = integrate.quad(f, -np.inf, np.inf, points=None, epsabs=1e-14, limit=200)
    t = lambda x: torch.tensor([[x]], dtype=torch.float64)
    assert U.mutual_likelihood_score(t(m1), t(v1), t(m2), t(v2)).item() == pytest.approx(
        math.log(val), abs=1e-7
    )


def test_mls_is_the_log_of_the_gaussian_integral_monte_carlo_3d():
    # E_{z ~ N(mu1, var1)} [ N(z; mu2, var2) ] = p(z1 = z2): Monte Carlo in 3 dimensions
    mu1, var1 = torch.tensor([0.2, -0.5, 1.0]), torch.tensor([0.5, 1.5, 0.8])
    mu2, var2 = torch.tensor([0.0, 0.4, 0.3]), torch.tensor([1.0, 0.6, 1.2])
    g = torch.Generator().manual_seed(0)
    z = mu1 + var1.sqrt() * torch.randn(400_000, 3, generator=g, dtype=torch.float64)
    dens = torch.distributions.Normal(mu2.double(), var2.double().sqrt()).log_prob(z).sum(1).exp()
    mc = math.log(dens.mean().item())
    stderr = dens.std().item() / math.sqrt(len(dens)) / dens.mean().item()
    got = U.mutual_likelihood_score(mu1[None], var1[None], mu2[None], var2[None]).item()
    assert abs(got - mc) < 4 * stderr + 1e-3


def test_mls_symmetry_and_invariance():
    mu1, var1, mu2, var2 = _gaussians(seed=1)
    s = U.mutual_likelihood_score(mu1, var1, mu2, var2)
    assert torch.allclose(s, U.mutual_likelihood_score(mu2, var2, mu1, var1))
    # a common shift of both means, or a permutation of the dimensions, changes nothing
    shift = torch.randn(1, mu1.shape[1], dtype=torch.float64)
    assert torch.allclose(s, U.mutual_likelihood_score(mu1 + shift, var1, mu2 + shift, var2))
    p = torch.randperm(mu1.shape[1])
    assert torch.allclose(
        s, U.mutual_likelihood_score(mu1[:, p], var1[:, p], mu2[:, p], var2[:, p])
    )
    # the official PFE form is an increasing affine map: same order
    official = U.pfe_official_score(mu1, var1, mu2, var2)
    assert torch.allclose(official, 2 * s + mu1.shape[1] * math.log(2 * math.pi))
    assert torch.equal(torch.argsort(official), torch.argsort(s))


def test_pairwise_and_broadcasting_agree():
    mu1, var1, mu2, var2 = _gaussians(n=7, seed=2)
    full = U.pairwise_mls(mu1, var1, mu2[:4], var2[:4], chunk=3)
    assert full.shape == (7, 4)
    for a in range(7):
        for b in range(4):
            ref = _direct(mu1[a : a + 1], var1[a : a + 1], mu2[b : b + 1], var2[b : b + 1])[0]
            assert full[a, b].item() == pytest.approx(ref.item(), abs=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mls_stable_for_tiny_and_huge_variances(dtype):
    mu1 = torch.tensor([[0.0, 1.0, -2.0]], dtype=dtype)
    mu2 = torch.tensor([[0.5, 1.0, 3.0]], dtype=dtype)
    for v in (1e-30, 1e-12, 1e12, 1e30, 3e38 if dtype == torch.float32 else 1e300):
        var = torch.full_like(mu1, v)
        s = U.mutual_likelihood_score(mu1, var, mu2, var)
        assert torch.isfinite(s).all(), (v, s)
        ref = _direct(mu1.double(), var.double(), mu2.double(), var.double())
        assert torch.allclose(s.double(), ref, rtol=1e-5), (v, s, ref)
    # log-variance input with extreme values, gradients included
    lv = torch.tensor([[-60.0, 0.0, 80.0]], dtype=dtype, requires_grad=True)
    s = U.mutual_likelihood_score(mu1, lv, mu2, lv, log_var=True)
    s.backward()
    assert torch.isfinite(s).all() and torch.isfinite(lv.grad).all()


def test_mls_gradcheck():
    mu1, var1, mu2, var2 = (t.requires_grad_(True) for t in _gaussians(n=3, d=4, seed=3))
    assert torch.autograd.gradcheck(
        lambda a, b, c, d: U.mutual_likelihood_score(a, b, c, d), (mu1, var1, mu2, var2)
    )


def test_bad_input_gives_clear_errors():
    mu1, var1, mu2, var2 = _gaussians()
    with pytest.raises(ValueError, match="var1 must hold variances > 0"):
        U.mutual_likelihood_score(mu1, var1 - 10, mu2, var2)
    with pytest.raises(ValueError, match="var2 must hold variances > 0"):
        U.mutual_likelihood_score(mu1, var1, mu2, torch.zeros_like(var2))
    with pytest.raises(ValueError, match="same shape"):
        U.mutual_likelihood_score(mu1, var1[:, :3], mu2, var2)
    with pytest.raises(ValueError, match="broadcastable"):
        U.mutual_likelihood_score(mu1, var1, mu2[:, :3], var2[:, :3])
    with pytest.raises(TypeError, match="mu1 must be a torch.Tensor"):
        U.mutual_likelihood_score(mu1.numpy(), var1, mu2, var2)
    with pytest.raises(ValueError, match="NaN"):
        U.mutual_likelihood_score(mu1 * float("nan"), var1, mu2, var2)
    with pytest.raises(ValueError, match="var must hold variances > 0"):
        U.fuse(mu1, -var1)
    with pytest.raises(ValueError, match="same class"):
        U.pfe_loss(mu1, var1.log(), torch.arange(len(mu1)))
    with pytest.raises(ValueError, match="kind='sharpen' is not allowed"):
        U.degrade(torch.zeros(2, 28, 28, dtype=torch.uint8), "sharpen", 0.5)
    with pytest.raises(ValueError, match="strength must be <= 1.0"):
        U.degrade(torch.zeros(2, 28, 28, dtype=torch.uint8), "blur", 1.5)


def test_pfe_loss_learns_the_true_noise_on_a_toy_problem():
    """Samples = class centre + noise of a known scale per sample; the head sees a feature from
    which that
    scale can be read. Trained with the PFE loss, its variance must rank samples by their true noise
    and
    be close to the true variance (the optimum of the loss for same-class pairs)."""
    g = torch.Generator().manual_seed(0)
    n_classes, per_class, dim = 20, 16, 8
    centres = torch.nn.functional.normalize(torch.randn(n_classes, dim, generator=g), dim=1) * 3
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    sigma = torch.exp(
        torch.rand(len(labels), generator=g) * 3 - 3.5
    )  # true noise scale in [0.03, 0.6]
    mu = centres[labels] + sigma[:, None] * torch.randn(len(labels), dim, generator=g)
    features = torch.cat([torch.log(sigma)[:, None], torch.randn(len(labels), 3, generator=g)], 1)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # 400 tiny steps: threads only add overhead (and suffer on a busy machine)
    try:
        _train_toy_head(mu, features, labels, sigma, g, dim)
    finally:
        torch.set_num_threads(threads)


def _train_toy_head(mu, features, labels, sigma, g, dim):
    head = U.UncertaintyHead(4, dim, hidden=32, log_var_init=0.0)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(400):
        perm = torch.randperm(len(labels), generator=g)[:160]
        loss = U.pfe_loss(mu[perm], head(features[perm]), labels[perm])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 1.0
    head.eval()
    with torch.no_grad():
        var = head(features).exp()
    rho = stats.spearmanr(U.harmonic_variance(var).numpy(), sigma.numpy()).statistic
    assert rho > 0.95
    ratio = (U.harmonic_variance(var) / sigma**2).log()
    assert ratio.abs().median().item() < math.log(2)  # within a factor 2 of the true variance


def test_pfe_module_keeps_the_mean_frozen():
    mean = torch.nn.Linear(6, 4)
    before = mean.weight.detach().clone()
    model = U.PFE(mean, U.UncertaintyHead(6, 4, hidden=8))
    x, y = torch.randn(16, 6), torch.arange(4).repeat(4)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = U.PFELoss()(model(x), y)["loss"]
    loss.backward()
    opt.step()
    assert torch.equal(before, mean.weight) and mean.weight.grad is None
    mu, log_var = model(x)
    assert torch.allclose(mu.norm(dim=1), torch.ones(16)) and log_var.shape == (16, 4)


def test_fusion_against_the_product_of_gaussians():
    # closed form in float64 vs the product of K densities integrated numerically (1-D)
    mus, vs = [0.3, -1.0, 2.0], [0.5, 2.0, 0.1]
    prod = lambda z: np.prod([stats.norm.pdf(z, m, math.sqrt(v)) for m, v in zip(mus, vs)])
    z0, _ = integrate.quad(prod, -20, 20, points=[0.0, 2.0], limit=200)
    z1, _ = integrate.quad(lambda z: z * prod(z), -20, 20, points=[0.0, 2.0], limit=200)
    z2, _ = integrate.quad(lambda z: z * z * prod(z), -20, 20, points=[0.0, 2.0], limit=200)
    mean, var = z1 / z0, z2 / z0 - (z1 / z0) ** 2
    mu_f, var_f = U.fuse(
        torch.tensor(mus, dtype=torch.float64)[:, None],
        torch.tensor(vs, dtype=torch.float64)[:, None],
    )
    assert mu_f.item() == pytest.approx(mean, abs=1e-8) and var_f.item() == pytest.approx(
        var, abs=1e-8
    )
    # batched over dimensions and groups, equal variances -> the plain average
    mu = torch.randn(5, 4, 3, dtype=torch.float64)
    m, v = U.fuse(mu, torch.full_like(mu, 2.0), dim=1)
    assert torch.allclose(m, mu.mean(1)) and torch.allclose(v, torch.full_like(v, 0.5))


def test_dul_kl_against_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, log_var = (
        torch.randn(10, 6, generator=g, dtype=torch.float64),
        torch.randn(10, 6, generator=g, dtype=torch.float64),
    )
    q = torch.distributions.Normal(mu, (0.5 * log_var).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(U.dul_kl(mu, log_var), torch.distributions.kl_divergence(q, p).sum(1))
    with pytest.raises(ValueError, match="must match"):
        U.dul_kl(mu, log_var[:, :3])


def test_reparameterisation_has_the_right_moments_and_gradients():
    mu = torch.tensor([[1.0, -2.0]], requires_grad=True)
    log_var = torch.tensor([[0.0, math.log(4.0)]], requires_grad=True)
    z = U.reparameterize(
        mu.expand(200_000, 2), log_var.expand(200_000, 2), torch.Generator().manual_seed(0)
    )
    assert torch.allclose(z.mean(0), mu[0].detach(), atol=0.02)
    assert torch.allclose(z.var(0), torch.tensor([1.0, 4.0]), rtol=0.02)
    z.sum().backward()
    assert mu.grad is not None and log_var.grad is not None


def test_dul_loss_trains_mean_and_variance():
    torch.manual_seed(0)
    from dmlcourse import heads

    net = U.DULNet(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 16)), 16, 8)
    loss_fn = U.DULLoss(heads.CosFaceHead(8, 3), kl_weight=0.1)
    out = loss_fn(net(torch.randn(12, 1, 28, 28)), torch.arange(3).repeat(4))
    out["loss"].backward()
    assert net.mu.weight.grad is not None and net.log_var[0].weight.grad is not None
    assert out["kl"] > 0 and math.isfinite(out["loss"].item())


def test_degradations():
    g = torch.Generator().manual_seed(0)
    img = (torch.rand(4, 28, 28, generator=g) * 255).to(torch.uint8)
    for kind in U.DEGRADATIONS:
        assert torch.equal(U.degrade(img, kind, 0.0), img)
        out = U.degrade(img, kind, 0.7, seed=1)
        assert out.dtype == torch.uint8 and out.shape == img.shape
        assert torch.equal(out, U.degrade(img, kind, 0.7, seed=1))  # seeded
        assert not torch.equal(out, img)
    x = img.float() / 255
    # blur keeps the mean in the interior and lowers the variance; contrast keeps the mean exactly
    assert U.degrade(x, "blur", 1.0).var() < x.var()
    c = U.degrade(x, "contrast", 1.0)
    assert torch.allclose(c.mean(dim=(1, 2)), x.mean(dim=(1, 2)), atol=1e-6)
    assert torch.allclose(c.std(dim=(1, 2)), 0.1 * x.std(dim=(1, 2)), rtol=1e-4)
    # occlusion: a grey square of the stated side
    occ = U.degrade(torch.zeros(3, 28, 28), "occlusion", 0.5)
    assert ((occ == 0.5).sum(dim=(1, 2)) == round(0.7 * 28 * 0.5) ** 2).all()
    # noise: standard deviation 0.8 x strength before clipping
    noisy = U.degrade(torch.full((50, 28, 28), 0.5), "noise", 0.1)
    assert (noisy - 0.5).std().item() == pytest.approx(0.08, rel=0.05)
    mixed, kinds, levels = U.degrade_mixed(img, seed=0)
    assert mixed.shape == img.shape and len(kinds) == 4 and (levels <= 1).all()


def test_mls_explorer_updates():
    box = U.mls_explorer()
    before = [list(box.figure.data[k].y) for k in range(len(box.figure.data))]
    box.var2.value = 4.0
    box.mu2.value = 2.5
    after = [list(box.figure.data[k].y) for k in range(len(box.figure.data))]
    assert before != after
    t = U.mls_terms(
        torch.tensor([[box.mu1.value]]),
        torch.tensor([[box.var1.value]]),
        torch.tensor([[box.mu2.value]]),
        torch.tensor([[box.var2.value]]),
    )
    bars = box.figure.data[-1]
    assert bars.y[-1] == pytest.approx(t["total"].item(), abs=1e-5)


def test_harmonic_variance_value_and_bad_input():
    var = torch.tensor([[1.0, 4.0], [2.0, 2.0]], dtype=torch.float64)
    assert torch.allclose(
        U.harmonic_variance(var), torch.tensor([2 / (1 + 0.25), 2.0], dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="var must hold variances > 0"):
        U.harmonic_variance(torch.tensor([[1.0, 0.0]]))


def test_mls_explorer_defaults_survive_the_browser_and_bars_fit():
    from tests.browser.nouislider import snapped

    box = U.mls_explorer()
    assert snapped(box) == {}
    assert (
        "penalty 0.000" in box.figure.layout.title.text
        or "penalty -0.000" in box.figure.layout.title.text
    )
    box.var1.value, box.var2.value, box.mu2.value = 2.0**-6, 2.0**-6, 4.0
    mls = box.figure.data[3].y[-1]
    assert mls < -100 and box.figure.layout.yaxis2.range[0] < mls  # the bar is not cut at -8
