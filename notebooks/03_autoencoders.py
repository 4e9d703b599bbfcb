# %% [markdown]
# # 03 · Autoencoders: an embedding learned by reconstruction (and why a linear one is PCA)
#
# An autoencoder never sees a label. An **encoder** $E$ squeezes an image $x \in \mathbb{R}^d$ into a code
# $f(x) = E(x) \in \mathbb{R}^p$, a **decoder** $D$ tries to rebuild the image from the code, and the only thing
# it is told is "your rebuild $\hat x = D(E(x))$ should look like the input". The code is the embedding. Whether that
# embedding puts similar images close together is not guaranteed, and this notebook measures it.
#
# What you will see:
# 1. the regularised reconstruction objective, with its two kinds of regulariser;
# 2. an **over-complete** code ($p > d$) that learns to copy its input, and the **denoising** fix;
# 3. a **linear** autoencoder that ends up spanning the same subspace as PCA, checked numerically, and how to get
#    the principal axes too (tied orthonormal weights do not; PCA of the reconstructions does);
# 4. layers that reduce the dimension versus layers that *lift* it (and why lifting helps a linear classifier), and
#    the same lift done by a kernel: kernel PCA;
# 5. nonlinear autoencoder codes versus PCA codes of the same size on MNIST and Fashion-MNIST;
# 6. an inferential autoencoder, the **VAE**: the reparameterisation trick, the KL term, its mean as an embedding,
#    and images decoded from the prior.

# %%
# Setup: imports, seed, device, data size, quick mode
import torch
from dmlcourse import data, metrics, models, plots, runtime, train
QUICK = runtime.is_quick()            # DMLCOURSE_QUICK=1 (CI): small and fast
device = runtime.get_device()         # CUDA, then Apple MPS, then CPU
SIZE = data.default_size(device)      # "mini" on CPU or in quick mode, "full" on a GPU
runtime.seed_everything(0)

# %%
import matplotlib.pyplot as plt
from dmlcourse import autoencoders as ae, cache
from dmlcourse.listing import show

TRAIN_PER_CLASS = runtime.quick(1000, 200)   # images per class for the autoencoders
TEST_PER_CLASS = runtime.quick(200, 100)
EPOCHS = runtime.quick(6, 8)   # autoencoders and VAE (sections 2, 5, 6); full mode: fewer epochs of 5x the images
LINEAR_STEPS = runtime.quick(200, 150)        # full-batch steps of the linear autoencoders (section 3)
SEEDS = runtime.quick([0, 1, 2], [0, 1])      # training seeds of the autoencoders and the VAE (sections 1, 2, 5, 6)


def pixels(split, dataset, per_class, seed=0):
    # images as flat vectors in [0, 1] (no standardisation: a ReLU network can then copy a pixel exactly)
    s = data.load(dataset, split, SIZE)
    keep = data.balanced_subset(s.labels, per_class, seed=seed)
    return data.to_float(s.images[keep]).flatten(1), s.labels[keep]


x_tr, y_tr = pixels("train", "mnist", TRAIN_PER_CLASS)
x_te, y_te = pixels("test", "mnist", TEST_PER_CLASS)
shuffled = torch.randperm(len(x_tr), generator=torch.Generator().manual_seed(0))   # x_tr is sorted by class
print(f"MNIST: {len(x_tr)} training and {len(x_te)} test images of d = {x_tr.shape[1]} pixels")

# %% [markdown]
# ## 1. The objective
#
# For a batch $x_1, \dots, x_b$ the autoencoder minimises
#
# $$\frac1b \sum_{i=1}^{b} \lVert x_i - D(E(x_i)) \rVert_2^2 \;+\; \lambda\, \Omega(\theta).$$
#
# The Guelph slides (their eq. 3) allow any distance between an image and its rebuild, and sum over the batch a term
# that holds both the distance and $\lambda\,\Omega(\theta)$, so the penalty is counted once per image. Dividing
# that sum by $b$ gives the objective above with the *same* $\lambda$: averaging scales the whole objective by
# $1/b$, so the size of a gradient step no longer grows with the batch size, and leaves the balance between the two
# terms as it was. We measure the gap with the squared Euclidean distance, so the first term is a mean squared error.
# Two common choices of $\Omega$:
#
# * **weight decay**: $\Omega = \sum_W \lVert W \rVert_F^2$ over the weight matrices, which prefers small weights;
# * **a penalty on the code**: $\Omega = \frac1b \sum_i \lVert f(x_i) \rVert^2$, which prefers small codes. (An
#   $\ell_1$ penalty here would instead prefer *sparse* codes: the "sparse autoencoder".)

# %%
show(ae.autoencoder_objective)


# %% [markdown]
# A quick check that each regulariser does what it claims. We train small autoencoders (784 → 128 → 16) for a few
# epochs, once per seed in `SEEDS`: no regulariser, weight decay, a code penalty, and each penalty ten times stronger.
# Then we measure the weight norm, the code norm and the test reconstruction error of each.

# %%
REGULARISERS = {"none": {}, "weight decay 1e-3": dict(weight_decay=1e-3), "weight decay 1e-2": dict(weight_decay=1e-2),
                "code penalty 1e-1": dict(code_penalty=1e-1), "code penalty 1": dict(code_penalty=1.0)}
N_REG = runtime.quick(2000, 1000)        # training images of these small autoencoders


def reg_demo(seed):
    out, state = {}, None
    for label, kw in REGULARISERS.items():
        runtime.seed_everything(seed)
        m = ae.Autoencoder(code_dim=16, hidden=(128,))
        ae.train_autoencoder(m, x_tr[shuffled[:N_REG]], epochs=4, lr=2e-3, device=device, seed=seed, **kw)
        with torch.no_grad():
            code_norm = m.encode(x_te.to(device)).norm(dim=1).mean().item()
            rec = ae.reconstruction_error(x_te, ae.reconstruct(m, x_te))
        out[label] = dict(weight_norm=ae.weight_penalty(m).sqrt().item(), code_norm=code_norm, rec=rec)
        if label == "none":
            state = {k: v.cpu() for k, v in m.state_dict().items()}
    return {"scores": out, "state of none": state}

reg_runs = [cache.cached("l03-regularisers", dict(size=SIZE, n=N_REG, subset="random", v=3, seed=seed,
                                                  strengths=REGULARISERS), lambda s=seed: reg_demo(s)) for seed in SEEDS]
reg = {label: {k: metrics.mean_sd([r["scores"][label][k] for r in reg_runs]) for k in ("weight_norm", "code_norm", "rec")}
       for label in REGULARISERS}
rec_change = {label: [r["scores"][label]["rec"] / r["scores"]["none"]["rec"] - 1 for r in reg_runs]
              for label in REGULARISERS}
print(f"each model: {N_REG} training images, 4 epochs; over {len(SEEDS)} seeds (mean ± sd; the last column: the "
      "largest change of any seed)")
print(f"{'regulariser':<20}{'||W||':>14}{'mean ||f(x)||':>15}{'test rec. error':>17}{'vs none':>9}")
for k, v in reg.items():
    print(f"{k:<20}" + "".join(f"{v[m][0]:>{w}.2f} ± {v[m][1]:.2f}" for m, w in
                               (("weight_norm", 7), ("code_norm", 8), ("rec", 10)))
          + f"{max(rec_change[k], key=abs):>+9.1%}")
none = reg["none"]
# claim: shrinks
assert metrics.clearly_above(none["weight_norm"], reg["weight decay 1e-3"]["weight_norm"])
assert metrics.clearly_above(none["code_norm"], reg["code penalty 1e-1"]["code_norm"])   # claim: shrinks
# claim: stronger-shrinks-more
assert metrics.clearly_above(reg["weight decay 1e-3"]["weight_norm"], reg["weight decay 1e-2"]["weight_norm"])
# claim: stronger-shrinks-more
assert metrics.clearly_above(reg["code penalty 1e-1"]["code_norm"], reg["code penalty 1"]["code_norm"])
for label in REGULARISERS:
    assert max(abs(c) for c in rec_change[label]) < 0.1   # claim: rec-unchanged (within 10 % of none, every seed)
# claim: code-penalty-weights (the strong code penalty comes with larger weights than no penalty)
assert metrics.clearly_above(reg["code penalty 1"]["weight_norm"], none["weight_norm"])

