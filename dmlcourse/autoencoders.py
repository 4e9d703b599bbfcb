"""Reconstruction autoencoders, the linear autoencoder = PCA, and layers that lift data.

Taught in 03_autoencoders.

* :class:`Autoencoder`: encoder E and decoder D (MLP, or a small conv net); the code
  f(x) = E(x) is the embedding, so ``model(x)`` returns the code and
  :func:`dmlcourse.models.embed` works on it. ``model.reconstruct(x)`` is D(E(x)).
* :func:`autoencoder_objective`: the regularised MSE objective
  mean_i ||x_i - D(E(x_i))||^2 + weight_decay * sum ||W||^2 + code_penalty * mean_i ||f(x_i)||^2.
* :func:`train_autoencoder`: a short training loop (data resident on the device,
  optional input noise = denoising autoencoder). ``train.train`` calls
  ``loss_fn(model(x), labels)`` and never passes the input x, which a
  reconstruction loss needs, hence this loop.
* :class:`LinearAutoencoder` (stacked linear layers, no activations, no biases) and
  the tools that show it spans the PCA subspace: :func:`collapsed_encoder`,
  :func:`collapsed_decoder`, :func:`pca`, :func:`principal_angles`,
  :func:`reconstruction_error`. :class:`TiedLinearAutoencoder` (U_d = U_e, orthogonality
  penalty) still finds only the subspace; PCA of its reconstructions finds the axes.
* :class:`VariationalAutoencoder` (an inferential autoencoder): the encoder gives a Gaussian
  q(f | x) = N(mu(x), diag sigma^2(x)); training samples a code with :func:`reparameterize`
  and adds beta x :func:`gaussian_kl` (q against the prior N(0, I)) to the reconstruction
  error; the embedding is mu(x). Lecture 08's DUL reuses the same two functions.
* Lifting: :func:`make_circles`, :func:`make_xor`, :func:`random_relu_features`,
  :func:`linear_accuracy`; the kernel view: :func:`rbf_kernel_pca`.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from .core.linalg import pca as pca_components  # the SVD of the centred data (02_mahalanobis)
from .core.validate import check_choice, check_float, check_int, check_tensor
from .runtime import get_device, seed_everything

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: scikit-learn.

# --------------------------------------------------------------------------- autoencoders


def _flat(x: torch.Tensor) -> torch.Tensor:
    """Images (N, 28, 28) or vectors (N, D) as float vectors; uint8 pixels are scaled to [0, 1]
    (as ``data.to_float`` does without a dataset name)."""
    if not x.is_floating_point():
        x = x.float() / 255.0
    return x.flatten(1) if x.ndim > 2 else x


class _EncoderDecoder(nn.Module):
    """What every autoencoder here shares: ``encode`` (defined by each), ``decode`` with
    ``self.decoder``, ``forward`` = the code, ``reconstruct`` = decode(encode(x))."""

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class Autoencoder(_EncoderDecoder):
    """Encoder E: R^d -> R^p and decoder D: R^p -> R^d.

    Parameters
    ----------
    code_dim : int, default 32; p, the size of the code (= the embedding).
        p < d is under-complete, p > d over-complete.
    hidden : tuple of int, default (256,); hidden widths of the MLP encoder (the
        decoder mirrors them). ``()`` gives one layer each way.
    in_features : int, default 784; d.
    kind : "mlp" (default) or "conv" (28x28 images: two stride-2 convolutions, then a
        linear layer to the code; the decoder mirrors it with transposed convolutions).
    activation : "relu" (default), "sigmoid" or "linear"; between layers and on the code.
    code_activation : bool, default False; apply ``activation`` to the code too.

    ``model(x)`` returns the code (N, p); ``model.reconstruct(x)`` returns D(E(x)) (N, d).
    """

    def __init__(
        self,
        code_dim: int = 32,
        hidden=(256,),
        in_features: int = 784,
        kind: str = "mlp",
        activation: str = "relu",
        code_activation: bool = False,
    ):
        super().__init__()
        self.code_dim = check_int("code_dim", code_dim, min_value=1)
        self.in_features = check_int("in_features", in_features, min_value=1)
        self.kind = check_choice("kind", kind, ("mlp", "conv"))
        check_choice("activation", activation, ("relu", "sigmoid", "linear"))
        act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "linear": nn.Identity}[activation]
        hidden = tuple(check_int("hidden[i]", h, min_value=1) for h in hidden)
        if kind == "conv":
            if self.in_features != 784:
                raise ValueError(
                    "kind='conv' needs 28x28 images (in_features=784), got "
                    f"in_features={in_features}."
                )
            self.encoder = nn.Sequential(
                nn.Unflatten(1, (1, 28, 28)),
                nn.Conv2d(1, 16, 3, stride=2, padding=1),
                act(),  # 14x14
                nn.Conv2d(16, 32, 3, stride=2, padding=1),
                act(),  # 7x7
                nn.Flatten(),
                nn.Linear(32 * 7 * 7, self.code_dim),
            )
            self.decoder = nn.Sequential(
                nn.Linear(self.code_dim, 32 * 7 * 7),
                act(),
                nn.Unflatten(1, (32, 7, 7)),
                nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),
                act(),  # 14x14
                nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1),  # 28x28
                nn.Flatten(),
            )
        else:
            enc, d = [], self.in_features
            for h in hidden:
                enc += [nn.Linear(d, h), act()]
                d = h
            enc.append(nn.Linear(d, self.code_dim))
            dec, d = [], self.code_dim
            for h in reversed(hidden):
                dec += [nn.Linear(d, h), act()]
                d = h
            dec.append(nn.Linear(d, self.in_features))
            self.encoder = nn.Sequential(*enc)
            self.decoder = nn.Sequential(*dec)
        self.code_act = act() if code_activation else nn.Identity()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.code_act(self.encoder(_flat(x)))


def gaussian_kl(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(log_var))) || N(0, I) ) per sample:
    1/2 sum_l (mu_l^2 + var_l - log var_l - 1). (N, D) -> (N,).

    Taught in 03_autoencoders (the VAE); 08_uncertainty_pfe's DUL uses it again."""
    check_tensor("mu", mu, floating=True)
    check_tensor("log_var", log_var, floating=True)
    if mu.shape != log_var.shape:
        raise ValueError(
            f"mu has shape {tuple(mu.shape)} but log_var has {tuple(log_var.shape)}; "
            "they must match."
        )
    return 0.5 * (mu**2 + log_var.exp() - log_var - 1).sum(-1)


