# %% [markdown]
# # 04 · Supervised losses give an embedding: MSE, MAE, Huber, KL, hinge, cross-entropy
#
# Lecture 03 learned an embedding without labels, and its code retrieved roughly as well as PCA's, not clearly
# better. Now we *use* the labels, in the simplest possible way: train a classifier. The classifier's **last**
# layer makes the decision, and the layer **before** it (the penultimate layer) is a learned representation. We
# use it as the embedding.
#
# Which loss trains the classifier matters a great deal for the embedding. In this notebook you will:
# 1. build the network: backbone → embedding $f(x) \in \mathbb{R}^p$ → last layer $f_o(x)$;
# 2. write each loss of the Guelph slides from its formula, check it against PyTorch, and plot it;
# 3. train with each loss on the same data and compare the embeddings honestly (Precision@1, MAP@R, UMAP). This
#    includes the slides' single-output regression set-up and the two-class hinge. Cross-entropy, KL and the three
#    regressions are trained with three seeds and compared over them; the UMAP pictures, the two-class hinge and
#    the 2-D run of step 4 are single runs, and the text says so where it uses them;
# 4. look at a 2-D penultimate layer trained with cross-entropy: **separable**, but not **compact**.

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
from torch.nn import functional as F
from dmlcourse import cache, supervised
from dmlcourse.listing import show

TRAIN_PER_CLASS = runtime.quick(None, 300)   # None = every training image of SIZE
TEST_PER_CLASS = runtime.quick(200, 100)
EPOCHS = runtime.quick(10, 5)
DATASETS = runtime.quick(["mnist", "fashion-mnist"], ["mnist"])
EMB = 32


def split(dataset):
    tr, te = data.load(dataset, "train", SIZE), data.load(dataset, "test", SIZE)
    keep = data.balanced_subset(tr.labels, TRAIN_PER_CLASS) if TRAIN_PER_CLASS else torch.arange(len(tr.labels))
    tkeep = data.balanced_subset(te.labels, TEST_PER_CLASS)
    return tr.images[keep], tr.labels[keep], te.images[tkeep], te.labels[tkeep]


# %% [markdown]
# ## 1. The classifier and its embedding
#
# The backbone can be any network, fully connected or convolutional. We use `models.MLP` (784 → 256 → $p$ = 32). Its
# output is the embedding $f(x)$. One fully connected layer maps $f(x)$ to the output $f_o(x)$: $c$ numbers for
# cross-entropy, or a **single** number for the Guelph slides' regression set-up. `SupervisedLoss` holds that last layer
# and the loss. The training loop (`train.train`) therefore trains both, and it evaluates and embeds with the backbone
# alone. Retrieval uses the embedding, never the outputs.

# %%
show(supervised.SupervisedLoss.forward)
show(supervised.Classifier)

# %% [markdown]
# ## 2. The losses, from their formulas
#
# Write $r = f_o(x) - y$ for the residual of a single-output network. A network with $c$ outputs gives $c$ raw scores
# $z = f_o(x) \in \mathbb{R}^c$, one per class, before any softmax: they are called the **logits**, and the softmax
# turns them into the predicted probabilities $q = \operatorname{softmax}(z)$. The Guelph slides sum each loss over
# the mini-batch (their eqs. 4 to 9); we average, which only rescales it.
#
# | loss | per sample | behaviour |
# |---|---|---|
# | MSE | $r^2$ | smooth; large residuals (outliers) dominate |
# | MAE | $\lvert r \rvert$ | robust to outliers; the gradient is $\pm 1$ everywhere, with a kink at 0 |
# | Huber ($\delta$) | $\tfrac12 r^2$ if $\lvert r\rvert \le \delta$, else $\delta(\lvert r\rvert - \tfrac12\delta)$ | MSE near 0, MAE far away; value and slope continuous |
# | hinge ($m$), $y \in \{-1, +1\}$ | $[m - y\, f_o(x)]_+$ | zero once the sign is right **with margin** $m$ |
# | cross-entropy, $c$ outputs | $-\log \operatorname{softmax}(f_o(x))_y$ | never exactly zero; keeps pushing the true class up |
# | KL divergence | $\sum_l t_l \log(t_l / q_l)$ | compares the predicted distribution $q$ with a target distribution $t$ |
#
# Three remarks where the Guelph slides are loose:
#
# * ⚠️ **MAE is not differentiable at 0**, and frameworks do *not* compute derivatives numerically. Autograd computes
#   exact derivatives and uses a *subgradient* at the kink: $\operatorname{sign}(0) = 0$ in PyTorch. The tests check
#   that our MAE gives the same gradient as `F.l1_loss`.
# * ⚠️ **The direction of KL.** The slides' eq. 7 is $\mathrm{KL}(\text{prediction} \,\|\, \text{label})$
#   $= \sum f \log(f/y)$. With one-hot labels, $y_l = 0$ for every wrong class while the softmax output is never 0,
#   so this is $+\infty$. The usable direction is $\mathrm{KL}(t \,\|\, q)$ with the target $t$ first (it is
#   `F.kl_div`'s, which takes the log-probabilities first and the target second: `F.kl_div(log q, t)`). With a
#   one-hot $t$ it equals cross-entropy exactly. It only differs when the targets are soft, for example smoothed
#   labels, or the probabilities predicted by another, already trained network (*distillation*: a second network
#   learns to match them). Even then
#   $\mathrm{KL}(t \,\|\, q) = -\sum_l t_l \log q_l - H(t)$, where the entropy $H(t)$ of the targets does not depend
#   on the network: KL against smoothed labels is cross-entropy with **label smoothing** minus a constant, so it has
#   the same gradient and trains the same network (the cell below checks both against PyTorch's
#   `label_smoothing`).
# * ⚠️ **MAE does not make the embedding sparse**, although the slides credit it with that. The absolute value sits
#   on the *residual* $r$, so what it favours is sparse *errors*: many residuals fitted exactly and a few left large,
#   which is why it is robust to outliers. Nothing in it acts on the embedding. Sparse codes come from an $\ell_1$
#   *penalty on the code*, $\lambda \sum_i \lVert f(x_i) \rVert_1$ (the sparse autoencoder that lecture 03 mentions).
#
# Each loss is a line or two of `dmlcourse.supervised`; here are MAE and the formula part of KL. Huber, the hinge
# and cross-entropy are exercises 1 to 3 at the end of the notebook, so their code is printed only by
# `show_solution`, after you have written your own.