# %% [markdown]
# Each regulariser shrinks what it penalises, and ten times the strength shrinks it further, clearly over the seeds.
# Even then, the test reconstruction error of every seed stays within 10 % of the unregularised one (the last
# column): at this size and after this short training there is room to make the weights or the codes smaller
# without giving up detail.
#
# Somewhere further up, weight decay must cost detail: as $\lambda$ grows without bound the weight matrices are pushed
# to zero, the network's output is then the last bias alone, and every image is rebuilt as one fixed image. A code
# penalty used **on its own** has no such limit, because the network can dodge it. Our code is the output of a
# linear layer (no activation on the code), so multiplying that layer's weights and bias by a small $c$ and the
# decoder's first weights by $1/c$ leaves every reconstruction as it was, while the code shrinks by $c$ and the
# penalty by $c^2$. The cell below does this to the trained unregularised network of seed 0. The table shows a hint
# of the same escape: under the strong code penalty the weights are clearly larger than with no penalty (the
# $\lVert W\rVert$ column, over the seeds), while the codes shrink. So the code penalty can be made as small as one
# likes at no cost in reconstruction, by growing the decoder's weights instead: on its own it never forces the network
# to give up detail, and whatever error it adds in the table comes from a finite training run, not from the
# objective. This is why a code penalty is used together with weight decay, or with a bound on the norm of the
# decoder's weights, as sparse autoencoders and sparse coding do. Try a few larger strengths in `REGULARISERS` to see
# where each one starts to cost detail.

# %%
import copy as copying

base_ae = ae.Autoencoder(code_dim=16, hidden=(128,))
base_ae.load_state_dict(reg_runs[0]["state of none"])
c = 0.1
shrunk = copying.deepcopy(base_ae)
with torch.no_grad():
    shrunk.encoder[-1].weight.mul_(c), shrunk.encoder[-1].bias.mul_(c)   # the code layer: codes times c
    shrunk.decoder[0].weight.div_(c)                                      # the decoder's first layer: times 1/c
    moved = (ae.reconstruct(shrunk, x_te) - ae.reconstruct(base_ae, x_te)).abs().max().item()
    norms = [m.encode(x_te).norm(dim=1).mean().item() for m in (base_ae, shrunk)]
weights = [ae.weight_penalty(m).sqrt().item() for m in (base_ae, shrunk)]
print(f"codes times {c}, decoder's first weights times {1 / c:.0f}: largest change of a reconstructed pixel "
      f"{moved:.1e}; mean ||f(x)|| {norms[0]:.2f} -> {norms[1]:.3f}; ||W|| {weights[0]:.1f} -> {weights[1]:.1f}")
assert moved < 1e-4      # the algebra of the rescaling, up to float32 rounding (a check, not evidence)

# %% [markdown]
# ## 2. Under-complete, over-complete, and the denoising fix
#
# The code size $p$ decides what the network *can* do. With $p < d$ (**under-complete**) it must summarise: 784
# pixels through 32 numbers. With $p > d$ (**over-complete**) nothing forces a summary. The network can pass each
# pixel straight through its own code unit and back. A ReLU unit that computes $\max(0, x_j)$ copies a pixel
# $x_j \ge 0$ exactly. The autoencoder then reconstructs well and learns nothing useful about digits.
#
# A **denoising autoencoder** (DAE) receives a corrupted input $\tilde x = x + \varepsilon$ (here Gaussian noise,
# $\sigma = 0.5$) and must output the *clean* $x$. Copying now reproduces the noise, which the loss punishes, so the
# network must learn what digits look like in order to remove it.
#
# We train three models on the same images for the same epochs:
#
# | model | code $p$ | input |
# |---|---|---|
# | under-complete | 32 (784 → 256 → 32 → 256 → 784) | clean |
# | over-complete | 1024 (784 → 1024 → 784, ReLU code) | clean |
# | denoising over-complete | 1024 (same network) | $x + \mathcal{N}(0, 0.5^2)$ |

# %%
show(ae.add_noise)

AE_SETTINGS = {
    "under-complete": (dict(code_dim=32, hidden=(256,)), 0.0),
    "over-complete": (dict(code_dim=1024, hidden=(), code_activation=True), 0.0),
    "denoising over-complete": (dict(code_dim=1024, hidden=(), code_activation=True), 0.5),
}


def fit_ae(label, x, dataset="mnist", seed=0):
    kwargs, noise = AE_SETTINGS[label]
    config = dict(label=label, dataset=dataset, size=SIZE, n=len(x), epochs=EPOCHS, kwargs=kwargs, noise=noise,
                  seed=seed)

    def compute():
        runtime.seed_everything(seed)
        m = ae.Autoencoder(**kwargs)
        losses = ae.train_autoencoder(m, x, epochs=EPOCHS, lr=2e-3, noise_std=noise, device=device, seed=seed)
        return {"state": {k: v.cpu() for k, v in m.state_dict().items()}, "losses": losses}

    r = cache.cached(f"l03-ae-{dataset}-{label.replace(' ', '_')}", config, compute)
    m = ae.Autoencoder(**kwargs)
    m.load_state_dict(r["state"])
    return m.to(device).eval()

aes = {label: fit_ae(label, x_tr) for label in AE_SETTINGS}     # seed 0: the models of the pictures below
# each model once per seed in SEEDS, for the comparisons that follow (metrics.clearly_above over the seeds)
aes_seeds = {label: [aes[label]] + [fit_ae(label, x_tr, seed=s) for s in SEEDS[1:]] for label in AE_SETTINGS}
print(f"each model: {len(x_tr)} training images, {EPOCHS} epochs of batches of 128, Adam (lr 2e-3), "
      f"once per seed in SEEDS = {SEEDS}")

# %% [markdown]
# **Does the over-complete network copy?** Three measurements:
#
# * **copy gain**: nudge a test image by a small random change $e$ and see how much of $e$ comes out,
#   $\langle D(E(x+e)) - D(E(x)), e\rangle / \lVert e\rVert^2$ (1 = a perfect copy, 0 = the change is ignored). We take
#   $e$ inside the span of the top 64 principal directions of the digits, where the training images actually vary.
#   A code of size 32 can pass at most about 32 of those 64 directions.
# * images it has **never seen**: Fashion-MNIST clothes through the MNIST autoencoders;
# * the **Jacobian** $\partial \hat x / \partial x$ at a test image. For a copy it is the identity matrix.
#
# Each is measured for every training seed in `SEEDS`. One model is **clearly** above another when the gap between
# their means over the seeds is larger than their two standard deviations added (`metrics.clearly_above`, the rule
# the whole course uses); a smaller gap is within the seed noise.

# %%
show(ae.copy_gain)
mean_tr, top64, _ = ae.pca(x_tr, 64)       # kept: section 5 uses the top 32 axes of this PCA
x_fashion, _ = pixels("test", "fashion-mnist", 50)
gains = {label: [ae.copy_gain(m, x_te, directions=top64) for m in ms] for label, ms in aes_seeds.items()}
copy = {}
for label, ms in aes_seeds.items():
    rec_d = [ae.reconstruction_error(x_te, ae.reconstruct(m, x_te)) for m in ms]
    rec_f = [ae.reconstruction_error(x_fashion, ae.reconstruct(m, x_fashion)) for m in ms]
    copy[label] = dict(gain=metrics.mean_sd(gains[label]), rec_mnist=metrics.mean_sd(rec_d),
                       rec_fashion=metrics.mean_sd(rec_f), fashion_over_mnist=[f / d for f, d in zip(rec_f, rec_d)])
print(f"over {len(SEEDS)} seeds (mean ± sd):")
print(f"{'':<26}{'copy gain':>15}{'MNIST rec. error':>20}{'Fashion rec. error (never seen)':>34}")
for label, v in copy.items():
    print(f"{label:<26}" + "".join(f"{v[k][0]:>{w}.{dp}f} ± {v[k][1]:.{dp}f}"
                                   for k, w, dp in (("gain", 7, 3), ("rec_mnist", 12, 2), ("rec_fashion", 26, 2))))
print(f"(for scale: mean ||x||^2 of the Fashion images = {x_fashion.pow(2).sum(1).mean():.1f}, "
      f"of the MNIST test digits = {x_te.pow(2).sum(1).mean():.1f})")

over, under, dae = copy["over-complete"], copy["under-complete"], copy["denoising over-complete"]
# claim: copy-gain
assert min(gains["over-complete"]) > 0.85                                    # near 1, for every seed
# claim: copy-gain
assert metrics.clearly_above(over["gain"], under["gain"]) and metrics.clearly_above(over["gain"], dae["gain"])
# claim: rebuilds-clothes (the smallest error on clothes, over the seeds; the narrow code the largest)
assert metrics.clearly_above(under["rec_fashion"], over["rec_fashion"])
assert metrics.clearly_above(dae["rec_fashion"], over["rec_fashion"])
assert metrics.clearly_above(under["rec_fashion"], dae["rec_fashion"])   # claim: rebuilds-clothes
assert min(over["fashion_over_mnist"]) > 3        # yet more than 3 times its error on digits, for every seed

# %%
active = x_tr.std(0) > 0.3          # pixels that vary in the training digits (the border is always blank)
idx = torch.nonzero(active).flatten()
below = idx[idx + 28 < 784]         # varying pixels with a pixel below them in the image
rows = slice(350, 450)   # 100 pixels in the middle of the image, so the structure is visible
JAC_IMAGES = torch.linspace(0, len(x_te) - 1, 8).long()       # 8 test images spread over the classes


def jacobian(m, x):
    """d D(E(x)) / dx at one image x: (784, 784), output pixel by input pixel."""
    return torch.autograd.functional.jacobian(m.reconstruct, x[None].to(device), vectorize=True)[0, :, 0, :].cpu()