def reparameterize(
    mu: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator | None = None
):
    """z = mu + sigma * eps with eps ~ N(0, I): a sample whose gradient flows to mu and log_var.
    A ``generator`` (CPU) draws eps on the CPU, so a seeded run is the same on every device."""
    eps = torch.randn(
        mu.shape,
        generator=generator,
        dtype=mu.dtype,
        device="cpu" if generator is not None else mu.device,
    )
    return mu + torch.exp(0.5 * log_var) * eps.to(mu.device)


class VariationalAutoencoder(Autoencoder):
    """A VAE: the encoder outputs mu(x) and log sigma^2(x) of q(f | x) = N(mu, diag sigma^2).

    Same parameters as :class:`Autoencoder` (MLP kinds only), plus ``beta`` (default 1.0), the
    weight of the KL term in :func:`vae_objective`. ``model(x)`` and ``encode(x)`` return mu(x),
    the embedding; :meth:`encode_distribution` returns (mu, log_var); ``decode(f)`` maps any code,
    e.g. a draw from the prior N(0, I), to an image.
    """

    def __init__(
        self,
        code_dim: int = 16,
        hidden=(256,),
        in_features: int = 784,
        activation: str = "relu",
        beta: float = 1.0,
    ):
        super().__init__(code_dim, hidden, in_features, "mlp", activation)
        self.beta = check_float("beta", beta, min_value=0.0)
        last = self.encoder[-1]
        self.encoder[-1] = nn.Linear(last.in_features, 2 * self.code_dim)  # mu and log sigma^2

    def encode_distribution(self, x: torch.Tensor):
        mu, log_var = self.encoder(_flat(x)).chunk(2, dim=1)
        return mu, log_var.clamp(-12.0, 8.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_distribution(x)[0]


def vae_objective(
    model: VariationalAutoencoder,
    clean: torch.Tensor,
    noisy: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """mean_i ||x_i - D(f_i)||^2 + beta * KL(q(f | x_i) || N(0, I)), with f_i = mu + sigma * eps.

    The squared error is the negative log-likelihood of a Gaussian decoder of fixed variance
    (up to constants), so beta sets how much the code may carry: beta = 0 is a plain (noisy-code)
    autoencoder, a large beta pushes every q(f | x) to the prior."""
    mu, log_var = model.encode_distribution(clean if noisy is None else noisy)
    code = reparameterize(mu, log_var, generator)
    x = _flat(clean)
    reconstruction = (x - model.decode(code)).pow(2).sum(1).mean()
    return reconstruction + model.beta * gaussian_kl(mu, log_var).mean()


@torch.no_grad()
def sample_from_prior(model: VariationalAutoencoder, n: int = 16, *, seed: int = 0) -> torch.Tensor:
    """Decode ``n`` codes drawn from the prior N(0, I): (n, d) on the CPU."""
    n = check_int("n", n, min_value=1)
    g = torch.Generator().manual_seed(int(seed))
    code = torch.randn(n, model.code_dim, generator=g).to(next(model.parameters()).device)
    return model.decode(code).cpu()


def weight_penalty(model: nn.Module) -> torch.Tensor:
    """Omega(theta) = sum of squared weights of every weight matrix / kernel (biases excluded)."""
    terms = [
        p.pow(2).sum() for name, p in model.named_parameters() if p.ndim > 1 and "weight" in name
    ]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()


def autoencoder_objective(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    code: torch.Tensor,
    model: nn.Module | None = None,
    *,
    weight_decay: float = 0.0,
    code_penalty: float = 0.0,
) -> torch.Tensor:
    """The regularised MSE objective of a reconstruction autoencoder:

    mean_i ||x_i - x_hat_i||^2  +  weight_decay * sum_W ||W||_F^2  +
    code_penalty * mean_i ||f(x_i)||^2

    (the Guelph slides sum distance + lambda * Omega over the batch, so the penalty is counted
    once per image; dividing by the batch size gives this objective with the same lambda, and
    the size of a step no longer grows with the batch). ``x`` and ``x_hat`` are (N, d) (images
    are flattened), ``code`` is (N, p).
    """
    check_tensor("x", x, floating=True)
    check_tensor("x_hat", x_hat, floating=True)
    check_tensor("code", code, ndim=2, floating=True)
    weight_decay = check_float("weight_decay", weight_decay, min_value=0.0)
    code_penalty = check_float("code_penalty", code_penalty, min_value=0.0)
    x, x_hat = _flat(x), _flat(x_hat)
    if x.shape != x_hat.shape:
        raise ValueError(
            f"x has shape {tuple(x.shape)} but x_hat has {tuple(x_hat.shape)}; they must match."
        )
    if code.shape[0] != x.shape[0]:
        raise ValueError(f"code has {code.shape[0]} rows but x has {x.shape[0]}; they must match.")
    loss = (x - x_hat).pow(2).sum(1).mean()
    if weight_decay > 0:
        if model is None:
            raise ValueError("weight_decay > 0 needs the model (its weights are penalised).")
        loss = loss + weight_decay * weight_penalty(model).to(loss.device)
    if code_penalty > 0:
        loss = loss + code_penalty * code.pow(2).sum(1).mean()
    return loss


def add_noise(
    x: torch.Tensor, std: float = 0.5, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """x + Gaussian noise of standard deviation ``std`` (a denoising autoencoder's corruption)."""
    check_tensor("x", x, floating=True)
    std = check_float("std", std, min_value=0.0)
    noise = torch.randn(
        x.shape,
        generator=generator,
        dtype=x.dtype,
        device="cpu" if generator is not None else x.device,
    )
    return x + std * noise.to(x.device)


# the same training knobs as train.train (lecture 00), named alike on purpose
def train_autoencoder(
    model: nn.Module,
    x: torch.Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    code_penalty: float = 0.0,
    noise_std: float = 0.0,
    full_batch: bool = False,
    device=None,
    seed: int = 0,
) -> list:
    """Train ``model`` (anything with ``encode``/``decode``) to reconstruct ``x`` (N, d) floats.

    A :class:`VariationalAutoencoder` is trained with :func:`vae_objective` (its ``beta``); a
    :class:`TiedLinearAutoencoder` gets its ``orthogonality`` x ``orthogonality_penalty()`` added.

    With ``noise_std > 0`` the input is corrupted by Gaussian noise and the target is the
    clean x: a denoising autoencoder. ``full_batch=True`` uses the whole data set at every
    step (``epochs`` is then the number of steps). Adam; returns the loss of every step.
    A loss that becomes NaN or inf raises ``FloatingPointError`` (at the end of that epoch);
    Ctrl-C (KeyboardInterrupt) stops the training with a warning and returns the losses of
    the steps done so far.
    """
    check_tensor("x", x, floating=True)
    if len(x) == 0:
        raise ValueError("x is empty; there is nothing to reconstruct.")
    epochs = check_int("epochs", epochs, min_value=1)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    lr = check_float("lr", lr, min_value=0.0, strict_min=True)
    noise_std = check_float("noise_std", noise_std, min_value=0.0)
    if not (hasattr(model, "encode") and hasattr(model, "decode")):
        raise TypeError(f"model must have encode and decode methods, got {type(model).__name__}.")
    device = torch.device(device) if device is not None else get_device(verbose=False)
    g = seed_everything(seed)
    model.to(device).train()
    data = _flat(x).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []  # one float per step, kept if the training is interrupted
    step_losses = []  # this epoch's, as tensors: no host synchronisation inside the epoch
    try:
        for epoch in range(epochs):
            order = (
                torch.arange(len(data)) if full_batch else torch.randperm(len(data), generator=g)
            )
            for idx in order.split(len(data) if full_batch else batch_size):
                clean = data[idx.to(device)]
                noisy = add_noise(clean, noise_std, generator=g) if noise_std > 0 else clean
                if isinstance(model, VariationalAutoencoder):
                    loss = vae_objective(model, clean, noisy, generator=g)
                else:
                    code = model.encode(noisy)
                    loss = autoencoder_objective(
                        clean,
                        model.decode(code),
                        code,
                        model,
                        weight_decay=weight_decay,
                        code_penalty=code_penalty,
                    )
                    if isinstance(model, TiedLinearAutoencoder) and model.orthogonality > 0:
                        loss = loss + model.orthogonality * model.orthogonality_penalty()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step_losses.append(loss.detach())
            values = torch.stack(step_losses).cpu().tolist()
            losses.extend(values)
            step_losses = []
            bad = [v for v in values if not math.isfinite(v)]
            if bad:
                raise FloatingPointError(
                    f"the reconstruction loss became {bad[0]} in epoch {epoch + 1} (lr={lr}); "
                    "lower lr, or standardise x."
                )
    except KeyboardInterrupt:
        losses.extend(torch.stack(step_losses).cpu().tolist() if step_losses else [])
        warnings.warn(
            f"training interrupted after {len(losses)} steps; the model keeps its current weights.",
            stacklevel=2,
        )
    finally:
        model.eval()
    return losses


@torch.no_grad()
def reconstruct(model: nn.Module, x: torch.Tensor, *, batch_size: int = 2048) -> torch.Tensor:
    """D(E(x)) for (N, d) floats, in eval mode, returned on the CPU."""
    check_tensor("x", x, floating=True)
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out = [
        model.decode(model.encode(_flat(x[s : s + batch_size]).to(device))).cpu()
        for s in range(0, len(x), batch_size)
    ]
    model.train(was)
    return torch.cat(out)


def reconstruction_error(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean over samples of the squared reconstruction error ||x_i - x_hat_i||^2."""
    check_tensor("x", x, floating=True)
    check_tensor("x_hat", x_hat, floating=True)
    x, x_hat = _flat(x), _flat(x_hat).to(x.device)
    if x.shape != x_hat.shape:
        raise ValueError(
            f"x has shape {tuple(x.shape)} but x_hat has {tuple(x_hat.shape)}; they must match."
        )
    return (x - x_hat).pow(2).sum(1).mean().item()


@torch.no_grad()
def copy_gain(
    model: nn.Module,
    x: torch.Tensor,
    *,
    directions: torch.Tensor | None = None,
    eps: float = 0.05,
    seed: int = 0,
) -> float:
    """How much of a small change of the input the model copies to its output.

    For random small perturbations e of norm ``eps`` (inside the span of the rows of
    ``directions``, a (k, d) matrix with orthonormal rows, if given; any direction otherwise) it
    returns the least-squares slope of D(E(x + e)) - D(E(x)) on e: 1 means the Jacobian acts
    like the identity (a copy), 0 that the change is thrown away. An under-complete code of
    size p can pass at most p of k directions, so its gain is at most about p / k.
    """
    check_tensor("x", x, floating=True)
    eps = check_float("eps", eps, min_value=0.0, strict_min=True)
    device = next(model.parameters()).device
    x = _flat(x).to(device)
    g = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))
    if directions is None:
        e = torch.randn(x.shape, generator=g)
    else:
        check_tensor("directions", directions, ndim=2, floating=True)
        if directions.shape[1] != x.shape[1]:
            raise ValueError(
                f"directions has {directions.shape[1]} columns but x has {x.shape[1]} features."
            )
        e = torch.randn(len(x), len(directions), generator=g) @ directions.float().cpu()
    # each perturbation rescaled to norm eps in total (about eps / sqrt(d) per pixel: a small nudge)
    e = eps * e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
    e = e.to(device)
    was = model.training
    model.eval()
    delta = model.decode(model.encode(x + e)) - model.decode(model.encode(x))
    model.train(was)
    return ((delta * e).sum() / (e * e).sum()).item()


# --------------------------------------------------------------------------- linear AE and PCA


class LinearAutoencoder(_EncoderDecoder):
    """Stacked linear layers without activations or biases (feed it centred data).

    ``encoder_dims`` lists the widths from the input to the code, e.g. (784, 128, 16):
    two encoder layers U_1 (784->128), U_2 (128->16); the decoder mirrors it.
    """

    def __init__(self, encoder_dims=(784, 128, 16), decoder_dims=None):
        super().__init__()
        dims = tuple(check_int("encoder_dims[i]", d, min_value=1) for d in encoder_dims)
        if len(dims) < 2:
            raise ValueError(f"encoder_dims needs at least (input, code), got {encoder_dims!r}.")
        ddims = (
            tuple(reversed(dims))
            if decoder_dims is None
            else tuple(check_int("decoder_dims[i]", d, min_value=1) for d in decoder_dims)
        )
        if len(ddims) < 2 or ddims[0] != dims[-1] or ddims[-1] != dims[0]:
            raise ValueError(
                f"decoder_dims must go from the code size {dims[-1]} back to {dims[0]}, got "
                f"{ddims!r}."
            )
        self.in_features, self.code_dim = dims[0], dims[-1]
        self.encoder = nn.Sequential(
            *[nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:])]
        )
        self.decoder = nn.Sequential(
            *[nn.Linear(a, b, bias=False) for a, b in zip(ddims[:-1], ddims[1:])]
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(_flat(x))


class TiedLinearAutoencoder(_EncoderDecoder):
    """x_hat = U U^T x with ONE (d, p) matrix U: tied weights (decoder U_d = encoder U_e).

    Trained by :func:`train_autoencoder` with ``orthogonality`` x :meth:`orthogonality_penalty`,
    ||U^T U - I||_F^2, added to the reconstruction error. Feed it centred data.

    Neither the tie nor the penalty picks the principal AXES: for any orthogonal p x p Q,
    U Q gives the same reconstruction (U Q Q^T U^T = U U^T) and the same penalty, so the
    columns of U are one orthonormal basis of the PCA subspace among infinitely many.
    Taught in 03_autoencoders (the fix that does not work).
    """

    def __init__(self, in_features: int = 784, code_dim: int = 10, orthogonality: float = 1.0):
        super().__init__()
        self.in_features = check_int("in_features", in_features, min_value=1)
        self.code_dim = check_int("code_dim", code_dim, min_value=1, max_value=self.in_features)
        self.orthogonality = check_float("orthogonality", orthogonality, min_value=0.0)
        self.U = nn.Parameter(torch.randn(self.in_features, self.code_dim) / math.sqrt(in_features))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return _flat(x) @ self.U

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return code @ self.U.T

    def orthogonality_penalty(self) -> torch.Tensor:
        """||U^T U - I||_F^2 (0 when the columns of U are orthonormal)."""
        eye = torch.eye(self.code_dim, dtype=self.U.dtype, device=self.U.device)
        return (self.U.T @ self.U - eye).pow(2).sum()


def _product(layers) -> torch.Tensor:
    # x -> W_1 x -> W_2 W_1 x -> ...: the collapsed map is W_L ... W_2 W_1 (last layer on the left)
    m = None
    for layer in layers:
        m = layer.weight if m is None else layer.weight @ m
    return m.detach().clone()


def collapsed_encoder(model: LinearAutoencoder) -> torch.Tensor:
    """The one (p, d) matrix U_e^T = W_L ... W_1 that the stacked encoder layers equal."""
    if not isinstance(model, LinearAutoencoder):
        raise TypeError(f"model must be a LinearAutoencoder, got {type(model).__name__}.")
    return _product(model.encoder)


def collapsed_decoder(model: LinearAutoencoder) -> torch.Tensor:
    """The one (d, p) matrix U_d that the stacked decoder layers equal."""
    if not isinstance(model, LinearAutoencoder):
        raise TypeError(f"model must be a LinearAutoencoder, got {type(model).__name__}.")
    return _product(model.decoder)


def pca(x: torch.Tensor, p: int):
    """PCA by the SVD of the centred data. Returns (mean (d,), components (p, d) with
    orthonormal rows, largest variance first, explained variances (p,))."""
    check_tensor("x", x, ndim=2, floating=True)
    p = check_int("p", p, min_value=1, max_value=min(x.shape))
    mean, comps = pca_components(x, p)
    return mean, comps, ((x - mean) @ comps.T).pow(2).sum(0) / (len(x) - 1)


def pca_reconstruction_error(x: torch.Tensor, p: int) -> float:
    """Mean squared reconstruction error of the best rank-p affine approximation (PCA)."""
    mean, comps, _ = pca(x, p)
    xc = x - mean
    return reconstruction_error(xc, xc @ comps.T @ comps)


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles, in DEGREES, between the column spaces of a (d, k) and b (d, l),
    largest first (as ``scipy.linalg.subspace_angles``; min(rank) angles).

    Orthonormal bases Q_a, Q_b (from the SVD, so rank deficiency is handled); the
    singular values of Q_a^T Q_b are the cosines. Small angles are computed from the
    sines (the singular values of Q_b - Q_a Q_a^T Q_b), which stay accurate near 0.
    """
    check_tensor("a", a, ndim=2, floating=True)
    check_tensor("b", b, ndim=2, floating=True)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"a has {a.shape[0]} rows but b has {b.shape[0]}; both must live in the same R^d."
        )

    def basis(m):
        u, s, _ = torch.linalg.svd(m.double(), full_matrices=False)
        rank = (
            int((s > s.max() * max(m.shape) * torch.finfo(torch.float64).eps).sum())
            if s.numel()
            else 0
        )
        return u[:, :rank]

    qa, qb = basis(a), basis(b)
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa
    k = qb.shape[1]
    if k == 0:
        raise ValueError("a or b has rank 0; principal angles are undefined.")
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0).flip(0)  # ascending: largest angle first
    # descending: largest angle first
    sin = torch.linalg.svdvals(qb - qa @ (qa.T @ qb)).clamp(-1.0, 1.0)
    angles = torch.where(cos**2 < 0.5, torch.arccos(cos), torch.arcsin(sin))
    return torch.sort(torch.rad2deg(angles), descending=True).values


# --------------------------------------------------------------------------- lifting


def make_circles(n: int = 400, *, noise: float = 0.05, factor: float = 0.5, seed: int = 0):
    """Two concentric circles (radius 1 and ``factor``), label 0 outside, 1 inside.

    Returns ``(x, y)``: points (n, 2) and labels (n,)."""
    n = check_int("n", n, min_value=2)
    noise = check_float("noise", noise, min_value=0.0)
    factor = check_float("factor", factor, min_value=0.0, max_value=1.0, strict_min=True)
    g = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))
    y = torch.arange(n) % 2
    t = 2 * math.pi * torch.rand(n, generator=g)
    r = torch.where(y == 1, torch.full((n,), factor), torch.ones(n))
    x = torch.stack([r * torch.cos(t), r * torch.sin(t)], 1) + noise * torch.randn(
        n, 2, generator=g
    )
    return x, y


