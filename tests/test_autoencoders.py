"""Autoencoders, the linear AE = PCA claim, principal angles (vs SciPy), PCA (vs scikit-learn),
lifting."""

import numpy as np
import pytest
import torch

from dmlcourse import autoencoders as ae


def test_autoencoder_shapes_mlp_and_conv():
    x = torch.rand(6, 1, 28, 28)
    for kind in ("mlp", "conv"):
        m = ae.Autoencoder(code_dim=5, kind=kind)
        assert m(x).shape == (6, 5)
        assert m.reconstruct(x).shape == (6, 784)
    over = ae.Autoencoder(code_dim=1000, hidden=())
    assert over(x).shape == (6, 1000)


def test_objective_matches_formula():
    torch.manual_seed(0)
    m = ae.Autoencoder(code_dim=3, hidden=(7,), in_features=10)
    x = torch.randn(8, 10, dtype=torch.float32)
    code = m.encode(x)
    x_hat = m.decode(code)
    got = ae.autoencoder_objective(x, x_hat, code, m, weight_decay=0.1, code_penalty=0.3)
    x_hat, code = x_hat.detach(), code.detach()
    rec = sum(float(((x[i] - x_hat[i]) ** 2).sum()) for i in range(8)) / 8
    wd = sum(
        float((layer.weight.detach() ** 2).sum())
        for layer in [*m.encoder, *m.decoder]
        if hasattr(layer, "weight")
    )
    cp = sum(float((code[i] ** 2).sum()) for i in range(8)) / 8
    assert abs(got.item() - (rec + 0.1 * wd + 0.3 * cp)) < 1e-4 * (rec + wd)


def test_objective_bad_inputs():
    x = torch.randn(4, 10)
    with pytest.raises(ValueError, match="must match"):
        ae.autoencoder_objective(x, torch.randn(4, 9), torch.randn(4, 2))
    with pytest.raises(ValueError, match="weight_decay"):
        ae.autoencoder_objective(x, x, torch.randn(4, 2), weight_decay=-1.0)
    with pytest.raises(ValueError, match="needs the model"):
        ae.autoencoder_objective(x, x, torch.randn(4, 2), weight_decay=1.0)
    with pytest.raises(ValueError, match="kind"):
        ae.Autoencoder(kind="rnn")
    with pytest.raises(ValueError, match="code_dim"):
        ae.Autoencoder(code_dim=0)
    with pytest.raises(TypeError, match="encode and decode"):
        ae.train_autoencoder(torch.nn.Linear(3, 3), torch.randn(4, 3))


def test_add_noise_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(20000, 5)
    n = ae.add_noise(x, 0.5, generator=g)
    assert abs(n.std().item() - 0.5) < 0.01 and abs(n.mean().item()) < 0.01
    assert torch.equal(ae.add_noise(x, 0.0), x)


def test_principal_angles_match_scipy():
    from scipy.linalg import subspace_angles

    g = torch.Generator().manual_seed(0)
    for d, k, l in [(10, 3, 3), (20, 5, 2), (8, 2, 4), (50, 6, 6)]:
        a = torch.randn(d, k, generator=g, dtype=torch.float64)
        b = torch.randn(d, l, generator=g, dtype=torch.float64)
        ref = np.rad2deg(subspace_angles(a.numpy(), b.numpy()))
        assert np.allclose(ae.principal_angles(a, b).numpy(), ref, atol=1e-8)
    # nearly identical subspaces: the small angles must stay accurate (where arccos alone loses
    # them)
    a = torch.randn(30, 4, generator=g, dtype=torch.float64)
    b = a @ torch.randn(4, 4, generator=g, dtype=torch.float64) + 1e-9 * torch.randn(
        30, 4, generator=g, dtype=torch.float64
    )
    ref = np.rad2deg(subspace_angles(a.numpy(), b.numpy()))
    got = ae.principal_angles(a, b).numpy()
    assert np.allclose(got, ref, rtol=1e-3, atol=1e-12) and got.max() < 1e-5
    # a subspace with itself and with its orthogonal complement
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    assert torch.allclose(
        ae.principal_angles(q[:, :2], q[:, :2]), torch.zeros(2, dtype=torch.float64), atol=1e-6
    )
    assert torch.allclose(
        ae.principal_angles(q[:, :2], q[:, 2:4]), torch.full((2,), 90.0, dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="same R"):
        ae.principal_angles(torch.randn(5, 2), torch.randn(6, 2))


def test_pca_matches_sklearn():
    from sklearn.decomposition import PCA

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=g, dtype=torch.float64) @ torch.randn(
        12, 12, generator=g, dtype=torch.float64
    )
    mean, comps, var = ae.pca(x, 4)
    sk = PCA(4).fit(x.numpy())
    assert np.allclose(mean.numpy(), sk.mean_)
    assert np.allclose(var.numpy(), sk.explained_variance_)
    assert np.allclose(np.abs((comps.numpy() * sk.components_).sum(1)), 1.0)  # same axes up to sign
    rec = sk.inverse_transform(sk.transform(x.numpy()))
    assert abs(ae.pca_reconstruction_error(x, 4) - ((x.numpy() - rec) ** 2).sum(1).mean()) < 1e-8
    with pytest.raises(ValueError, match="p must be <="):
        ae.pca(x, 13)