def diagonal_and_band(J):
    # the mean diagonal over the varying pixels, and the mean |entry| on the lines 28 pixels off the diagonal: how
    # much an output pixel follows the input pixels above and below it
    return (J.diagonal()[active].mean().item(),
            0.5 * (J[below, below + 28].abs().mean() + J[below + 28, below].abs().mean()).item())


diag, ratio = {}, {}      # per model: (mean, sd) over the seeds of the mean over the 8 images
for label, ms in aes_seeds.items():
    per_seed = [torch.tensor([diagonal_and_band(jacobian(m, x_te[i])) for i in JAC_IMAGES]).mean(0) for m in ms]
    diag[label] = metrics.mean_sd([d for d, _ in per_seed])
    ratio[label] = metrics.mean_sd([b / d for d, b in per_seed])
jac = {label: jacobian(m, x_te[0]) for label, m in aes.items()}     # the figure: seed 0, the first test image
lim = max(J[rows, rows].abs().max().item() for J in jac.values())     # ONE colour scale for the three panels
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
for ax, (label, J) in zip(axes, jac.items()):
    im = ax.imshow(J[rows, rows], cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set(title=f"{label}\nmean diagonal (varying pixels) {diagonal_and_band(J)[0]:.2f}",
           xlabel="input pixel 350-449", ylabel="output pixel 350-449")
fig.colorbar(im, ax=axes, shrink=0.85, label="d output pixel / d input pixel (same scale in all panels)")
fig.suptitle("Jacobian of the reconstruction at a test image, seed 0 (a copy would be a red diagonal of 1s)")
print(f"over {len(SEEDS)} seeds, each the mean over {len(JAC_IMAGES)} test images:")
for label in aes_seeds:
    print(f"{label:<26} mean diagonal {diag[label][0]:.3f} ± {diag[label][1]:.3f}; ratio of the mean |entry| 28 "
          f"pixels off it to the diagonal {ratio[label][0]:.2f} ± {ratio[label][1]:.2f}")
# claim: jacobian-diagonal
assert metrics.clearly_above(diag["over-complete"], diag["under-complete"])
assert metrics.clearly_above(diag["over-complete"], diag["denoising over-complete"])   # claim: jacobian-diagonal
# strokes: relative to their own diagonal, the other two rely more on the neighbours above and below
assert metrics.clearly_above(ratio["under-complete"], ratio["over-complete"])
assert metrics.clearly_above(ratio["denoising over-complete"], ratio["over-complete"])

# %% [markdown]
# On one colour scale, the over-complete network has the strongest main diagonal: each output pixel follows its own
# input pixel more than in the other two, clearly so over the seeds and eight test images (printed; a perfect copy
# would have 1 all along the diagonal). The fainter parallel lines, 28 pixels apart, are the pixels above and below:
# all three networks have also learned some *combinations* of neighbouring pixels, i.e. strokes, and relative to their
# own diagonal the under-complete and denoising networks rely on them clearly more (the printed ratios).
#
# Seen in the reconstructions (one image of each of eight classes, top: Fashion, bottom: MNIST test digits), the
# over-complete network passes more of each garment it never saw than the other two: over the seeds its Fashion
# reconstruction error, printed above, is clearly the smallest of the three, though still more than three times its
# error on digits. The under-complete one has clearly the largest, because its narrow code only has room for what
# digits look like. Compare the denoising row yourself: how much of each garment survives?

# %%
# the test sets are sorted by class: take 8 images spread over the classes, not the first 8 (one class)
pick_f = torch.linspace(0, len(x_fashion) - 1, 8).long()
pick_d = torch.linspace(0, len(x_te) - 1, 8).long()
rows_shown = [("Fashion input", x_fashion[pick_f])] + [
    (f"{label}", ae.reconstruct(m, x_fashion[pick_f])) for label, m in aes.items()] + [
    ("MNIST input", x_te[pick_d])] + [(f"{label}", ae.reconstruct(m, x_te[pick_d])) for label, m in aes.items()]
fig, axes = plt.subplots(len(rows_shown), 8, figsize=(9, 1.15 * len(rows_shown)))
for r, (label, imgs) in enumerate(rows_shown):
    for c in range(8):
        axes[r, c].imshow(imgs[c].view(28, 28).clamp(0, 1).cpu(), cmap="gray_r")
        axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
fig.suptitle("one image of each of 8 classes and its reconstruction by each autoencoder")
fig.tight_layout()

# %% [markdown]
# **And the embedding?** We do nearest-neighbour retrieval among the test digits, using each model's code, and
# measure Precision@1 and MAP@R (lecture 00), for every seed in `SEEDS`. A row is the mean ± standard deviation over
# the seeds (raw pixels have no seed: their spread is 0), and two rows differ only when `metrics.clearly_above` says so
# (the gap of the means exceeds the two standard deviations added).

# %%
def retrieval(z, y):
    return metrics.precision_at_1(z, y), metrics.map_at_r(z, y)


def verdict(a, b):
    return "clearly above" if metrics.clearly_above(a, b) else (
        "clearly below" if metrics.clearly_above(b, a) else "within the seed spread")

MEASURES = ("P@1", "MAP@R")
raw = retrieval(x_te, y_te)
emb_quality = {"raw pixels": tuple((v, 0.0) for v in raw)}        # per measure: (mean, sd) over the seeds
for label, ms in aes_seeds.items():
    runs = [retrieval(models.embed(m, x_te), y_te) for m in ms]
    emb_quality[label] = tuple(metrics.mean_sd([r[k] for r in runs]) for k in range(2))
print(f"{'code':<26}{'P@1':>15}{'MAP@R':>16}")
for k, q in emb_quality.items():
    print(f"{k:<26}" + "".join(f"{m:>9.3f} ± {sd:.3f}" for m, sd in q))
dq, oq, pq = emb_quality["denoising over-complete"], emb_quality["over-complete"], emb_quality["raw pixels"]
for k, measure in enumerate(MEASURES):
    print(f"{measure}: denoising {verdict(dq[k], oq[k])} the copying network; copying network {verdict(oq[k], pq[k])} "
          "raw pixels")
assert metrics.clearly_above(dq[0], oq[0]) and metrics.clearly_above(dq[1], oq[1])   # claim: denoising-retrieves
assert metrics.clearly_above(pq[0], oq[0]) and metrics.clearly_above(pq[1], oq[1])   # claim: copy-no-better

# %% [markdown]
# The copying network's code is close to a re-encoding of the pixels, and a slightly damaged one: over the seeds its
# neighbours are clearly worse than raw-pixel neighbours on both measures. Adding noise to the
# input forces the same network to learn structure: its code is clearly above the copying network's on both
# measures.
#
# ## 3. The linear autoencoder spans the PCA subspace
#
# Drop every activation and every bias. The encoder with layers $U_1, \dots, U_{\ell_e}$ computes
# $f(x) = U_{\ell_e}^\top \cdots U_1^\top x$, which is **one** matrix $U_e^\top$ applied to $x$. The decoder is likewise
# one matrix $U_d$. However deep, the network computes $\hat x = U_d U_e^\top x$, a linear map of rank at most $p$.
#
# Among all rank-$p$ linear maps, the one with the smallest squared reconstruction error on centred data is the
# orthogonal projection onto the top-$p$ principal subspace (the Eckart–Young theorem). So a linear autoencoder
# trained to its optimum has a decoder whose **column space** is the PCA subspace, and it reconstructs exactly as
# well as PCA with $p$ components (Baldi and Hornik, 1989). The Guelph slides put it as the linear under-complete
# autoencoder being "reduced to" PCA; that holds for the subspace only, as the next part shows. We check it
# numerically with $p = 10$, a 784 → 64 → 10 → 64 → 784 network on centred MNIST images, trained full-batch with
# Adam:

# %%
p = 10
x_lin = x_tr[shuffled[: runtime.quick(2000, 1000)]]   # a random subset of all ten digits
mean_lin = x_lin.mean(0)
xc = x_lin - mean_lin                       # PCA centres the data; our linear AE has no biases, so we centre too


def fit_linear():
    runtime.seed_everything(0)
    m = ae.LinearAutoencoder((784, 64, p))
    losses = ae.train_autoencoder(m, xc, epochs=LINEAR_STEPS, lr=3e-3, full_batch=True, device=device)
    return {"state": {k: v.cpu() for k, v in m.state_dict().items()}, "losses": losses}

lin_r = cache.cached("l03-linear-ae", dict(size=SIZE, n=len(xc), p=p, steps=LINEAR_STEPS, subset="random"),
                     fit_linear)
lin = ae.LinearAutoencoder((784, 64, p))
lin.load_state_dict(lin_r["state"])
print(f"the linear autoencoder: {len(xc)} centred training digits, {LINEAR_STEPS} full-batch Adam steps")

# %%
E, D = ae.collapsed_encoder(lin), ae.collapsed_decoder(lin)
with torch.no_grad():
    gap = (lin.encode(xc) - xc @ E.T).abs().max().item()
print(f"collapsed encoder: {tuple(E.shape)}, decoder: {tuple(D.shape)}; "
      f"largest difference between the stacked layers and the one matrix: {gap:.1e}")
assert gap < 1e-3        # a check of the package's code: the identity holds exactly, up to float32 rounding

_, pcs, pc_var = ae.pca(xc, p)
angles = ae.principal_angles(D, pcs.T)
print("principal angles between the decoder's column space and the top-10 PCA subspace (degrees):")
print("  ", " ".join(f"{a:.2f}" for a in angles.tolist()))
err_ae = ae.reconstruction_error(xc, ae.reconstruct(lin, xc))
err_pca = ae.pca_reconstruction_error(xc, p)
rel = (err_ae - err_pca) / err_pca
print(f"reconstruction error: linear AE {err_ae:.4f}, PCA {err_pca:.4f}, relative difference {rel:.2e}")
random_angles = ae.principal_angles(torch.randn(784, p, dtype=torch.float64), pcs.T)
print(f"for scale, a random 10-D subspace: largest angle {random_angles.max():.1f} degrees")

# claim: pca-subspace
assert angles.max() < 5.0               # stated bound: every principal angle below 5 degrees
assert -1e-4 < rel < 0.01               # claim: pca-subspace (within 1% of PCA, never better, up to rounding)

# %% [markdown]
# The principal angles generalise "the angle between two lines" to two subspaces: $0°$ for every angle means the same
# subspace, $90°$ a direction of one that is orthogonal to all of the other. How to compute them is the first
# exercise at the end of this notebook.
#
# ### What the linear autoencoder does *not* give you
# The loss only sees the product $U_d U_e^\top$. For any invertible $p \times p$ matrix $R$, the pair $(U_d R,\;
# R^{-1} U_e^\top)$ has the same product and therefore the same loss. The network finds **the subspace** but
# not the principal axes inside it. Its code dimensions are a mixture of principal components: they are correlated,
# and the decoder's columns are neither orthogonal to each other nor of length 1, while the principal axes are
# both. The measurements below show each of these; the line after them only checks the algebra of $R$.

# %%
col_angles = [float(ae.principal_angles(D[:, [j]], pcs[[j]].T)[0]) for j in range(p)]
print("angle between decoder column j and principal axis j (degrees):", " ".join(f"{a:.0f}" for a in col_angles))
with torch.no_grad():
    codes = lin.encode(xc)
corr = torch.corrcoef(codes.T)
off_diag = (corr - torch.diag(corr.diagonal())).abs().max().item()
pca_corr = torch.corrcoef((xc @ pcs.T).T)
print(f"largest |correlation| between two code dimensions: linear AE {off_diag:.2f}, "
      f"PCA {(pca_corr - torch.diag(pca_corr.diagonal())).abs().max():.1e}")
lengths = D.norm(dim=0)
cosines = (D / lengths).T @ (D / lengths)                # cosines of the angles between the decoder columns
max_cos = (cosines - torch.eye(p)).abs().max().item()
print(f"decoder columns: lengths {lengths.min():.2f} to {lengths.max():.2f}, largest |cosine| between two of them "
      f"{max_cos:.2f} (the principal axes: lengths 1, cosines 0)")

R = torch.randn(p, p, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    same_loss = ae.reconstruction_error(xc, xc @ (torch.linalg.inv(R) @ E).T @ (D @ R).T)
print(f"reconstruction error after (D R, R^-1 E) with a random R: {same_loss:.4f} (was {err_ae:.4f})")

assert max(col_angles) > 20 and off_diag > 0.2      # claim: mixing (not the axes, correlated codes)
# claim: mixing (the columns are not orthogonal, and not all of length 1)
assert max_cos > 0.2 and (lengths - 1).abs().max() > 0.5
assert abs(same_loss - err_ae) < 1e-3 * err_ae      # the algebra of R, up to rounding (not evidence: it holds for any R)

# %%
plots.image_grid(torch.cat([pcs, D.T]).view(-1, 28, 28), ncols=p, size=1.0,
                 title="top: the 10 principal axes; bottom: the 10 decoder columns (same span, different basis)");

# %% [markdown]
# ### Recovering the axes: a fix that fails and one that works
#
# A common suggestion is to **tie the weights**, $U_d = U_e = U$, and add an
# **orthogonality penalty** $\lVert U^\top U - I\rVert_F^2$. It does not work. It only shrinks the symmetry group:
# for any *orthogonal* $p \times p$ matrix $Q$, $UQ$ has $UQ\,(UQ)^\top = UU^\top$, so the same reconstruction, and
# $(UQ)^\top UQ - I = Q^\top(U^\top U - I)\,Q$, whose Frobenius norm equals that of $U^\top U - I$ (an orthogonal change
# of basis keeps it), so the same penalty. The columns of $U$ end up as *some* orthonormal basis of the PCA
# subspace, fixed by where training started, not the principal axes.
#
# What works is anything that breaks the rotation symmetry. The cheapest is to post-process: run PCA on the
# reconstructions $\hat x = D(E(x))$. They all lie in the learned subspace, and their variance along each direction
# of it is the data's, so their principal axes are the data's top $p$ axes. A loss can break the symmetry too, in
# the literature (not tried here): *nested dropout* keeps only the first $k$ code units, with $k$ drawn at random each
# time, so that the first units must work on their own. Rippel, Gelbart and Adams (2014) prove that in the simplest
# (semi-linear) autoencoder this gives exactly PCA's code: unit 1 on axis 1, unit 2 on axis 2, and so on.
#
# Below, the two are scored differently. Each column of the tied $U$ is scored by its angle to the **nearest**
# principal axis, so a right axis in the wrong position is not counted against it. The axes from PCA of the
# reconstructions come sorted by variance like the data's, so they are scored more strictly, axis $j$ against
# principal axis $j$; where two principal variances are nearly tied, their plane is compared instead.

# %%
show(ae.TiedLinearAutoencoder.orthogonality_penalty)


def fit_tied():
    runtime.seed_everything(0)
    m = ae.TiedLinearAutoencoder(784, p, orthogonality=1.0)
    losses = ae.train_autoencoder(m, xc, epochs=LINEAR_STEPS, lr=1e-2, full_batch=True, device=device)
    return {"state": {k: v.cpu() for k, v in m.state_dict().items()}, "losses": losses}

tied_r = cache.cached("l03-tied-ae", dict(size=SIZE, n=len(xc), p=p, steps=LINEAR_STEPS, lr=1e-2), fit_tied)
tied = ae.TiedLinearAutoencoder(784, p)
tied.load_state_dict(tied_r["state"])
U = tied.U.detach()


def nearest_axis_angles(directions):
    """For each column, its principal angle (degrees) to the closest of the p principal axes."""
    return [min(float(ae.principal_angles(directions[:, [i]], pcs[[j]].T)[0]) for j in range(p))
            for i in range(directions.shape[1])]

err_tied = ae.reconstruction_error(xc, ae.reconstruct(tied, xc))
orth_dev = (U.T @ U - torch.eye(p)).abs().max().item()
tied_angles = nearest_axis_angles(U)
_, rec_axes, _ = ae.pca(ae.reconstruct(lin, xc), p)          # the working fix: PCA of the reconstructions
rec_angles = [float(ae.principal_angles(rec_axes[[j]].T, pcs[[j]].T)[0]) for j in range(p)]   # axis j vs axis j
Q, _ = torch.linalg.qr(torch.randn(p, p, generator=torch.Generator().manual_seed(2)))
rotated = ae.TiedLinearAutoencoder(784, p)
rotated.U.data = U @ Q
err_rot = ae.reconstruction_error(xc, ae.reconstruct(rotated, xc))
print(f"tied + orthogonal: reconstruction error {err_tied:.4f} (PCA {err_pca:.4f}), largest |U^T U - I| = "
      f"{orth_dev:.1e}, largest angle between its span and the PCA subspace {ae.principal_angles(U, pcs.T).max():.1f}")
print(f"  the same after U -> UQ with a random orthogonal Q: {err_rot:.4f}")
print("  angle of each column of U to its nearest principal axis (degrees):    ",
      " ".join(f"{a:4.0f}" for a in tied_angles))
print("PCA of the linear AE's reconstructions: angle of axis j to principal axis j:",
      " ".join(f"{a:4.1f}" for a in rec_angles))
# Axes whose variances are nearly equal are barely defined, even for PCA itself: a small change of the data rotates
# them into each other. Group neighbours whose variances differ by less than 5% and compare each group's span.
groups = [[0]]
for j in range(1, p):
    if pc_var[j - 1] - pc_var[j] < 0.05 * pc_var[j - 1]:
        groups[-1].append(j)
    else:
        groups.append([j])
group_angles = {tuple(gr): float(ae.principal_angles(rec_axes[gr].T, pcs[gr].T).max()) for gr in groups}
print("near-ties (variances within 5%):", [gr for gr in groups if len(gr) > 1] or "none",
      f"; largest angle per group: {max(group_angles.values()):.1f}")

# claim: tied-rotation
assert abs(err_tied - err_pca) < 0.01 * err_pca and orth_dev < 0.01        # same error as PCA, orthonormal U
assert abs(err_rot - err_tied) < 1e-4 * err_tied   # the algebra of Q, up to rounding (it holds for any Q)
assert min(tied_angles) > 20                       # claim: tied-rotation (every column 20+ degrees off any axis)
assert max(group_angles.values()) < 5              # claim: rec-pca-axes (PCA of the reconstructions finds them)

# %% [markdown]
# The tied, orthonormal $U$ reconstructs within 1 % of PCA, yet every one of its columns is more than 20° away from
# the nearest principal axis; rotating it by a random $Q$ leaves the error unchanged, as promised. PCA of the
# reconstructions lands within 5° of each well-defined axis. Where two principal variances are nearly tied, the axes
# are ill-defined for PCA too (a small change of the data rotates them into each other), so there what is held to 5°
# is their common plane; the angles printed per axis show how close each single axis came. The span is what the
# reconstruction loss determines; the axes need an extra step.
#
# ## 4. Layers that reduce and layers that lift
#
# Each layer of a network maps $d_1$ numbers to $d_2$ numbers. When $d_1 \ge d_2$ it **reduces** the dimension, like
# the encoder above. When $d_1 < d_2$ it widens the representation, and what that buys depends on the activation.
# An affine map $x \mapsto Wx + b$ into $\mathbb{R}^{d_2}$ leaves the points on a flat $d_1$-dimensional plane
# there, and a hyperplane meets that plane along a hyperplane of the input space: for a linear classifier nothing has
# changed. With a nonlinear activation the layer **lifts** the data onto a curved $d_1$-dimensional surface, a
# nonlinear feature map into $\mathbb{R}^{d_2}$, and a hyperplane can now cut that surface along a *curve* of the
# input space. So classes that no line could separate may become linearly separable after the layer. A kernel method
# takes the data to such a feature space too, which is why the Guelph slides call a widening layer a kernel method;
# that holds for a layer with a nonlinear activation, a condition the slides leave unsaid. A wide ReLU layer with
# *random* weights already lifts; the same layer without its ReLU does not:

# %%
show(ae.random_relu_features)
lift = {}
for name, make in (("circles", ae.make_circles), ("XOR", ae.make_xor)):
    x2, y2 = make(400, seed=0)
    affine = ae.linear_accuracy(ae.random_relu_features(x2, 200, relu=False), y2)   # the same W and b, no ReLU
    lift[name] = (x2, y2, ae.linear_accuracy(x2, y2), ae.linear_accuracy(ae.random_relu_features(x2, 200), y2))
    print(f"{name:<8} linear classifier accuracy: in 2-D {lift[name][2]:.3f}, after the affine map 2 -> 200 "
          f"alone {affine:.3f}, after the random ReLU layer 2 -> 200: {lift[name][3]:.3f}")
    # claim: width-alone (no line separates the classes; the affine map alone changes the accuracy by under 0.02)
    assert lift[name][2] < 0.8 and abs(affine - lift[name][2]) < 0.02
    assert lift[name][3] == 1.0   # claim: lift-separates (linearly separable: all 400 points on the right side)

# %%
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
g1, g2 = torch.meshgrid(torch.linspace(-2, 2, 200), torch.linspace(-2, 2, 200), indexing="xy")
grid2 = torch.stack([g1.flatten(), g2.flatten()], 1)
for ax, (name, (x2, y2, before, after)) in zip(axes, lift.items()):
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1e4, max_iter=5000))
    clf.fit(ae.random_relu_features(x2, 200).numpy(), y2.numpy())
    region = clf.predict(ae.random_relu_features(grid2, 200).numpy()).reshape(200, 200)
    ax.contourf(g1, g2, region, levels=[-0.5, 0.5, 1.5], colors=["#c6dbef", "#fdd0a2"])
    ax.scatter(x2[:, 0], x2[:, 1], c=["#1f77b4" if v == 0 else "#ff7f0e" for v in y2.tolist()], s=6)
    ax.set(title=f"{name}: a straight line {before:.2f}, lifted {after:.2f}", aspect="equal")