# %%
show(supervised.mae_loss)
show(supervised.kl_divergence, "formula")

# %%
g = torch.Generator().manual_seed(0)
pred, target = 3 * torch.randn(1000, generator=g), torch.randn(1000, generator=g)
logits, labels = 4 * torch.randn(1000, 10, generator=g), torch.randint(0, 10, (1000,), generator=g)
y_pm = 2 * torch.randint(0, 2, (1000,), generator=g) - 1
soft = supervised.smooth_labels(labels, 10, 0.1)
checks = {
    "MSE vs F.mse_loss": (supervised.mse_loss(pred, target), F.mse_loss(pred, target)),
    "MAE vs F.l1_loss": (supervised.mae_loss(pred, target), F.l1_loss(pred, target)),
    "Huber vs F.huber_loss": (supervised.huber_loss(pred, target, 0.5), F.huber_loss(pred, target, delta=0.5)),
    "cross-entropy vs F.cross_entropy": (supervised.cross_entropy(logits, labels), F.cross_entropy(logits, labels)),
    "KL vs F.kl_div": (supervised.kl_divergence(logits, soft),
                       F.kl_div(F.log_softmax(logits, 1), soft, reduction="batchmean")),
    "hinge vs 2 x F.multi_margin_loss": (supervised.hinge_loss(pred, y_pm, 1.0),
                                         2 * F.multi_margin_loss(torch.stack([-pred / 2, pred / 2], 1), (y_pm + 1) // 2)),
}
for name, (ours, ref) in checks.items():
    print(f"{name:<36} ours {ours.item():.6f}   PyTorch {ref.item():.6f}")
    assert abs(ours.item() - ref.item()) < 1e-5 * max(1.0, abs(ref.item()))  # claim: matches-pytorch
smooth_l1 = F.smooth_l1_loss(pred, target, beta=0.5)
print(f"F.smooth_l1_loss with beta = 0.5: {smooth_l1.item():.6f} = Huber / 0.5")
# claim: matches-pytorch
assert abs(smooth_l1.item() * 0.5 - F.huber_loss(pred, target, delta=0.5).item()) < 1e-5
one_hot = F.one_hot(labels, 10).float()
# claim: kl-direction
assert abs(supervised.kl_divergence(logits, one_hot).item() - F.cross_entropy(logits, labels).item()) < 1e-4
reverse = (torch.softmax(logits, 1) * (torch.log_softmax(logits, 1) - torch.log(one_hot))).sum(1).mean()
print(f"KL(one-hot || q) = cross-entropy = {F.cross_entropy(logits, labels):.4f};  "
      f"the Guelph slides' KL(q || one-hot) = {reverse}")
assert torch.isinf(reverse)  # claim: kl-direction
# KL against smoothed labels = cross-entropy with label smoothing - H(t): same value up to a constant, same gradient
z_kl, z_ls = logits.clone().requires_grad_(), logits.clone().requires_grad_()
kl_smooth = supervised.kl_divergence(z_kl, soft)
ce_smooth = F.cross_entropy(z_ls, labels, label_smoothing=0.1)
entropy = -(soft * soft.log()).sum(1).mean()
(grad_kl,), (grad_ls,) = torch.autograd.grad(kl_smooth, z_kl), torch.autograd.grad(ce_smooth, z_ls)
print(f"KL(smoothed || q) = {kl_smooth:.6f};  F.cross_entropy(label_smoothing=0.1) - H(t) = {ce_smooth:.6f} - "
      f"{entropy:.6f} = {ce_smooth - entropy:.6f};  largest gradient difference {(grad_kl - grad_ls).abs().max():.1e}")
assert abs(kl_smooth.item() - (ce_smooth - entropy).item()) < 1e-5  # claim: kl-smoothing
assert torch.allclose(grad_kl, grad_ls, atol=1e-6)  # claim: kl-smoothing

# %% [markdown]
# PyTorch has no two-class hinge with labels $\pm 1$ under that name. `F.hinge_embedding_loss` is a different loss,
# for distances. The multi-class margin loss with the two logits $(-f/2, f/2)$ reduces to it, up to the factor 2
# (it averages over the classes). Cross-entropy with two classes, as a function of the logit margin
# $z_y - z_{\text{other}}$, is $\log(1 + e^{-\text{margin}})$, a smooth cousin of the hinge. Here are the losses and their
# gradients (autograd):

# %%
fig = supervised.plot_losses(delta=1.0, margin=1.0)

# %% [markdown]
# Read the right panel. MSE's gradient grows with the residual, so one far-off sample can dominate a batch. MAE and the
# hinge push with a constant force. The hinge stops completely once the margin is reached, while cross-entropy never
# quite stops.
#
# ## 3. Train with each loss, compare the embeddings
#
# The same backbone, data, epochs and learning rate for every loss:
#
# * **cross-entropy** over $c = 10$ outputs;
# * **KL** over 10 outputs against *smoothed* labels (`supervised.smooth_labels` with smoothing 0.1: a tenth of the
#   probability spread evenly over all ten classes, the rest on the true class). As section 2 showed, this is
#   cross-entropy with label smoothing, and with one-hot targets it would be plain cross-entropy again, so this row
#   measures what label smoothing does;
# * **MSE, MAE, Huber** with **one output neuron** that predicts the class index $0, 1, \dots, 9$ as a number. This is
#   the Guelph slides' single-output set-up.
#
# **Why several seeds.** A trained network depends on random draws: its initial weights and the order of its
# mini-batches, both fixed by the seed. Train the same loss on the same data with another seed and every figure of
# the table moves a little, so a gap between two losses seen in one run may be nothing but the luck of that run's
# draws. The course therefore trains each model it compares once per seed in `SEEDS` (here three), summarises each
# measure by its mean and standard deviation over the seeds (`metrics.mean_sd`), and counts a difference only when
# the gap between the two means is larger than the two standard deviations added (`metrics.clearly_above`): the
# two ranges mean ± sd must not even touch. This is a rule of thumb, not a significance test. Three seeds give only
# a rough standard deviation, which is why the rule asks for a wide gap. A model without a seed, such as the raw
# pixels, has a spread of 0. Lectures 01 to 03 already use this rule; lectures 05 to 07 compare losses, miners and
# heads with it.
#
# The first table below gives one run (seed 0) per loss, the second the mean ± sd over the three seeds for
# cross-entropy, KL and the three regressions, and the cell then prints how far seed 0 alone strayed from its
# three-seed mean. Runs are cached: running the notebook again loads them.

# %%
LOSSES = ["cross_entropy", "kl", "mse", "mae", "huber"]


def run(loss, dataset, emb=EMB, hidden=(256,), classes=None, epochs=EPOCHS, seed=0, **kwargs):
    config = dict(loss=loss, dataset=dataset, size=SIZE, emb=emb, hidden=hidden, classes=classes, epochs=epochs,
                  train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS, kwargs=kwargs, seed=seed)

    def compute():
        x, y, xt, yt = split(dataset)
        if classes is not None:                         # the two-class set-up: keep two classes, labels 0 / 1
            idx, y = supervised.two_class_subset(y, classes)
            x = x[idx]
            tidx, yt = supervised.two_class_subset(yt, classes)
            xt = xt[tidx]
        runtime.seed_everything(seed)
        backbone = models.MLP(emb, hidden=hidden)
        head = supervised.SupervisedLoss(loss, emb, 2 if classes else 10, **kwargs)
        hist = train.train(backbone, head, x, y, epochs=epochs, batch_size=128, lr=2e-3, name=dataset,
                           device=device, seed=seed, progress=True)
        z = models.embed(backbone, xt, name=dataset, device=device)
        with torch.no_grad():
            outputs = head.head.to(z.device)(z)
            acc = (head.predict(z) == yt).float().mean().item()
        return {"history": hist, "z": z, "labels": yt, "outputs": outputs, "accuracy": acc,
                "p1": metrics.precision_at_1(z, yt), "map_r": metrics.map_at_r(z, yt)}

    name = f"l04-{loss}-{dataset}-{emb}" + (f"-{classes[0]}v{classes[1]}" if classes else "") + (
        f"-seed{seed}" if seed else "")
    return cache.cached(name, config, compute)


results = {(l, d): run(l, d) for d in DATASETS for l in LOSSES}

# one run is one draw: cross-entropy, KL and the three regressions again with two more seeds, for the comparisons
SEEDS = [0, 1, 2]
REGRESSION = ["mse", "mae", "huber"]
SEEDED = ["cross_entropy", "kl"] + REGRESSION
repeats = {(l, d, seed): results[l, d] if seed == 0 else run(l, d, seed=seed)
           for d in DATASETS for l in SEEDED for seed in SEEDS}

# %%
raw = {}
for d in DATASETS:
    xt, yt = split(d)[2:]
    xf = data.to_float(xt).flatten(1)
    raw[d] = (metrics.precision_at_1(xf, yt), metrics.map_at_r(xf, yt))

header = "".join(f"{d + ' acc.':>20}{'P@1':>7}{'MAP@R':>7}" for d in DATASETS)
print(f"{'loss':<26}{header}")
print(f"{'raw pixels':<26}" + "".join(f"{'':>20}{raw[d][0]:>7.3f}{raw[d][1]:>7.3f}" for d in DATASETS))
names = {"cross_entropy": "cross-entropy (10 out)", "kl": "KL, smoothed (10 out)",
         "mse": "MSE (1 output)", "mae": "MAE (1 output)", "huber": "Huber (1 output)"}
for l in LOSSES:
    print(f"{names[l]:<26}" + "".join(
        f"{results[l, d]['accuracy']:>20.3f}{results[l, d]['p1']:>7.3f}{results[l, d]['map_r']:>7.3f}" for d in DATASETS))

KEYS = {"accuracy": "acc.", "p1": "P@1", "map_r": "MAP@R"}
seeded = {(l, d, k): metrics.mean_sd([repeats[l, d, seed][k] for seed in SEEDS])
          for d in DATASETS for l in SEEDED for k in KEYS}
print(f"\nmean ± sd over {len(SEEDS)} seeds\n{'loss':<40}" + "".join(f"{v:>17}" for v in KEYS.values()))
for d in DATASETS:
    for l in SEEDED:
        print(f"{d + ', ' + names[l]:<40}" + "".join(
            f"{seeded[l, d, k][0]:>9.3f} ± {seeded[l, d, k][1]:.3f}" for k in KEYS))
    for l in REGRESSION:
        for k in KEYS:   # cross-entropy ahead on every measure by more than the two spreads together
            assert metrics.clearly_above(seeded["cross_entropy", d, k], seeded[l, d, k]), (l, d, k)  # claim: ce-wins
    # the penultimate layer retrieves far better than the pixels: MAP@R higher by over 0.1, beyond the seed spread
    assert metrics.clearly_above(seeded["cross_entropy", d, "map_r"], (raw[d][1] + 0.1, 0.0)), d  # claim: embedding
    # ... while its Precision@1 gains less than a quarter as much over the pixels
    gain_p1, gain_map = seeded["cross_entropy", d, "p1"][0] - raw[d][0], seeded["cross_entropy", d, "map_r"][0] - raw[d][1]
    print(f"{d}: cross-entropy over the raw pixels, MAP@R +{gain_map:.3f}, P@1 {gain_p1:+.3f}")
    assert gain_p1 < gain_map / 4, d  # claim: embedding
    # label smoothing (the KL row) retrieves better than plain cross-entropy, beyond the seed noise
    assert metrics.clearly_above(seeded["kl", d, "map_r"], seeded["cross_entropy", d, "map_r"]), d  # claim: smoothing
# on MNIST each regression's nearest neighbour is right less often than a nearest neighbour in pixel space
d0 = DATASETS[0]
for l in REGRESSION:
    assert metrics.clearly_above((raw[d0][0], 0.0), seeded[l, d0, "p1"]), l  # claim: regression-p1

# how far one run strays: the seed-0 figure furthest from its three-seed mean
l, d, k = max(seeded, key=lambda key: abs(repeats[key[0], key[1], 0][key[2]] - seeded[key][0]))
print(f"\nfurthest from its mean: {d}, {names[l]}, {KEYS[k]}: seed 0 gave {repeats[l, d, 0][k]:.3f}, the "
      f"{len(SEEDS)} seeds {seeded[l, d, k][0]:.3f} ± {seeded[l, d, k][1]:.3f}")


# %% [markdown]
# **Reading the tables.** The first row is the baseline: nearest neighbours on the raw pixels (no training, so no
# seed). Cross-entropy's penultimate layer beats it by far on MAP@R, which scores the whole ranking of a query's
# class, but its gain on Precision@1, which only asks whether the single nearest neighbour has the right class, is
# less than a quarter as large: on these images a neighbour in pixel space is already often right (the cell prints
# both gains). On MNIST the single-output regressions even have a *lower* Precision@1 than the raw pixels, beyond
# the seed noise: the nearest neighbour in their embedding has the right class less often than the nearest
# neighbour in pixel space.
#
# The KL row is label smoothing, and it retrieves better than plain cross-entropy by MAP@R, beyond the seed noise
# (the tables also show its accuracy and Precision@1, which this notebook does not compare). With smoothed targets
# the best logits are finite: the network gains nothing by making the true class's logit ever larger than the
# others. Müller, Kornblith and Hinton (*When does label smoothing help?*, NeurIPS 2019) found that this draws the
# penultimate-layer embeddings of each class into tighter clusters.
#
# **Why is single-output regression a poor embedding?** The last layer is a single dot product $w^\top f(x) + b$.
# The only thing the loss rewards is moving $f(x)$ along the one direction $w$, to the position of the class index.
# Two consequences:
#
# * it invents an **order and a distance between classes**: a "4" must lie between a "3" and a "5", and a "0" far
#   from a "9". Think of an image that is a 4 or a 9 with even odds. The single output with the lowest expected
#   MSE is the **mean** of the two labels, halfway between them and as close to a 6 as to a 7: digits the image does
#   not resemble. For MAE every **median** of the two labels is optimal, that is, any output from 4 to 9: the
#   loss does not prefer the two right answers to the digits between them. (Cross-entropy can simply give each of
#   the two classes half the probability.) The cell below prints both optima, then looks for the effect in the
#   trained networks. A rounded output lands on a neighbouring index now and then anyway, so counting 4s and 9s
#   labelled 5 to 8 would not tell this effect from ordinary scatter. Instead we compare the five pairs of classes
#   that are five indices apart, (0, 5), (1, 6), (2, 7), (3, 8) and (4, 9). For each pair we count how often the
#   network labels one of its test images with one of the two digits next to the pair's midpoint (6 or 7 for the
#   pair 4 and 9), and, as a measure of how alike the two digits look, how often cross-entropy labels an image of
#   one as the other. If the regressions place look-alike images between their two classes, the 4s and 9s must
#   land next to their midpoint more often than the pairs (0, 5), (1, 6) and (2, 7), whose digits cross-entropy
#   mixes up less often;
# * the embedding has little reason to use its other 31 dimensions. We measure the share of the variance along the
#   first principal direction of the test embedding, and whether the class means, projected on that direction, come
#   in the order of the class index. For the order we use Spearman's rank correlation: rank the ten projected means,
#   and correlate the ranks with the indices 0 to 9. It is 1 when the means come exactly in index order, and near 0
#   when their order has nothing to do with the index. We take its absolute value, since the sign of a principal
#   direction is arbitrary.
#
# With $c$ outputs and cross-entropy, each class has its own direction and no order among classes is assumed. Every
# comparison below is on MNIST (`d0`), over the three seeds of section 3, by the rule of `metrics.clearly_above`.

# %%
# the expected loss of one output c for a label that is 4 or 9 with even odds
c = torch.linspace(0, 9, 901)
mse_c = 0.5 * (c - 4) ** 2 + 0.5 * (c - 9) ** 2
mae_c = 0.5 * (c - 4).abs() + 0.5 * (c - 9).abs()
flat = c[mae_c <= mae_c.min() + 1e-4]
print(f"expected MSE is lowest at c = {c[mse_c.argmin()]:.2f}; expected MAE is lowest on all of "
      f"[{flat.min():.2f}, {flat.max():.2f}]\n")


def predicted_class(r):
    out = r["outputs"]
    return out.argmax(1) if out.shape[1] > 1 else out[:, 0].round().clamp(0, 9).long()


PAIRS = [(a, a + 5) for a in range(5)]   # (0, 5), (1, 6), (2, 7), (3, 8), (4, 9): five indices apart
CONTROL = PAIRS[:3]                       # (0, 5), (1, 6), (2, 7), pooled


def pair_share(r, pairs, hit):
    """The share of the test images of the classes in `pairs` for which `hit(y, pred, a, b)` holds."""
    y, pred = r["labels"], predicted_class(r)
    mine, hits = torch.zeros_like(y, dtype=torch.bool), torch.zeros_like(y, dtype=torch.bool)
    for a, b in pairs:
        pair = (y == a) | (y == b)
        mine |= pair
        hits |= pair & hit(y, pred, a, b)
    return hits[mine].float().mean().item()


def next_to_midpoint(y, pred, a, b):   # labelled with a digit next to (a + b) / 2: 6 or 7 for the pair 4 and 9
    return (pred == (a + b) // 2) | (pred == (a + b + 1) // 2)


def mixed_up(y, pred, a, b):   # an image of a labelled b, or of b labelled a
    return ((y == a) & (pred == b)) | ((y == b) & (pred == a))


def top_pc_share(z):
    zc = z - z.mean(0)
    axis = torch.linalg.svd(zc, full_matrices=False).Vh[0]
    return ((zc @ axis) ** 2).sum().item() / (zc**2).sum().item()


def index_order(r):
    """|Spearman correlation| between the class index and the class means projected on the first principal axis."""
    z, y = r["z"], r["labels"]
    axis = torch.linalg.svd(z - z.mean(0), full_matrices=False).Vh[0]
    position = torch.stack([z[y == k].mean(0) for k in range(10)]) @ axis
    ranks = position.argsort().argsort().double()
    return abs(torch.corrcoef(torch.stack([ranks, torch.arange(10.0, dtype=torch.float64)]))[0, 1].item())


GROUPS = {f"({a}, {b})": [(a, b)] for a, b in PAIRS} | {"(0, 5) + (1, 6) + (2, 7)": CONTROL}
mixing = {g: metrics.mean_sd([pair_share(repeats["cross_entropy", d0, seed], prs, mixed_up) for seed in SEEDS])
          for g, prs in GROUPS.items()}
middle = {(l, g): metrics.mean_sd([pair_share(repeats[l, d0, seed], prs, next_to_midpoint) for seed in SEEDS])
          for l in ["cross_entropy"] + REGRESSION for g, prs in GROUPS.items()}
print(f"{d0}, mean ± sd over {len(SEEDS)} seeds: the share of each pair's test images that cross-entropy labels as the "
      f"other digit of the pair,\nand the share that each network labels with a digit next to the pair's midpoint")
short = {"cross_entropy": "CE", "mse": "MSE", "mae": "MAE", "huber": "Huber"}
print(f"{'pair':<26}{'CE: other digit':>22}" + "".join(f"{short[l] + ': midpoint':>22}"
                                                     for l in ["cross_entropy"] + REGRESSION))
for g in GROUPS:
    print(f"{g:<26}{mixing[g][0]:>14.3f} ± {mixing[g][1]:.3f}" + "".join(
        f"{middle[l, g][0]:>14.3f} ± {middle[l, g][1]:.3f}" for l in ["cross_entropy"] + REGRESSION))
# cross-entropy mixes up 4 and 9 more often than the three control pairs: the two digits look more alike
assert metrics.clearly_above(mixing["(4, 9)"], mixing["(0, 5) + (1, 6) + (2, 7)"])  # claim: in-between
for l in REGRESSION:   # the regressions put 4s and 9s next to the midpoint more than the controls, and more than CE
    assert metrics.clearly_above(middle[l, "(4, 9)"], middle[l, "(0, 5) + (1, 6) + (2, 7)"]), l  # claim: in-between
    assert metrics.clearly_above(middle[l, "(4, 9)"], middle["cross_entropy", "(4, 9)"]), l  # claim: in-between

fig, axes = plt.subplots(1, 2, figsize=(10, 3.3))
for ax, l in zip(axes, ("mse", "cross_entropy")):
    r = results[l, d0]
    out = r["outputs"][:, 0] if l == "mse" else r["outputs"].argmax(1).float() + 0.3 * torch.rand(len(r["labels"]))
    ax.scatter(r["labels"] + 0.3 * torch.rand(len(r["labels"])), out, s=3, alpha=0.5)
    ax.plot([0, 9], [0, 9], "k--", lw=0.8)
    ax.set(xlabel="true class", ylabel="predicted class index" if l == "mse" else "argmax class (jittered)",
           title=f"{names[l]}, {d0}")
fig.tight_layout()

# %% [markdown]
# The figure (seed 0) plots the MSE network's output for each test image against the image's class, jittered
# sideways so that the points do not hide each other, with cross-entropy's predicted class beside it. The MSE outputs
# of each class are smeared up and down around its index. That is why the regressions' accuracy in section 3 is
# poor: rounding counts an image as right only when its output lands within 0.5 of its index. A smear alone would
# put some images of any pair next to its midpoint, which is why the table compares pairs. Over the three seeds,
# cross-entropy mixes up 4 and 9 more often than the pooled pairs (0, 5), (1, 6) and (2, 7), and each regression
# labels the 4s and 9s with a 6 or a 7 more often than it labels the images of those pairs with a digit next to
# their midpoints, and more often than cross-entropy does, all beyond the seed noise. This is what the thought
# experiment predicts: an image that could be either digit gets an output between the two, and on the one axis the
# way from 4 to 9 passes through 5 to 8. (The pair 3 and 8 is printed too, for you to read.)
#
# Next, the second consequence: how much of each embedding lies along one direction, and whether the class means
# come in index order along it.

# %%
measures = {"variance on axis 1": lambda r: top_pc_share(r["z"]), "means in index order": index_order}
per_seed = {(l, m): metrics.mean_sd([fn(repeats[l, d0, seed]) for seed in SEEDS])
            for l in ["cross_entropy"] + REGRESSION for m, fn in measures.items()}
print(f"\n{d0}, mean ± sd over {len(SEEDS)} seeds\n{'loss':<26}" + "".join(f"{m:>25}" for m in measures))
for l in ["cross_entropy"] + REGRESSION:
    print(f"{names[l]:<26}" + "".join(f"{per_seed[l, m][0]:>17.2f} ± {per_seed[l, m][1]:.2f}" for m in measures))
for l in REGRESSION:   # each regression above cross-entropy by more than the two seed spreads together
    above = {m: metrics.clearly_above(per_seed[l, m], per_seed["cross_entropy", m]) for m in measures}
    assert above["variance on axis 1"] and above["means in index order"], l  # claim: one-direction

# %%
fig, axes = plt.subplots(len(DATASETS), len(LOSSES), figsize=(3.3 * len(LOSSES), 3.6 * len(DATASETS)), squeeze=False)
for row, d in enumerate(DATASETS):
    for col, l in enumerate(LOSSES):
        r = results[l, d]
        plots.scatter_2d(plots.project_2d(r["z"], seed=0, cache=True), r["labels"], ax=axes[row, col],
                         class_names=data.CLASS_NAMES[d], s=3,
                         title=f"{names[l]}\nP@1 {r['p1']:.2f}, MAP@R {r['map_r']:.2f}")
    axes[row, 0].set_ylabel(d, fontsize=12)
    axes[row, -1].legend(markerscale=5, fontsize=9, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
fig.suptitle("UMAP of the penultimate-layer embeddings (test set, seed 0)")
fig.tight_layout()

# %% [markdown]
# On MNIST (the first row), the regression embeddings are stretched along a path on which the classes follow their
# *index* roughly, neighbouring indices blending into each other: the picture of the order measured above along
# the first principal axis. The cross-entropy and KL embeddings break up into islands instead, each holding one
# digit or a few. In full mode a second row shows Fashion-MNIST, whose measures of order were not computed: read it
# for yourself, remembering that the index order of clothes (T-shirt 0, Trouser 1, ..., Ankle boot 9) is an
# arbitrary one. Each panel is one run (seed 0), and a UMAP layout also depends on UMAP's own random start, so judge
# shapes, not distances between islands.
#
# ### The two-class hinge
# The hinge needs labels $\pm 1$, so it is a two-class loss. We keep only the digits 3 and 5 (which are easy to
# confuse), train a single output with the hinge ($m = 1$), and train two-output cross-entropy on the same subset
# beside it. Both classify the pair well and retrieve it well (accuracy and Precision@1 above 0.9, asserted). One
# run each, on a few hundred test images, is too little to rank the two, and this notebook does not. The histogram
# shows what the hinge does with its margin: most test points end up beyond it, where the loss and its gradient
# are exactly zero. Do not read much into the size of $m = 1$ itself. Nothing bounds the scale of the output (the
# training uses no weight decay): scaling up the last layer's weights and bias multiplies every output, which can
# move each correctly classified point past the margin without changing a single decision. The cell prints the
# largest $y\,f(x)$ to show how far out the points go. A margin only means something once the scale is fixed, which
# is what the normalised embeddings of lecture 07 do.

# %%
two = {l: run(l, DATASETS[0], classes=(3, 5)) for l in ("hinge", "cross_entropy")}
for l, r in two.items():
    print(f"{l:<14} 3 vs 5: accuracy {r['accuracy']:.3f}, P@1 {r['p1']:.3f}, MAP@R {r['map_r']:.3f}")
    assert r["accuracy"] > 0.9 and r["p1"] > 0.9  # claim: two-class

r = two["hinge"]
margins = (2 * r["labels"] - 1) * r["outputs"][:, 0]
plt.figure(figsize=(6, 3))
plt.hist(margins.numpy(), bins=60, color="#9467bd")
plt.axvline(0, color="k", lw=0.8)
plt.axvline(1, color="r", ls="--", label="margin m = 1: no loss to the right")
plt.xlabel("y f(x) on the test set"); plt.ylabel("count")
plt.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))   # above the bars, not on them
plt.tight_layout()
print(f"test points beyond the margin: {(margins >= 1).float().mean():.2f}, misclassified: "
      f"{(margins < 0).float().mean():.3f}; largest y f(x): {margins.max():.1f}")
assert (margins >= 1).float().mean() > 0.5  # claim: two-class

# %% [markdown]
# ## 4. Separable is not the same as compact
#
# Give the penultimate layer **two** dimensions and we can look at it directly. The backbone is 784 → 256 → 64 → 2, and
# the classifier is the usual linear layer to 10 logits with cross-entropy. This is one run (seed 0), so what
# follows describes this network; the asserts check that it holds for the run on your machine.
#
# Two words for what we look for. The classes are **separable** when a simple (here linear) classifier tells them
# apart. They are **compact** when each class sits close together, so that the nearest neighbours of an image are
# of its own class. The Guelph slides call the cross-entropy embedding *discriminating*, without separating the two.
# Wen et al. (*A discriminative feature learning approach for deep face recognition*, ECCV 2016, the paper of the
# center loss) drew this same kind of 2-D picture of softmax features on MNIST. For them *discriminative* means both
# at once, and they found such features separable but not discriminative enough.

# %%
r2 = run("cross_entropy", DATASETS[0], emb=2, hidden=(256, 64), epochs=2 * EPOCHS)
z2, y2 = r2["z"], r2["labels"]
radius = z2.norm(dim=1)
stretch = torch.stack([radius[y2 == k].quantile(0.9) / radius[y2 == k].quantile(0.1) for k in range(10)])
dist = torch.cdist(z2, z2).fill_diagonal_(float("inf"))
wrong = (y2[dist.argmin(1)] != y2).float()              # leave-one-out nearest neighbour within the test set
inner, outer = radius <= radius.quantile(0.25), radius >= radius.quantile(0.75)
print(f"accuracy of the linear last layer {r2['accuracy']:.3f}")
print("90th / 10th percentile of the radius within each class: "
      + ", ".join(f"{k}: {v:.1f}" for k, v in enumerate(stretch.tolist())) + f"; median {stretch.median():.1f}")
print(f"nearest neighbour of ANOTHER class: {wrong[inner].mean():.2f} of the quarter of test points nearest the "
      f"origin, {wrong[outer].mean():.2f} of the quarter furthest out")

fig, ax = plt.subplots(figsize=(6.5, 6))
plots.scatter_2d(z2, y2, ax=ax, class_names=data.CLASS_NAMES[DATASETS[0]], s=4,
                 title=f"2-D penultimate layer, cross-entropy ({DATASETS[0]} test)")
lim = float(z2.abs().max())
ax.set_xlim(-lim, lim); ax.set_ylim(-lim, lim); ax.set_aspect("equal")
ax.axhline(0, color="k", lw=0.4); ax.axvline(0, color="k", lw=0.4)
ax.legend(markerscale=4, fontsize=9, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
fig.tight_layout()

assert r2["accuracy"] > 0.8                            # claim: wedges (separable: a linear layer classifies well)
assert stretch.median() > 2                            # claim: wedges (a class stretches along its ray)
assert wrong[inner].mean() > 5 * wrong[outer].mean()   # claim: wedges (not compact: neighbours mix near 0)

# %% [markdown]
# The classes fan out as **wedges from the origin**. With a linear last layer, the logit of class $j$ is
# $W_j^\top f(x) + b_j$. Making a sample *more* confidently "class $j$" is easiest by moving it further out along
# $W_j$, so each class stretches along its ray: in this run, in the median class, the 90th percentile of the
# distance to the origin is more than twice the 10th (the cell prints the ratio of every class). The classes are
# **separable**: the linear last layer classifies more than 0.8 of the test images correctly from two numbers. They
# are not **compact**: near the origin, where the wedges meet, images of different digits lie close together. The
# nearest neighbour of a test point there belongs to another class more than five times as often as out along the
# rays (the two shares printed above). For nearest-neighbour retrieval, compactness is what matters.
#
# Two fixes, both later in the course:
# * **lecture 05** trains on distances directly: pull same-class pairs together and push different-class pairs
#   apart by a margin. That makes the classes compact;
# * **lecture 07** (angular margins) normalises the embeddings and the class weights. The radius then stops
#   mattering, and it demands a *margin in angle* between classes.
#
# ## Summary
#
# - A classifier's penultimate layer is an embedding, and retrieval uses it, not the outputs. Trained with
#   cross-entropy it retrieves far better than the raw pixels by MAP@R (higher by more than 0.1, beyond the spread
#   over three seeds), while its Precision@1 gains less than a quarter as much. <!-- claim: embedding -->
# - Each loss of the Guelph slides fits in a few lines and matches PyTorch's built-in: MSE (`mse_loss`), MAE
#   (`l1_loss`), Huber (`huber_loss`; not `smooth_l1_loss`, which is Huber divided by $\delta$), KL
#   (`kl_div(log q, t)`, i.e. $\mathrm{KL}(t\,\|\,q)$), hinge (2 × `multi_margin_loss` on $(-f/2, f/2)$) and
#   cross-entropy (`cross_entropy`). <!-- claim: matches-pytorch -->
# - The slides' $\mathrm{KL}(\text{prediction}\,\|\,\text{one-hot})$ is infinite; $\mathrm{KL}(\text{one-hot}\,\|\,
#   \text{prediction})$ is cross-entropy. <!-- claim: kl-direction -->
# - KL against smoothed labels is cross-entropy with label smoothing minus a constant, with the same gradient.
#   <!-- claim: kl-smoothing --> Trained that way, the embedding retrieves better by MAP@R than with plain
#   cross-entropy, beyond the spread over three seeds. <!-- claim: smoothing -->
# - **Regressing the class index** with one output (MSE, MAE or Huber) invents an order among classes: it labels
#   test images of 4 and 9, two digits that cross-entropy mixes up, with a digit next to their midpoint (6 or 7)
#   more often than it does for pairs of digits at the same distance that are mixed up less, and more often than
#   cross-entropy does. <!-- claim: in-between --> It also concentrates the embedding on one axis, along which the
#   class means follow their index. <!-- claim: one-direction --> On MNIST its nearest neighbour is right less often
#   than a nearest neighbour in pixel space. <!-- claim: regression-p1 --> Cross-entropy over $c$ outputs gives a
#   better classifier and a better embedding (accuracy, Precision@1 and MAP@R), by more than the spread over three
#   seeds. <!-- claim: ce-wins -->
# - On two classes (one run each), the hinge and two-output cross-entropy both classify and retrieve well, and most
#   test points end beyond the hinge's margin. <!-- claim: two-class -->
# - A 2-D penultimate layer trained with cross-entropy (one run) is **separable, not compact**: radial wedges, where
#   nearest neighbours mix the classes near the origin. That motivates the metric losses of lecture 05 and the
#   angular margins of lecture 07. <!-- claim: wedges -->
#
# ## Exercises
#
# Each exercise asks you to write a few lines in the cell below it; the `check(...)` at the end of the cell says
# ✓ (right), ✗ (and what looks wrong) or ○ (not attempted yet). Stuck? `hint("04.1")` gives a hint, and another
# one each time you call it. `show_solution("04.1")` prints the solution, for when you decide to look, and after it
# the package's own version of the same code.
#
# 1. **The Huber loss.** Write `my_huber(pred, target, delta)` (mean over samples) from the formula of section 2,
#    without `F.huber_loss` or `supervised.huber_loss`.
# 2. **Cross-entropy that does not overflow.** Write `my_cross_entropy(logits, labels)` (mean) with `torch.exp` and
#    `torch.log`, not `log_softmax`. The check also feeds logits of size 1000, where a naive `exp` overflows and
#    the softmax probability of the true class can underflow to 0.
# 3. **The two-class hinge.** Write `my_hinge(scores, y, margin)` with $y \in \{-1, +1\}$ (mean).
# 4. **Predict, then explain.** Section 3 found the single-output MSE embedding worse for retrieval than the
#    cross-entropy one, with a larger share of its variance on one axis. How many of its 32 dimensions does each embedding
#    really use? One number answers that, the **participation ratio** $(\sum_j \lambda_j)^2 / \sum_j \lambda_j^2$,
#    where the $\lambda_j$ are the eigenvalues of the covariance matrix of the embedding: it is $k$ when the variance
#    is spread evenly over $k$ directions, and 1 when it all lies along one. First guess it, from 1 to 32, for the
#    test embeddings `results[l, d0]["z"]` with `l = "mse"` and `"cross_entropy"` (`my_prediction`); then compute
#    it (`my_effective_dims`). The check compares your guess with the measured values and with the Precision@1 of
#    section 3.
# 5. **Explore (no check).** Train MSE on **10** outputs against one-hot targets (no softmax). Is the embedding
#    closer to cross-entropy or to single-output MSE? What does that say about where the problem of the
#    single-output set-up lies? `SupervisedLoss` has no such loss, so write your own `loss_fn`: an `nn.Module` that
#    holds its last layer, `torch.nn.Linear(EMB, 10)`, and whose `forward(z, labels)` returns
#    `{"loss": ...}` (MSE between the 10 outputs and `F.one_hot(labels, 10).float()`). `train.train` trains the
#    parameters of a `loss_fn` that is a module together with the backbone's; copy the body of `compute` in
#    `run`, with your module in place of `SupervisedLoss`.

# %%
from dmlcourse.exercises import check, hint, show_solution

# %% exercise="04.1"
def my_huber(pred, target, delta):
    """Return the Huber loss, mean over samples: 0.5 r^2 where |r| <= delta, delta (|r| - 0.5 delta) beyond,
    with r = pred - target."""
    ### BEGIN SOLUTION
    r = (pred - target).abs()
    return torch.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).mean()
    ### END SOLUTION


check("04.1", my_huber)

# %% exercise="04.2"
def my_cross_entropy(logits, labels):
    """Return the mean over samples of -log softmax(logits_i)[labels_i], stable for very large logits."""
    ### BEGIN SOLUTION
    m = logits.max(dim=1, keepdim=True).values              # subtract the row maximum: every exponent <= 0
    log_sum_exp = m.squeeze(1) + torch.log(torch.exp(logits - m).sum(dim=1))
    return (log_sum_exp - logits[torch.arange(len(labels)), labels]).mean()
    ### END SOLUTION


check("04.2", my_cross_entropy)

# %% exercise="04.3"
def my_hinge(scores, y, margin):
    """Return the mean over samples of [margin - y_i scores_i]_+, with labels y_i in {-1, +1}."""
    ### BEGIN SOLUTION
    return torch.relu(margin - y * scores).mean()
    ### END SOLUTION


check("04.3", my_hinge)

# %% exercise="04.4"
my_prediction = None  # your guess of the participation ratio (1 to 32), e.g. {"mse": 16, "cross_entropy": 16}
my_effective_dims = None  # participation ratio of results[l, d0]["z"]: {"mse": ..., "cross_entropy": ...}
### BEGIN SOLUTION
my_prediction = {"mse": 2, "cross_entropy": 10}
my_effective_dims = {}
for l in ("mse", "cross_entropy"):
    z = results[l, d0]["z"]
    lam = torch.linalg.eigvalsh(torch.cov(z.T))   # torch.cov wants the variables (embedding units) as rows
    my_effective_dims[l] = (lam.sum() ** 2 / (lam**2).sum()).item()
### END SOLUTION

check("04.4", my_prediction, my_effective_dims, results, d0)