def test_collapsed_matrices_equal_the_stacked_layers():
    torch.manual_seed(0)
    m = ae.LinearAutoencoder((12, 9, 7, 3))
    x = torch.randn(5, 12)
    E, D = ae.collapsed_encoder(m), ae.collapsed_decoder(m)
    assert E.shape == (3, 12) and D.shape == (12, 3)
    assert torch.allclose(m.encode(x), x @ E.T, atol=1e-5)
    assert torch.allclose(m.reconstruct(x), x @ E.T @ D.T, atol=1e-5)
    # the explicit product, last layer on the left
    w = [layer.weight for layer in m.encoder]
    assert torch.allclose(E, w[2] @ w[1] @ w[0])
    with pytest.raises(ValueError, match="decoder_dims"):
        ae.LinearAutoencoder((12, 3), decoder_dims=(4, 12))


def test_linear_autoencoder_learns_the_pca_subspace():
    """The claim of the lecture on a small synthetic problem with a clear spectral gap."""
    g = torch.Generator().manual_seed(0)
    d, p, n = 20, 3, 500
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    scales = torch.tensor([5.0, 4.0, 3.0] + [0.3] * (d - 3))
    x = (torch.randn(n, d, generator=g) * scales) @ basis.T
    x = x - x.mean(0)
    torch.manual_seed(0)
    m = ae.LinearAutoencoder((d, 10, p))
    ae.train_autoencoder(m, x, epochs=400, lr=1e-2, full_batch=True, device="cpu")
    mean, comps, _ = ae.pca(x, p)
    angles = ae.principal_angles(ae.collapsed_decoder(m).double(), comps.T.double())
    assert angles.max() < 1.0, angles
    err_ae = ae.reconstruction_error(x, ae.reconstruct(m, x))
    err_pca = ae.pca_reconstruction_error(x, p)
    assert err_pca <= err_ae * (1 + 1e-6) and err_ae < 1.01 * err_pca
    # a random decoder of the same size is far from the PCA subspace
    rand = ae.principal_angles(
        torch.randn(d, p, generator=g, dtype=torch.float64), comps.T.double()
    )
    assert rand.max() > 30