fig.suptitle("regions of a LINEAR classifier on 200 random ReLU features, drawn back in the plane")
fig.tight_layout()

# %% [markdown]
# In the 200-D feature space the classifier is a hyperplane. Seen back in the plane, it is a curve that
# follows the classes. A trained network chooses this lift as well as the classifier. A deep network alternates lifting
# and reducing, layer after layer.
#
# ### The kernel view: an explicit feature map against an implicit one
#
# What "kernel method" means here, precisely. The random layer is an **explicit feature map**
# $\varphi(x) = \operatorname{relu}(Wx + b) \in \mathbb{R}^{200}$. Many linear methods touch the data only through
# inner products of data points: PCA, ridge regression, a support vector machine. Applied after the layer, such a
# *kernelisable* method needs only $k(x, y) = \varphi(x)^\top \varphi(y)$, and that function *is* a kernel. (Not
# every linear method qualifies: a lasso regression, for one, needs the coordinates themselves.) A kernel method
# turns this around: choose $k$ directly, for instance the RBF kernel
# $k(x, y) = \exp(-\gamma \lVert x - y\rVert^2)$, whose feature map is infinite-dimensional and never written down
# (the "kernel trick"). **Kernel PCA** is PCA of $\varphi(x)$ computed from the $n \times n$ kernel matrix alone: centre
# it, $K_c = H K H$ with the centring matrix $H = I - \tfrac1n \mathbf{1}\mathbf{1}^\top$ ($\mathbf{1}$ the vector of
# $n$ ones), and the eigenvectors of $K_c$, scaled by the square roots of its eigenvalues, are the coordinates on the
# principal axes of the lifted data. (The unit tests check our `rbf_kernel_pca` against scikit-learn's `KernelPCA`.)
#
# First a check of that sentence with the explicit ReLU features: PCA of $\varphi(x)$ and kernel PCA with
# $K = \varphi\varphi^\top$ give the same coordinates (up to the sign of each axis).