def make_xor(n: int = 400, *, noise: float = 0.15, seed: int = 0):
    """Four Gaussian blobs at (+-1, +-1); label 1 where the signs differ (XOR). Returns (x, y)."""
    n = check_int("n", n, min_value=4)
    noise = check_float("noise", noise, min_value=0.0)
    g = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))
    corners = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    k = torch.arange(n) % 4
    x = corners[k] + noise * torch.randn(n, 2, generator=g)
    return x, (k >= 2).long()


def random_relu_features(
    x: torch.Tensor, width: int = 200, *, scale: float = 2.0, seed: int = 0, relu: bool = True
) -> torch.Tensor:
    """One random wide layer: relu(x W^T + b) with W ~ N(0, scale^2), b ~ U(-scale, scale).
    From d_1 = x.shape[1] inputs to d_2 = ``width`` > d_1: the layer *lifts* the data.
    ``relu=False`` returns the affine map x W^T + b alone (the same W and b): its image is
    still a d_1-dimensional affine subspace of R^{d_2}."""
    check_tensor("x", x, ndim=2, floating=True)
    width = check_int("width", width, min_value=1)
    scale = check_float("scale", scale, min_value=0.0, strict_min=True)
    g = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))
    w = scale * torch.randn(width, x.shape[1], generator=g, dtype=x.dtype)
    b = scale * (2 * torch.rand(width, generator=g, dtype=x.dtype) - 1)
    z = x @ w.T.to(x.device) + b.to(x.device)
    return torch.relu(z) if relu else z