def test_tied_orthogonal_autoencoder_finds_the_span_but_not_the_axes():
    """Tied weights + orthogonality penalty: the PCA subspace (SciPy's angles), an exact U -> U Q
    symmetry of the loss, and the axes recovered only by PCA of the reconstructions."""
    from scipy.linalg import subspace_angles

    g = torch.Generator().manual_seed(0)
    d, p, n = 20, 3, 500
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    scales = torch.tensor([5.0, 4.0, 3.0] + [0.3] * (d - 3))
    x = (torch.randn(n, d, generator=g) * scales) @ basis.T
    x = x - x.mean(0)
    torch.manual_seed(0)
    m = ae.TiedLinearAutoencoder(d, p, orthogonality=1.0)
    ae.train_autoencoder(m, x, epochs=600, lr=1e-2, full_batch=True, device="cpu")
    u = m.U.detach().double()
    _, comps, _ = ae.pca(x, p)
    span = np.rad2deg(subspace_angles(u.numpy(), comps.T.double().numpy()))
    assert span.max() < 1.0, span
    assert torch.allclose(u.T @ u, torch.eye(p, dtype=torch.float64), atol=0.02)
    assert m.orthogonality_penalty().item() == pytest.approx(
        float(((u.T @ u - torch.eye(p, dtype=torch.float64)) ** 2).sum()), rel=1e-4
    )
    # U -> U Q (Q orthogonal) changes neither the reconstruction nor the penalty
    q, _ = torch.linalg.qr(torch.randn(p, p, generator=g, dtype=torch.float64))
    rec, rec_q = x.double() @ u @ u.T, x.double() @ (u @ q) @ (u @ q).T
    assert torch.allclose(rec, rec_q, atol=1e-10)
    eye = torch.eye(p, dtype=torch.float64)
    assert torch.allclose(((u @ q).T @ (u @ q) - eye).pow(2).sum(), (u.T @ u - eye).pow(2).sum())
    # PCA of the reconstructions recovers each axis (one column at a time)
    _, axes, _ = ae.pca(ae.reconstruct(m, x), p)
    for j in range(p):
        assert ae.principal_angles(axes[[j]].T, comps[[j]].T).item() < 1.0
    with pytest.raises(ValueError, match="code_dim"):
        ae.TiedLinearAutoencoder(5, 6)


def test_train_autoencoder_reduces_loss_and_denoises():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 30, generator=g)
    torch.manual_seed(0)
    m = ae.Autoencoder(code_dim=8, hidden=(32,), in_features=30)
    losses = ae.train_autoencoder(
        m, x, epochs=20, batch_size=64, lr=3e-3, noise_std=0.3, device="cpu"
    )
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    assert ae.reconstruct(m, x).shape == x.shape


def test_copy_gain_of_identity_and_zero_maps():
    class Identity(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def encode(self, x):
            return x * self.w

        def decode(self, z):
            return z

    class Zero(Identity):
        def decode(self, z):
            return 0 * z

    x = torch.rand(10, 16)
    assert abs(ae.copy_gain(Identity(), x) - 1) < 1e-5
    assert abs(ae.copy_gain(Zero(), x)) < 1e-6
    q, _ = torch.linalg.qr(torch.randn(16, 4))
    assert abs(ae.copy_gain(Identity(), x, directions=q.T) - 1) < 1e-5


def test_lifting_makes_circles_and_xor_separable():
    for make in (ae.make_circles, ae.make_xor):
        x, y = make(400, seed=0)
        assert x.shape == (400, 2) and set(y.tolist()) == {0, 1}
        before = ae.linear_accuracy(x, y)
        after = ae.linear_accuracy(ae.random_relu_features(x, 200, seed=0), y)
        assert before < 0.8 and after > 0.98, (make.__name__, before, after)
    # a linearly separable set is separable before lifting
    x = torch.randn(200, 2)
    assert ae.linear_accuracy(x, (x[:, 0] > 0).long()) > 0.99
    with pytest.raises(ValueError, match="must match"):
        ae.linear_accuracy(torch.randn(5, 2), torch.zeros(4, dtype=torch.long))


def test_train_autoencoder_reports_a_diverging_loss():
    m = ae.Autoencoder(code_dim=2, hidden=(), in_features=4)
    x = torch.full((8, 4), 1e30)  # squares overflow float32: the loss is inf from the first step
    with pytest.raises(FloatingPointError, match="epoch 1"):
        ae.train_autoencoder(m, x, epochs=2, batch_size=4, device="cpu")


def test_train_autoencoder_interrupted_keeps_the_losses_so_far():
    class Stops(ae.Autoencoder):
        calls = 0

        def decode(self, code):
            Stops.calls += 1
            if Stops.calls == 4:  # Ctrl-C during the 4th step (the 2nd epoch)
                raise KeyboardInterrupt
            return super().decode(code)

    m = Stops(code_dim=2, hidden=(), in_features=4)
    with pytest.warns(UserWarning, match="interrupted after 3 steps"):
        losses = ae.train_autoencoder(m, torch.randn(8, 4), epochs=5, batch_size=4, device="cpu")
    assert len(losses) == 3 and all(np.isfinite(losses)) and not m.training