# %%
show(ae.rbf_kernel_pca, "centred kernel matrix")
xk, yk = lift["circles"][:2]
phi = ae.random_relu_features(xk, 200).double()                # explicit: 400 points x 200 features
mean_phi, comps_phi, _ = ae.pca(phi, 5)
z_explicit = (phi - mean_phi) @ comps_phi.T
n_k = len(xk)
centre = torch.eye(n_k, dtype=torch.float64) - torch.ones(n_k, n_k, dtype=torch.float64) / n_k   # H = I - 1 1^T / n
lam, vec = torch.linalg.eigh(centre @ (phi @ phi.T) @ centre)    # only the 400 x 400 kernel matrix
z_kernel = vec.flip(1)[:, :5] * lam.flip(0)[:5].sqrt()
sign = torch.sign((z_kernel * z_explicit).sum(0))
gap_k = (z_kernel * sign - z_explicit).abs().max().item()
print(f"largest difference between PCA of phi(x) and kernel PCA with K = phi phi^T: {gap_k:.1e}")
assert gap_k < 1e-6      # the identity of the text, up to float64 rounding (a check of the code, not evidence)

# %% [markdown]
# Now the same non-linear problem, the circles, solved both ways. We fit the linear classifier on: the plane; the 200
# random ReLU features; the first axes of PCA of those features; the first axes of RBF kernel PCA ($\gamma = 1$).

# %%
relu_pca = z_explicit.float()
rbf = ae.rbf_kernel_pca(xk, 5, gamma=1.0)
kernel_view = {"plane (2-D)": ae.linear_accuracy(xk, yk),
               "random ReLU layer (200-D)": ae.linear_accuracy(ae.random_relu_features(xk, 200), yk)}
for k in (2, 5):
    kernel_view[f"ReLU features, PCA axes 1-{k}"] = ae.linear_accuracy(relu_pca[:, :k], yk)
    kernel_view[f"RBF kernel PCA, axes 1-{k}"] = ae.linear_accuracy(rbf[:, :k], yk)
for name, acc in kernel_view.items():
    print(f"{name:<30} linear accuracy {acc:.3f}")
assert kernel_view["plane (2-D)"] < 0.6
# claim: kernel-pca-separates
assert min(kernel_view["random ReLU layer (200-D)"], kernel_view["ReLU features, PCA axes 1-5"],
           kernel_view["RBF kernel PCA, axes 1-5"]) == 1.0   # separable: every point on the right side
# claim: kernel-pca-separates
assert max(kernel_view["ReLU features, PCA axes 1-2"], kernel_view["RBF kernel PCA, axes 1-2"]) < 0.65