def rbf_kernel_pca(
    x: torch.Tensor, n_components: int = 2, *, gamma: float = 1.0, x_new: torch.Tensor | None = None
) -> torch.Tensor:
    """Kernel PCA with the RBF kernel k(x, y) = exp(-gamma ||x - y||^2): lifting done implicitly.

    The kernel is an inner product phi(x).phi(y) of an (infinite-dimensional) feature map phi;
    kernel PCA is PCA of phi(x), computed from the centred kernel matrix
    K_c = H K H = V diag(lambda) V^T, with the centring matrix H = I - (1/n) 1 1^T (1 the vector of
    n ones): the coordinates of x_i on the j-th axis are sqrt(lambda_j) V_ij. ``x_new``
    (optional) is projected on the axes learned from ``x``.
    Returns (n, n_components) (or (len(x_new), n_components)); signs of the axes are arbitrary
    (as in scikit-learn's ``KernelPCA``).
    """
    check_tensor("x", x, ndim=2, floating=True)
    n_components = check_int("n_components", n_components, min_value=1, max_value=len(x))
    gamma = check_float("gamma", gamma, min_value=0.0, strict_min=True)
    x = x.double()
    n = len(x)
    # region: centred kernel matrix
    k = torch.exp(-gamma * torch.cdist(x, x).pow(2))
    ones = torch.full((n, n), 1.0 / n, dtype=x.dtype)  # (1/n) 1 1^T, so that H = I - ones
    kc = k - ones @ k - k @ ones + ones @ k @ ones  # H K H, multiplied out
    lam, v = torch.linalg.eigh(kc)
    lam, v = lam.flip(0)[:n_components].clamp_min(0.0), v.flip(1)[:, :n_components]
    # endregion
    if x_new is None:
        return (v * lam.sqrt()).float()
    check_tensor("x_new", x_new, ndim=2, floating=True)
    kn = torch.exp(-gamma * torch.cdist(x_new.double(), x).pow(2))
    ones_new = torch.full((len(x_new), n), 1.0 / n, dtype=x.dtype)
    kn_c = kn - ones_new @ k - kn @ ones + ones_new @ k @ ones
    return (kn_c @ v / lam.sqrt().clamp_min(1e-12)).float()


def linear_accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
    """Training accuracy of the best linear classifier we can fit (scikit-learn's
    LogisticRegression with weak regularisation, standardised features): ~1 means the
    classes are linearly separable, ~0.5 (two balanced classes) means no line helps."""
    check_tensor("x", x, ndim=2, floating=True)
    check_tensor("y", y, ndim=1)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)} labels; they must match.")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xn, yn = x.detach().cpu().double().numpy(), y.detach().cpu().numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1e4, max_iter=5000))
    return float(clf.fit(xn, yn).score(xn, yn))