# Where is the radius? The linear accuracy on each single axis, and on the axes 3 to 5 and 3 and 5 together
lifted = {"ReLU features, PCA": relu_pca, "RBF kernel PCA": rbf}
by_axes = {}
for name, z in lifted.items():
    by_axes[name] = {f"axis {j + 1}": ae.linear_accuracy(z[:, [j]], yk) for j in range(5)}
    by_axes[name]["axes 3, 4, 5"] = ae.linear_accuracy(z[:, 2:5], yk)
    by_axes[name]["axes 3 and 5 (plotted)"] = ae.linear_accuracy(z[:, [2, 4]], yk)
    print(f"{name:<20}", ", ".join(f"{k} {v:.3f}" for k, v in by_axes[name].items()))
for acc in by_axes.values():
    assert max(acc[f"axis {j}"] for j in range(1, 6)) < 0.98                    # no single axis separates...
    assert max(range(1, 6), key=lambda j: acc[f"axis {j}"]) == 3                  # axis 3 carries most of it
    assert acc["axes 3, 4, 5"] == 1.0                  # ... three together separate them
    assert acc["axes 3 and 5 (plotted)"] > 0.98        # the two plotted: fewer than 8 of the 400 points off

fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
colours = ["#1f77b4" if v == 0 else "#ff7f0e" for v in yk.tolist()]
panels = [(f"the plane: linear {kernel_view['plane (2-D)']:.2f}", xk, ("x_1", "x_2"))]
for name, label in (("ReLU features, PCA", "explicit: PCA of 200 ReLU features"),
                    ("RBF kernel PCA", "implicit: RBF kernel PCA")):
    panels.append((f"{label}\naxes 3 and 5: linear {by_axes[name]['axes 3 and 5 (plotted)']:.2f}",
                   lifted[name][:, [2, 4]], ("axis 3", "axis 5")))
for ax, (title, xy, (xl, yl)) in zip(axes, panels):
    ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=6)
    ax.set_title(title, fontsize=10)
    ax.set(xlabel=xl, ylabel=yl)
fig.suptitle("the circles, lifted explicitly (a random ReLU layer) and implicitly (the RBF kernel)")
fig.tight_layout()

# %% [markdown]
# Both lifts make the circles linearly separable, and in both the separating direction is **not** among the top two
# principal axes: PCA, kernel or not, ranks directions by variance, and most of the lifted variance runs *along* the
# circles. Nor does the radius, which is what separates the classes, sit on one axis: no single axis separates the
# circles, axis 3 carries most of it, and axes 3 to 5 together separate them (the printout above). The figure plots
# axes 3 and 5, where the two rings come apart, all but a few points. Kernel PCA is unsupervised dimensionality
# reduction; it lifts, but it does not know the labels.
#
# The two routes differ in cost and flexibility. The kernel route never forms $\varphi$, but it stores and
# eigendecomposes an $n \times n$ matrix, which grows with the square of the data set. The explicit route costs
# $n \times$ width, and a trained network goes further: it *learns* $W$ and $b$, i.e. it learns the kernel, instead
# of fixing it in advance. (As the width grows, the inner product of random ReLU features, divided by the width,
# converges to a fixed kernel: the expectation of
# $\operatorname{relu}(w^\top x + b)\operatorname{relu}(w^\top y + b)$ over the random $w$ and $b$. With Gaussian
# weights and **no bias** it is, up to a constant factor, the arc-cosine kernel of degree 1 of Cho and Saul, 2009; our
# layer also draws a bias $b \sim U(-2, 2)$, which gives a different fixed kernel.)
#
# ## 5. Nonlinear autoencoder codes versus PCA codes
#
# Now the main question for metric learning: is an autoencoder's code a good embedding, better than the linear
# method it generalises? We compare the under-complete autoencoder (32-D code) with PCA to 32 dimensions on
# MNIST and Fashion-MNIST. The measures are 1-NN accuracy on the test set with the training set as reference, and
# Precision@1 and MAP@R within the test set.

# %%
P_CODE = 32
KEYS = ("knn", "p1", "map_r")
compare, layouts, recon = {}, {}, {}      # compare[dataset, method][key] = (mean, sd) over the seeds
for dataset in ("mnist", "fashion-mnist"):
    xtr, ytr = (x_tr, y_tr) if dataset == "mnist" else pixels("train", dataset, TRAIN_PER_CLASS)
    xte, yte = (x_te, y_te) if dataset == "mnist" else pixels("test", dataset, TEST_PER_CLASS)
    models_d = (aes_seeds["under-complete"] if dataset == "mnist" else
                [fit_ae("under-complete", xtr, dataset, seed=s) for s in SEEDS])
    # PCA to P_CODE dimensions; on MNIST the top rows of section 2's 64 (the same SVD of the same images)
    mean_d, comps_d = (mean_tr, top64[:P_CODE]) if dataset == "mnist" else ae.pca(xtr, P_CODE)[:2]
    runs = {"autoencoder": [(models.embed(m, xtr), models.embed(m, xte)) for m in models_d],
            "PCA": [((xtr - mean_d) @ comps_d.T, (xte - mean_d) @ comps_d.T)]}      # PCA has no seed
    for method, codes in runs.items():
        scores = [dict(knn=metrics.knn_accuracy(zte, yte, ztr, ytr, k=1), p1=metrics.precision_at_1(zte, yte),
                       map_r=metrics.map_at_r(zte, yte)) for ztr, zte in codes]
        compare[dataset, method] = {k: metrics.mean_sd([sc[k] for sc in scores]) for k in KEYS}
        layouts[dataset, method] = (plots.project_2d(codes[0][1], seed=0, cache=True), yte)   # seed 0's codes
    shown = xte[::len(xte) // 10][:10]
    recon[dataset] = torch.cat([shown, ae.reconstruct(models_d[0], shown),
                                (shown - mean_d) @ comps_d.T @ comps_d + mean_d])

print(f"{'':<28}{'1-NN acc.':>16}{'P@1':>16}{'MAP@R':>16}   (autoencoder: {len(SEEDS)} seeds; PCA: no seed)")
for (dataset, method), v in compare.items():
    print(f"{dataset + ', ' + method:<28}" + "".join(f"{v[k][0]:>10.3f} ± {v[k][1]:.3f}" for k in KEYS))
for dataset in ("mnist", "fashion-mnist"):
    a, b = compare[dataset, "autoencoder"], compare[dataset, "PCA"]
    print(f"{dataset}: the autoencoder minus PCA: " + ", ".join(
        f"{name} {a[k][0] - b[k][0]:+.3f} ({verdict(a[k], b[k])})" for k, name in zip(KEYS, ("1-NN", "P@1", "MAP@R"))))
    for k in KEYS:
        # claim: ae-vs-pca (any gain closes less than 15 % of what PCA misses of a perfect score, 1 - PCA's)
        assert a[k][0] - b[k][0] < 0.15 * (1 - b[k][0])
        if dataset == "mnist":
            assert not metrics.clearly_above(a[k], b[k])   # claim: ae-vs-pca (on MNIST never clearly above PCA)
    assert min(a["p1"][0], b["p1"][0]) > 0.6           # a sanity check: both codes retrieve far above chance
print("the autoencoder's gain over PCA as a share of what PCA misses (1 - PCA's score): " + ", ".join(
    f"{dataset} {name} {(compare[dataset, 'autoencoder'][k][0] - compare[dataset, 'PCA'][k][0]) / (1 - compare[dataset, 'PCA'][k][0]):+.0%}"
    for dataset in ("mnist", "fashion-mnist") for k, name in zip(KEYS, ("1-NN", "P@1", "MAP@R"))))

# %% [markdown]
# The honest result: at this size and with this short training (section 2's, printed there) the nonlinear
# autoencoder's code is **no big improvement** over PCA for nearest-neighbour retrieval. On MNIST it is never clearly
# above PCA over the seeds, on any of the three measures (the verdicts printed above say where it is even below).
# On Fashion-MNIST the verdicts printed above decide, and
# wherever the autoencoder's mean is ahead of PCA's, on either dataset, it closes less than 15 % of the gap between
# PCA's score and a perfect one (the last line printed). Whether longer training changes this is yours to try: raise
# `EPOCHS` in the second code cell and run the notebook again (the models are retrained, since their number of epochs
# is part of what the cache stores them under). Reconstruction rewards getting *every pixel* right, including stroke
# thickness and slant, which have nothing to do with the class. The loss never asks "are two images of the same digit
# close?". The next lectures ask exactly that.

# %%
fig, axes = plt.subplots(2, 2, figsize=(10, 9.5))
for row, dataset in enumerate(("mnist", "fashion-mnist")):
    for col, method in enumerate(("autoencoder", "PCA")):
        xy, labs = layouts[dataset, method]
        v = compare[dataset, method]
        plots.scatter_2d(xy, labs, ax=axes[row, col], class_names=data.CLASS_NAMES[dataset],
                         title=f"{dataset}, {method} ({P_CODE}-D)\nP@1 {v['p1'][0]:.2f}, MAP@R {v['map_r'][0]:.2f}"
                               + (" (mean over seeds)" if method == "autoencoder" else ""))
    axes[row, 1].legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
fig.suptitle("UMAP of the test codes (the autoencoder: seed 0)")
fig.tight_layout()

# %%
for dataset, imgs in recon.items():
    plots.image_grid(imgs.view(-1, 28, 28).clamp(0, 1), ncols=10, size=0.9,
                     title=f"{dataset}: originals, autoencoder (32-D code), PCA (32 components)");

# %% [markdown]
# ## 6. An inferential autoencoder: the variational autoencoder (VAE)
#
# Every autoencoder so far maps an image to one point. An **inferential** autoencoder maps it to a *distribution*
# over codes: the encoder outputs a mean $\mu(x)$ and a log-variance $\log\sigma^2(x)$, i.e.
# $q(f \mid x) = \mathcal{N}(\mu(x), \operatorname{diag}\sigma^2(x))$. Training draws a code $f \sim q(f \mid x)$,
# decodes it, and minimises
#
# $$\frac1b \sum_i \Big( \lVert x_i - D(f_i) \rVert^2 + \beta\, \mathrm{KL}\big(q(f \mid x_i) \,\big\|\, \mathcal{N}(0, I)\big) \Big),
# \qquad \mathrm{KL} = \tfrac12 \sum_{l=1}^{p} \big(\mu_l^2 + \sigma_l^2 - \log \sigma_l^2 - 1\big).$$
#
# With $\beta = 1$ this is, up to a constant, the negative evidence lower bound (ELBO) of a VAE (Kingma and Welling,
# 2014) whose decoder is a Gaussian of fixed variance $\tfrac12$ per pixel: its negative log-likelihood is the squared
# error plus a constant. The KL term pulls every $q(f \mid x)$ towards the **prior** $\mathcal{N}(0, I)$: codes cannot
# hide far away, and they must tolerate noise. Two pieces carry the idea, and the fourth exercise asks you to write both:
#
# * **The reparameterisation trick.** "Draw $f$ from $\mathcal{N}(\mu, \sigma^2)$" has no gradient with respect to
#   $\mu$ and $\sigma$. Written as $f = \mu + \sigma \odot \varepsilon$ with $\varepsilon \sim \mathcal{N}(0, I)$
#   drawn independently, the randomness sits in $\varepsilon$ and $f$ is a differentiable function of $\mu$ and
#   $\log\sigma^2$: $\partial f / \partial \mu = 1$ and $\partial f / \partial \log\sigma^2 = \tfrac12 \sigma \varepsilon$.
# * **The KL term** in closed form, the formula above. Lecture 08's data-uncertainty learning (DUL) puts the same
#   Gaussian on face embeddings and reuses the package's function for it (`uncertainty.dul_kl is
#   autoencoders.gaussian_kl`).
#
# The package's `reparameterize` and `gaussian_kl` are printed after that exercise. Here we only check, on random
# numbers, the two derivatives above, and the closed form against a Monte Carlo estimate of the KL: the mean of
# $\log q(f \mid x) - \log \mathcal{N}(f; 0, I)$ over many draws $f \sim q(f \mid x)$:

# %%
g = torch.Generator().manual_seed(0)
mu_demo = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
logvar_demo = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
f_demo = ae.reparameterize(mu_demo, logvar_demo, torch.Generator().manual_seed(1))
f_demo.sum().backward()
eps_demo = (f_demo - mu_demo) / torch.exp(0.5 * logvar_demo)          # the noise that was drawn
assert torch.allclose(mu_demo.grad, torch.ones(4, 3, dtype=torch.float64))
assert torch.allclose(logvar_demo.grad, 0.5 * torch.exp(0.5 * logvar_demo) * eps_demo.detach())
with torch.no_grad():   # KL(q || p) = E_q[log q(f) - log p(f)], estimated from 100 000 draws f ~ q per row
    q_demo = torch.distributions.Normal(mu_demo, torch.exp(0.5 * logvar_demo))
    prior_demo = torch.distributions.Normal(0.0, 1.0)
    draws = q_demo.loc + q_demo.scale * torch.randn(100_000, 4, 3, generator=g, dtype=torch.float64)
    log_ratio = (q_demo.log_prob(draws) - prior_demo.log_prob(draws)).sum(-1)      # (draws, 4 rows)
    kl_mc, kl_se = log_ratio.mean(0), log_ratio.std(0) / len(draws) ** 0.5
    kl_closed = ae.gaussian_kl(mu_demo, logvar_demo)
print("gradients through the sample as derived")
print("KL per row, closed form:", " ".join(f"{v:.4f}" for v in kl_closed.tolist()))
print("        Monte Carlo:     ", " ".join(f"{v:.4f}" for v in kl_mc.tolist()),
      f"(standard error at most {kl_se.max():.4f})")
assert ((kl_closed - kl_mc).abs() < 4 * kl_se).all()   # the closed form within 4 standard errors of the estimate

# %% [markdown]
# We train a VAE on the same digits, with the same budget and the same shape as the under-complete autoencoder of
# section 2 (784 → 256 → 32, plus the 32 log-variances; $\beta = 1$), once per seed in `SEEDS`. Its embedding is the
# **mean** $\mu(x)$: the noise is for training, and a retrieval system wants one deterministic point per image.

# %%
VAE_KW = dict(code_dim=32, hidden=(256,), beta=1.0)


def fit_vae(seed):
    def compute():
        runtime.seed_everything(seed)
        m = ae.VariationalAutoencoder(**VAE_KW)
        losses = ae.train_autoencoder(m, x_tr, epochs=EPOCHS, lr=2e-3, device=device, seed=seed)
        return {"state": {k: v.cpu() for k, v in m.state_dict().items()}, "losses": losses}

    r = cache.cached("l03-vae-mnist", dict(size=SIZE, n=len(x_tr), epochs=EPOCHS, kwargs=VAE_KW, seed=seed), compute)
    m = ae.VariationalAutoencoder(**VAE_KW)
    m.load_state_dict(r["state"])
    return m.to(device).eval()

vaes = [fit_vae(s) for s in SEEDS]
vae = vaes[0]                                                      # seed 0: the one that draws images below
vae_runs = [retrieval(models.embed(m, x_te), y_te) for m in vaes]     # model(x) is mu(x)
emb_quality["VAE (mean mu)"] = tuple(metrics.mean_sd([r[k] for r in vae_runs]) for k in range(2))
with torch.no_grad():
    mu_te, logvar_te = vae.encode_distribution(x_te.to(device))
    kl_te = ae.gaussian_kl(mu_te, logvar_te).mean().item()
rec_vae = metrics.mean_sd([ae.reconstruction_error(x_te, ae.reconstruct(m, x_te)) for m in vaes])
rec_under = metrics.mean_sd([ae.reconstruction_error(x_te, ae.reconstruct(m, x_te)) for m in aes_seeds["under-complete"]])
print(f"test reconstruction error over {len(SEEDS)} seeds: VAE {rec_vae[0]:.2f} ± {rec_vae[1]:.2f}, under-complete AE "
      f"{rec_under[0]:.2f} ± {rec_under[1]:.2f}; the VAE's mean KL to the prior (seed 0) {kl_te:.1f} nats\n")
print(f"{'code':<26}{'P@1':>15}{'MAP@R':>16}")
for k, q in emb_quality.items():
    print(f"{k:<26}" + "".join(f"{m:>9.3f} ± {sd:.3f}" for m, sd in q))
vq = emb_quality["VAE (mean mu)"]
for name in ("raw pixels", "under-complete", "denoising over-complete"):
    print(f"VAE against {name}: " + ", ".join(
        f"{measure} {vq[k][0] - emb_quality[name][k][0]:+.3f} ({verdict(vq[k], emb_quality[name][k])})"
        for k, measure in enumerate(MEASURES)))
assert metrics.clearly_above(rec_vae, rec_under)                  # claim: kl-costs
assert metrics.clearly_above(vq[1], emb_quality["raw pixels"][1])  # claim: vae-gathers-classes

# %% [markdown]
# The price of the KL term is visible in the reconstruction error, clearly above the plain autoencoder's over the
# seeds: the code carries less detail about each image. As an embedding, $\mu(x)$ gathers whole classes clearly
# better than raw pixels do (MAP@R, over the seeds); how it stands on P@1, and against the plain and the denoising
# autoencoders, is in the verdicts printed above, which is all one should read from them: a few seeds, one $\beta$,
# one training budget. None of these codes was told what a class is; that changes in lecture 04.
#
# What the KL term buys is a generator. Every $q(f \mid x)$ is pulled towards $\mathcal{N}(0, I)$ and the decoder is
# trained on noisy draws from them, so a code drawn from the prior lands where the decoder has been trained; a plain
# autoencoder's codes sit wherever training left them, and its decoder has no reason to make sense of a random one.
# Draws from the prior, decoded (expect blur: a squared-error decoder averages over what the code leaves open):

# %%
samples = ae.sample_from_prior(vae, 32, seed=0)
plots.image_grid(samples.view(-1, 28, 28).clamp(0, 1), ncols=8, size=1.0,
                 title="32 codes drawn from the prior N(0, I), decoded by the VAE");

# %% [markdown]
# ## Summary
#
# - An autoencoder learns a code $f(x) = E(x)$ by reconstruction alone: $\min \frac1b\sum_i \lVert x_i - D(E(x_i))\rVert^2
#   + \lambda\Omega$, with weight decay or a code penalty as $\Omega$. Each shrinks what it penalises, clearly over the
#   seeds and more so at ten times the strength, while every seed's reconstruction error stays within 10 % of the
#   unregularised one. <!-- claim: shrinks --> <!-- claim: stronger-shrinks-more --> <!-- claim: rec-unchanged -->
#   A code penalty on its own can be dodged: shrinking a linear code layer by some factor and growing the decoder's
#   first weights by its inverse leaves every reconstruction as it was, so the penalty goes with weight decay or a
#   bound on the decoder's weights. <!-- recap --> In our runs the strong code penalty indeed came with clearly larger
#   weights. <!-- claim: code-penalty-weights -->
# - **Over-complete** codes ($p > d$) can copy the input. We measured it over the seeds: a copy gain near 1 for every
#   seed, clearly the smallest reconstruction error on clothes a digit model never saw, and clearly the strongest
#   Jacobian diagonal of the three. <!-- claim: copy-gain --> <!-- claim: rebuilds-clothes -->
#   <!-- claim: jacobian-diagonal --> The copying code also retrieves clearly worse than raw pixels.
#   <!-- claim: copy-no-better --> A **denoising** autoencoder (noisy input, clean target) cannot get away with
#   copying, and its code retrieves clearly better than the copying one on P@1 and MAP@R.
#   <!-- claim: denoising-retrieves -->
# - A **linear** autoencoder, however many layers it has, is one matrix each way. At its optimum the decoder spans the
#   top-$p$ PCA subspace (every principal angle below 5°) and reconstructs within 1 % of PCA. <!-- claim: pca-subspace -->
#   It does not find the principal *axes*, since any invertible mixing of the code gives the same loss: its code
#   dimensions are correlated, and its decoder's columns are neither orthogonal nor of length 1. <!-- claim: mixing -->
#   Tying the weights and making them orthonormal still leaves every rotation <!-- claim: tied-rotation -->; PCA of the
#   reconstructions finds the axes, or the plane of two whose variances are nearly tied. <!-- claim: rec-pca-axes -->
# - Narrowing layers reduce the dimension. A widening layer lifts the data through its nonlinearity, not its width: a
#   wide random ReLU layer makes circles and XOR linearly separable, <!-- claim: lift-separates --> and the same
#   affine map without the ReLU leaves a linear classifier where it was in the plane. <!-- claim: width-alone --> That
#   layer is an explicit feature map; a kernel is the implicit version, and kernel PCA (PCA of the lifted data from the
#   kernel matrix alone) separates the circles too, on a few axes together rather than the top two.
#   <!-- claim: kernel-pca-separates -->
# - For retrieval, an autoencoder's code (after our short training) is no big improvement over PCA's: on MNIST it is
#   never clearly above PCA over the seeds (the printed verdicts say where it is below), and wherever it is ahead it closes less than 15 % of the gap between PCA's
#   score and a perfect one. Reconstruction is not the same objective as "similar things close". The following
#   lectures use labels (lecture 04) and pairs or triplets (lecture 05) to optimise the embedding for that directly.
#   <!-- claim: ae-vs-pca -->
# - A **VAE** encodes a Gaussian $q(f \mid x)$, samples it with the reparameterisation trick $f = \mu + \sigma\varepsilon$,
#   and pays $\beta\,\mathrm{KL}(q \,\|\, \mathcal{N}(0, I))$; its mean $\mu(x)$ is the embedding, and codes drawn
#   from the prior decode to images. Lecture 08 reuses the same KL. <!-- recap --> The KL term costs reconstruction,
#   and $\mu(x)$ still gathers classes clearly better than raw pixels (MAP@R, over the seeds). <!-- claim: kl-costs -->
#   <!-- claim: vae-gathers-classes -->
#
# ## Exercises
#
# Each exercise asks you to write a few lines in the cell below it; the `check(...)` at the end of the cell says
# ✓ (right), ✗ (and what looks wrong) or ○ (not attempted yet). Stuck? `hint("03.1")` gives a hint, and another
# one each time you call it. `show_solution("03.1")` prints the solution, and then the package's own code for it.
#
# 1. **Principal angles.** Write `my_angles(A, B)`: the principal angles, in degrees, between the column spaces of
#    `A` and `B`, without `dmlcourse.autoencoders`.
# 2. **Collapse the layers.** Write `my_collapse(weights)`: the single matrix that the stack of `nn.Linear` weights
#    `[W_1, W_2, ..., W_L]` computes (the first layer acts first).
# 3. **Predict, then explain: what must a 10-D linear code lose?** Section 3's linear autoencoder rebuilds the
#    centred digits `xc` from $p = 10$ numbers. Guess, before computing anything, what fraction of their variance it
#    loses: `err_ae` over the total variance of `xc` (0 = nothing lost, 1 = everything). Then explain that number:
#    write `my_floor(xc, p)`, the smallest mean squared error that *any* rank-$p$ linear map can reach on centred
#    data, computed from the eigenvalues of its covariance. The check tests it on random data, then applies it to
#    `xc` and sets your guess, the floor, `err_ae` and `err_pca` side by side.
# 4. **The VAE objective.** Write `my_vae_loss(x, mu, log_var, eps, decoder, beta)`: the objective of section 6 on one
#    batch, with the code drawn by the reparameterisation trick from the noise `eps` you are given, and the KL term in
#    closed form, without `dmlcourse.autoencoders`. The check compares its value *and* its gradients with respect to
#    `mu` and `log_var` with an independent version written with `torch.distributions`.
# 5. **Explore (no check).** Retrain the VAE of section 6 with `beta=0` and with `beta=4` (change `VAE_KW`). What
#    happens to the reconstruction error, the KL to the prior, the MAP@R of $\mu(x)$, and the images drawn from the
#    prior? Which $\beta$ would you pick for retrieval, and which for generation?

# %%
from dmlcourse.exercises import check, hint, show_solution

# %% exercise="03.1"
def my_angles(A, B):
    """Return the min(k, l) principal angles, in DEGREES, between the column spaces of A (d, k) and B (d, l)."""
    ### BEGIN SOLUTION
    qa, _ = torch.linalg.qr(A)
    qb, _ = torch.linalg.qr(B)
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))
    ### END SOLUTION


check("03.1", my_angles)

# %% exercise="03.2"
def my_collapse(weights):
    """Return the one matrix M with M x == W_L (... (W_2 (W_1 x))), for weights [W_1, ..., W_L] of shape (out, in)."""
    ### BEGIN SOLUTION
    m = weights[0]
    for w in weights[1:]:
        m = w @ m          # the next layer acts after: it goes on the left
    return m
    ### END SOLUTION


check("03.2", my_collapse)

# %% exercise="03.3"
my_prediction = None  # your guess: the fraction of the variance of xc that the linear autoencoder loses (0 to 1)
### BEGIN SOLUTION
my_prediction = 0.3   # a guess: any fraction from 0 to 1 is accepted
### END SOLUTION


def my_floor(xc, p):
    """Return the smallest mean squared reconstruction error of any rank-p linear map on the centred rows of xc
    (N, d), as one number, from the eigenvalues of their covariance."""
    ### BEGIN SOLUTION
    evals = torch.linalg.eigvalsh(xc.T @ xc / len(xc))      # ascending
    return evals[:-p].sum().item()                          # all but the p largest
    ### END SOLUTION


check("03.3", my_floor, my_prediction, err_ae, err_pca, xc, p)

# %% exercise="03.4"
def my_vae_loss(x, mu, log_var, eps, decoder, beta=1.0):
    """Return the mean over the batch of ||x_i - decoder(f_i)||^2 + beta * KL(N(mu_i, diag sigma_i^2) || N(0, I)),
    where f = mu + sigma * eps is the reparameterised sample and log_var = log sigma^2 (all tensors (N, p), x (N, d))."""
    ### BEGIN SOLUTION
    sigma = torch.exp(0.5 * log_var)
    f = mu + sigma * eps                         # the noise is an input: f is differentiable in mu and log_var
    squared_error = (x - decoder(f)).pow(2).sum(1)                        # summed over the pixels of each image
    kl = 0.5 * (mu.pow(2) + log_var.exp() - log_var - 1).sum(1)         # summed over the code dimensions
    return (squared_error + beta * kl).mean()                           # averaged over the batch
    ### END SOLUTION


check("03.4", my_vae_loss)

# %% [markdown]
# ### The package's versions
#
# Once you have done the exercises, here is the package's code for them. The principal angles take orthonormal bases
# from the SVD, so that a rank-deficient matrix is handled, and compute the small angles from their sines: $\arccos$
# of a number close to 1 loses most of its digits. The unit tests check it against `scipy.linalg.subspace_angles`.

# %%
show(ae.principal_angles)
show(ae.reparameterize)
show(ae.gaussian_kl)
