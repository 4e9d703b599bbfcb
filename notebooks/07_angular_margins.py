# %% [markdown]
# # 07 · Angular margins: SphereFace, CosFace and ArcFace on the hypersphere
#
# Lecture 4 showed that a softmax classifier's penultimate layer is an embedding — *separable* but not
# *discriminative*: classes fill wedges that touch. Face recognition pushed this idea to its best results by changing
# only the last layer, so that classes must be separated **by a margin in angle**. This notebook builds the heads,
# draws their decision boundaries from the equations of *the face-recognition slides*, trains them, and measures them
# as retrieval and as verification systems.

# %%
# Setup: imports, seed, device, data size, quick mode
import torch
from dmlcourse import data, metrics, models, plots, runtime, train
QUICK = runtime.is_quick()            # DMLCOURSE_QUICK=1 (CI): small and fast
device = runtime.get_device()         # CUDA, then Apple MPS, then CPU
SIZE = data.default_size(device)      # "mini" on CPU or in quick mode, "full" on a GPU
runtime.seed_everything(0)

# %%
import math
import matplotlib.pyplot as plt
from dmlcourse import cache, heads, siamese, verification
from dmlcourse.listing import show

TRAIN_PER_CLASS = runtime.quick(None, 300)
TEST_PER_CLASS = runtime.quick(200, 100)
EPOCHS = runtime.quick(8, 2)                   # section 4's runs (an MLP: fast on a CPU)
BACKBONE_EPOCHS = runtime.quick(3, 2)          # section 3's CNN backbone, trained once on every training image
DATASETS = runtime.quick(["mnist", "fashion-mnist"], ["fashion-mnist"])
# Section 4 compares heads over several seeds: smaller runs, each repeated, teach more than one big run.
SEEDS = runtime.quick([0, 1, 2], [0, 1])
RUN_PER_CLASS = runtime.quick(300, 150)

# %% [markdown]
# ## 1. From softmax to normalised softmax
#
# The logit of class $j$ is $W_j^\top x + b_j = \lVert W_j\rVert\,\lVert x\rVert \cos\theta_j + b_j$, with $\theta_j$ the angle
# between the embedding and the class weight. Three things besides the angle can win the argmax: the bias, the length
# of $W_j$ and the length of $x$. Dropping the bias and **normalising** both $W_j$ and $x$ leaves only the angle:
# the logit is $s\cos\theta_j$ (NormFace). Retrieval then uses the cosine — the same quantity the training optimised.
#
# Why the scale $s$? Cosines lie in $[-1, 1]$, so without it the softmax can never be confident: with 10 classes and
# the others at 90°, the best possible probability at $s = 1$ is $e/(e + 9) \approx 0.23$ — the loss keeps pushing even
# perfectly classified points. Move $s$:

# %%
explorer = heads.scale_explorer(16.0)
explorer

# %%
best = {s: float(heads.true_class_probability(torch.tensor(0.0), s)) for s in (1, 4, 16, 64)}
print("largest reachable probability of the true class:", {s: round(p, 3) for s, p in best.items()})
assert best[1] < 0.25 and best[16] > 0.99   # claim: scale-confidence

# %% [markdown]
# ## 2. Three margins
#
# For the **target** class $y$ the logit is made harder to win; the other classes keep $s\cos\theta_j$ (SphereFace, which
# has no scale: $\lVert x\rVert\cos\theta_j$):
#
# | head | target logit | margin acts on |
# |---|---|---|
# | SphereFace (A-Softmax; Liu et al., 2017) | $\lVert x\rVert\,\psi(\theta_y)$, $\psi(\theta) = (-1)^k\cos(m\theta) - 2k$ on $[k\pi/m, (k+1)\pi/m]$, integer $m$ | the angle, multiplicatively |
# | CosFace (Wang et al., 2018; AM-Softmax, by other authors the same year, is the same loss) | $s(\cos\theta_y - m)$ | the cosine |
# | ArcFace (Deng et al., 2019) | $s\cos(\theta_y + m)$, $m$ in **radians** | the angle, additively |
#
# Where the target logit of class 1 equals the other logit of class 2 lies the decision boundary between the two:
# SphereFace $\cos m\theta_1 = \cos\theta_2$, CosFace $\cos\theta_1 - m = \cos\theta_2$, ArcFace
# $\cos(\theta_1 + m) = \cos\theta_2$. *The face-recognition slides* write the same lines with the factor in front,
# $\lVert x\rVert(\cos m\theta_1 - \cos\theta_2) = 0$ for SphereFace and $s(\ldots) = 0$ for the other two: as
# $\lVert x\rVert > 0$ and $s > 0$, nothing changes. Without a margin (NormFace, or a plain softmax whose weights have
# equal lengths and no bias) the boundary is $\theta_1 = \theta_2$: no gap at all. With a margin, class 1 needs
# $\theta_2 > \theta_1 + m$ (ArcFace) and class 2 the mirror image — the band between the two boundaries belongs to
# neither.
#
# Three details the formulas hide. $\cos(m\theta)$ is not monotone on $[0, \pi]$, so SphereFace uses the piecewise
# $\psi$ above, which keeps decreasing. Its multiplicative margin is also hard to optimise from random weights, so the
# SphereFace authors anneal it: the target logit is
# $\lVert x\rVert\,(\lambda\cos\theta_y + \psi(\theta_y)) / (1 + \lambda)$, with $\lambda$ falling from 1000 towards 5
# as training goes on (`heads.SphereFaceHead` does this). And $\cos(\theta + m)$ *increases* again once
# $\theta + m > \pi$ — a larger angle would be rewarded — so ArcFace falls back to $\cos\theta - m\sin m$ there:

# %%
show(heads.arc_margin_target)

# %%
theta = torch.linspace(0, math.pi, 721)
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for name, y in heads.target_logit_curves(theta).items():
    axes[0].plot(torch.rad2deg(theta), y, label=name)
axes[0].set(xlabel="θ (degrees)", ylabel="target logit ÷ s", title="target logits (m as in the papers)")
axes[0].legend(fontsize=8, frameon=False)
for (name, b), c in zip(heads.decision_boundaries(theta).items(), plots.PALETTE):
    axes[1].plot(torch.rad2deg(theta), torch.rad2deg(b), color=c, label=name)
    axes[1].plot(torch.rad2deg(b), torch.rad2deg(theta), color=c, ls="--")
axes[1].set(xlabel="θ1 (degrees)", ylabel="θ2 (degrees)", xlim=(0, 180), ylim=(0, 180),
            title="two classes: boundary of class 1 (—) and 2 (--)")
axes[1].legend(fontsize=8, frameon=False)
fig.tight_layout()

curves = heads.target_logit_curves(theta)
for name, y in curves.items():   # every target logit decreases with the angle (psi and the ArcFace fallback see to it)
    assert torch.all(y[1:] <= y[:-1] + 1e-6), name   # claim: monotone-targets

# %% [markdown]
# Change the margins and watch the curves and the gap between the boundaries:

# %%
margins = heads.margin_explorer()
margins


# %% [markdown]
# ## 3. Seeing it: 2-D and 3-D embeddings
#
# To see the geometry we need an embedding of 2 (or 3) dimensions. Training a CNN end to end with a 2-D output takes
# many epochs, so we take a shortcut that keeps the point: a backbone trained once (cached) gives 128 features per
# image, and for each head we train only a small projection (128 → 64 → 2, one hidden ReLU layer) plus the head. Why
# the hidden layer: a purely linear map to 2-D untangles ten classes less well, and then every head's picture is
# dominated by its misclassified points rather than by its loss (the cell below trains the plain softmax both ways on
# every seed and prints the two test accuracies). The features are standardised first: the normalised heads only see angles, and
# their gradients shrink as $1/\lVert x\rVert$.

# %%
def backbone_features(dataset):
    def compute():
        tr, te = data.load(dataset, "train", SIZE), data.load(dataset, "test", SIZE)
        keep = data.balanced_subset(tr.labels, TRAIN_PER_CLASS) if TRAIN_PER_CLASS else torch.arange(len(tr.labels))
        tkeep = data.balanced_subset(te.labels, TEST_PER_CLASS)
        runtime.seed_everything(0)
        net = models.SmallCNN(64)
        train.train(net, heads.HeadLoss(heads.SoftmaxHead(64, 10)), tr.images[keep], tr.labels[keep],
                    epochs=BACKBONE_EPOCHS, batch_size=128, lr=2e-3, name=dataset, device=device, progress=True)
        net.head = torch.nn.Identity()          # keep the 128 pooled features
        f = models.embed(net, tr.images[keep], name=dataset, device=device)
        ft = models.embed(net, te.images[tkeep], name=dataset, device=device)
        mu, sd = f.mean(0), f.std(0) + 1e-6
        return {"f": (f - mu) / sd, "y": tr.labels[keep], "ft": (ft - mu) / sd, "yt": te.labels[tkeep]}
    return cache.cached(f"l07-backbone-{dataset}", dict(dataset=dataset, size=SIZE, epochs=BACKBONE_EPOCHS,
                                                         n=TRAIN_PER_CLASS, t=TEST_PER_CLASS), compute)

LOW_D = {"softmax": {}, "normface": dict(scale=16.0), "sphereface": dict(margin=2),
         "cosface": dict(scale=16.0, margin=0.2), "arcface": dict(scale=16.0, margin=0.2)}

LOW_D_EPOCHS = 40

def low_dim(name, dim, feats, epochs=LOW_D_EPOCHS, seed=0, linear=False):
    """The test embeddings of a projection to `dim` dimensions trained with head `name`, and the head (cached).
    linear=True: a single linear map instead of the one-hidden-layer projection."""
    def compute():
        runtime.seed_everything(seed)
        width = feats["f"].shape[1]
        proj = torch.nn.Linear(width, dim) if linear else \
            torch.nn.Sequential(torch.nn.Linear(width, 64), torch.nn.ReLU(), torch.nn.Linear(64, dim))
        head = heads.make_head(name, dim, 10, **LOW_D[name])
        train.train(proj, heads.HeadLoss(head), feats["f"], feats["y"], epochs=epochs, batch_size=256, lr=1e-2,
                    device="cpu", progress=False, seed=seed)
        return models.embed(proj, feats["ft"], device="cpu"), head
    config = dict(name=name, dim=dim, epochs=epochs, seed=seed, kw=LOW_D[name], linear=linear,
                  feats=(tuple(feats["f"].shape), float(feats["f"].double().abs().sum())))  # which features
    return cache.cached(f"l07-low-dim-{name}-{dim}d-seed{seed}" + ("-linear" if linear else ""), config, compute)

def head_accuracy(z, head):
    return (head(z).argmax(1) == feats["yt"]).float().mean().item()

feats = backbone_features("mnist")
flat = {name: low_dim(name, 2, feats) for name in LOW_D}

# why the hidden layer: the plain softmax in 2-D with a purely linear projection, against the projection used here
acc_2d = {kind: [head_accuracy(*low_dim("softmax", 2, feats, seed=seed, linear=(kind == "linear")))
                 for seed in SEEDS] for kind in ("one hidden layer", "linear")}
print(f"softmax, 2-D test accuracy over {len(SEEDS)} seeds: "
      + ", ".join(f"{k} {metrics.mean_sd(v)[0]:.3f} ± {metrics.mean_sd(v)[1]:.3f}" for k, v in acc_2d.items()))
# the linear map untangles the ten classes less well, beyond the seed spread
assert metrics.clearly_above(metrics.mean_sd(acc_2d["one hidden layer"]), metrics.mean_sd(acc_2d["linear"]))


# %%
def class_weights(head):
    w = head.linear.weight if isinstance(head, heads.SoftmaxHead) else head.weight
    return torch.nn.functional.normalize(w.detach(), dim=1)

def arc_width(z, y, head):
    # median angle (degrees) between an embedding and the weight vector of its own class: theta_y, the angle
    # every margin acts on. The median ignores the few misclassified points that sit in another class's arc.
    cos = torch.nn.functional.normalize(z, dim=1) @ class_weights(head).T
    theta_y = torch.rad2deg(torch.acos(cos.gather(1, y[:, None]).clamp(-1, 1)))
    return theta_y.median().item()

fig, axes = plt.subplots(1, 6, figsize=(21, 3.8))
z_soft, _ = flat["softmax"]
plots.scatter_2d(z_soft, feats["yt"], ax=axes[0], title="softmax: raw 2-D features")
width = {}
for ax, (name, (z, head)) in zip(axes[1:], flat.items()):
    zn = torch.nn.functional.normalize(z, dim=1)
    jitter = 1 + 0.04 * torch.randn(len(zn), 1, generator=torch.Generator().manual_seed(0))
    plots.scatter_2d(zn * jitter, feats["yt"], ax=ax, s=3)
    w = class_weights(head)
    for c in range(10):
        ax.plot([0, 1.25 * w[c, 0]], [0, 1.25 * w[c, 1]], color=plots.PALETTE[c], lw=1)
    width[name] = arc_width(z, feats["yt"], head)
    ax.set_title(f"{name}: acc {head_accuracy(z, head):.2f}, arc width {width[name]:.1f}°")
    ax.set_aspect("equal")
axes[0].legend(markerscale=3, fontsize=6, frameon=False)
fig.tight_layout()
print("arc width, median angle to the own class weight (degrees):", {k: round(v, 1) for k, v in width.items()})

# one picture is one seed: the widths again with every seed (other initial weights, another batch order)
seed_widths = {name: [width[name]] for name in LOW_D}   # the pictures above are seed 0
for seed in SEEDS[1:]:
    for name in LOW_D:
        z_s, head_s = low_dim(name, 2, feats, seed=seed)
        seed_widths[name].append(arc_width(z_s, feats["yt"], head_s))
print(f"arc width over {len(SEEDS)} seeds (degrees): "
      + ", ".join(f"{k} {metrics.mean_sd(v)[0]:.1f} ± {metrics.mean_sd(v)[1]:.1f}" for k, v in seed_widths.items()))

# %% [markdown]
# Left, the classic softmax picture: classes are wedges radiating from the origin, and a point's *length* varies a lot
# within a class — separable by angle, but a Euclidean nearest neighbour gets confused near the centre. The other panels
# show the embeddings on the unit circle (with a little radial jitter to see the density) and the class weights as
# lines. With 10 classes in 2-D each class has only 36° of the circle, so the margins must be small (0.2 rad, about
# 11°, for CosFace and ArcFace here).
#
# We measure each picture by its **arc width**: the median angle $\theta_y$ between a test embedding and the weight of
# its own class — exactly the angle the margins act on. Read the printed widths with the two modes in mind:
#
# - Every margin head packs its classes into narrower arcs than the plain softmax, on every seed (the second printed
#   line gives mean ± sd over the seeds; one picture is one seed). The softmax's argmax also depends on the lengths of
#   $x$ and $W_j$ and on the biases, so nothing pulls its points towards the direction of their class weight.
# - Against NormFace (normalised, scale 16, no margin) the margin's gain depends on how separable the features are. On
#   the quick-mode features (300 images per class, a 2-epoch backbone) ArcFace's arcs are narrower than NormFace's on
#   every seed. On the full-mode features the backbone already separates the digits well, the scale alone presses
#   every class close to its weight, and ArcFace's gain over NormFace *in 2-D* is within the seed spread. The cell
#   below asserts each in its mode; the printed widths show by how much.
#
# NormFace (Wang et al., 2017) came before the margin heads and puts no margin between the classes. What it showed is
# section 1's point: once features and weights are normalised, the softmax trains well only if the cosines are
# multiplied by a scale large enough for the true class to become confident. CosFace and ArcFace (both first
# published in 2018) kept that normalisation and scale and added the margin.

# %%
margin_2d = ("sphereface", "cosface", "arcface")
for k in range(len(SEEDS)):   # on every seed, every margin head is narrower than the softmax
    assert max(seed_widths[h][k] for h in margin_2d) < seed_widths["softmax"][k], k   # claim: narrower-arcs
    if QUICK:                 # on the quick-mode features, ArcFace is narrower than NormFace on every seed too
        assert seed_widths["arcface"][k] < seed_widths["normface"][k], k
if not QUICK:                 # on the full-mode features, ArcFace's gain over NormFace is within the seed spread
    arc_w, norm_w = metrics.mean_sd(seed_widths["arcface"]), metrics.mean_sd(seed_widths["normface"])
    assert not metrics.clearly_above(norm_w, arc_w) and not metrics.clearly_above(arc_w, norm_w)

# %% [markdown]
# In 3-D the classes become caps on the sphere (ArcFace; drag to rotate):

# %%
import plotly.graph_objects as go
z3, _ = low_dim("arcface", 3, feats)
z3 = torch.nn.functional.normalize(z3, dim=1).numpy()
u, v = torch.meshgrid(torch.linspace(0, 2 * math.pi, 30), torch.linspace(0, math.pi, 15), indexing="ij")
sphere = go.Surface(x=(torch.cos(u) * torch.sin(v)).numpy() * 0.98, y=(torch.sin(u) * torch.sin(v)).numpy() * 0.98,
                    z=torch.cos(v).numpy() * 0.98, opacity=0.15, showscale=False, colorscale="Greys")
points = [go.Scatter3d(x=z3[feats["yt"] == c, 0], y=z3[feats["yt"] == c, 1], z=z3[feats["yt"] == c, 2],
                       mode="markers", marker=dict(size=2, color=plots.PALETTE[c]), name=str(c)) for c in range(10)]
go.Figure([sphere] + points).update_layout(height=500, margin=dict(l=0, r=0, t=30, b=0),
                                          title="ArcFace, 3-D embedding on the unit sphere (MNIST test)")

# %% [markdown]
# ## 4. A realistic embedding: heads against the losses of lecture 5
#
# Now end to end: an MLP (784 → 256 → 64, `models.MLP`, with a 64-d embedding: cheap enough on a CPU to train every
# configuration on several seeds), the same epochs and batches for every head and for the triplet and contrastive
# losses of lecture 5. The margins are the papers' ($m = 4$ for SphereFace, $m = 0.35$ for CosFace, $m = 0.5$ for
# ArcFace); the scale is $s = 30$ for both CosFace and ArcFace, which is AM-Softmax's setting (with the same
# $m = 0.35$). The CosFace and ArcFace papers use $s = 64$ for their thousands of identities; with ten classes the
# true class can reach a probability above 0.99 from $s = 16$ on (section 1). Retrieval uses the cosine on the
# embedding.
# **Verification**: 20,000 test pairs (half genuine, half impostor), scored by the cosine; we report the equal
# error rate (EER) and the true accept rate at a false accept rate of $10^{-3}$.

# %%
CONFIGS = {
    "softmax": ("head", dict()),
    "normface (s=16)": ("head", dict(scale=16.0)),
    "sphereface (m=4)": ("head", dict(margin=4)),
    "cosface (s=30, m=0.35)": ("head", dict(scale=30.0, margin=0.35)),
    "arcface (s=30, m=0.5)": ("head", dict(scale=30.0, margin=0.5)),
    "triplet (lecture 5)": ("loss", dict(margin=0.2)),
    "contrastive (lecture 5)": ("loss", dict(margin=1.0)),
}

def run(label, dataset, override=None, seed=0):
    kind, kw = CONFIGS[label] if override is None else override
    name = label.split(" ")[0]
    config = dict(label=label, kind=kind, kw=kw, dataset=dataset, size=SIZE, epochs=EPOCHS,
                  n=RUN_PER_CLASS, t=TEST_PER_CLASS, seed=seed, net="mlp")

    def compute():
        tr, te = data.load(dataset, "train", SIZE), data.load(dataset, "test", SIZE)
        keep = data.balanced_subset(tr.labels, RUN_PER_CLASS)
        tkeep = data.balanced_subset(te.labels, TEST_PER_CLASS)
        xt, yt = te.images[tkeep], te.labels[tkeep]
        runtime.seed_everything(seed)
        net = models.MLP(64, hidden=(256,), normalize=(name == "triplet"))
        loss_fn = heads.HeadLoss(heads.make_head(name, 64, 10, **kw)) if kind == "head" else \
            siamese.make_batch_loss(name, **kw, **(dict(seed=seed) if name == "triplet" else {}))
        hist = train.train(net, loss_fn, tr.images[keep], tr.labels[keep], epochs=EPOCHS, batch_size=128,
                           samples_per_class=16, lr=2e-3, name=dataset, device=device, progress=True,
                           seed=seed)
        z = models.embed(net, xt, name=dataset, device=device)
        i, j, same = verification.verification_pairs(yt, 20000, seed=0)
        scores = verification.pair_scores(z, i, j)
        return {"history": hist, "p1": metrics.precision_at_1(z, yt, distance="cosine"),
                "map_r": metrics.map_at_r(z, yt, distance="cosine"),
                "eer": verification.equal_error_rate(scores, same), "tar": verification.tar_at_far(scores, same, 1e-3),
                "roc": verification.roc_curve(scores, same)}

    return cache.cached(f"l07-{name}-{dataset}" + ("" if override is None else "-x") + f"-seed{seed}", config,
                        compute)

runs = {(label, d, seed): run(label, d, seed=seed) for d in DATASETS for label in CONFIGS for seed in SEEDS}
results = {(label, d): runs[label, d, SEEDS[0]] for d in DATASETS for label in CONFIGS}   # for the ROC picture
KEYS = ("p1", "map_r", "eer", "tar")
table = {(label, d, k): metrics.mean_sd([runs[label, d, seed][k] for seed in SEEDS])   # (mean, sd): lecture 04
         for (label, d) in results for k in KEYS}
print(f"mean ± sd over {len(SEEDS)} seeds ({RUN_PER_CLASS} training images per class, {EPOCHS} epochs)")
for d in DATASETS:
    print(f"\n{d}\n{'':<25}" + "".join(f"{k:>15}" for k in ("P@1", "MAP@R", "EER", "TAR@FAR=1e-3")))
    for label in CONFIGS:
        print(f"{label:<25}" + "".join(f"{table[label, d, k][0]:>8.3f} ± {table[label, d, k][1]:.3f}"
                                       for k in KEYS))

# %%
d0 = DATASETS[0]
fig, ax = plt.subplots(figsize=(6, 4.2))
for label in CONFIGS:
    roc = results[label, d0]["roc"]
    ax.plot(roc.far.clamp_min(1e-5), roc.tar, label=f"{label}: EER {results[label, d0]['eer']:.3f}")
ax.set(xscale="log", xlim=(1e-4, 1), xlabel="false accept rate", ylabel="true accept rate", title=f"ROC, {d0} test pairs")
ax.legend(fontsize=7, frameon=False)
fig.tight_layout()
margin_heads = ["cosface (s=30, m=0.35)", "arcface (s=30, m=0.5)"]

def clearly_below(x, y):
    """x's mean is below y's by more than the two spreads together (an error rate: lower is better)."""
    return metrics.clearly_above(y, x)

def against(x, y):
    """How the EER (mean, sd) x compares with y by the course's rule over seeds."""
    return "lower, beyond the seed spread" if clearly_below(x, y) else \
        "higher, beyond the seed spread" if clearly_below(y, x) else "within the seed spread"

for d in DATASETS:   # CosFace's and ArcFace's EER against the plain softmax's, by the rule over seeds
    for h in margin_heads:
        print(f"{d}: EER of {h} {table[h, d, 'eer'][0]:.3f} ± {table[h, d, 'eer'][1]:.3f} against the softmax's "
              f"{table['softmax', d, 'eer'][0]:.3f} ± {table['softmax', d, 'eer'][1]:.3f}: "
              + against(table[h, d, "eer"], table["softmax", d, "eer"]))
print("\nEER differences larger than the seed spread:")
for d in DATASETS:
    for l1 in CONFIGS:
        for l2 in CONFIGS:
            if clearly_below(table[l1, d, "eer"], table[l2, d, "eer"]):
                print(f"  {d}: {l1} < {l2}")
heads_only = [label for label in CONFIGS if CONFIGS[label][0] == "head"]
if QUICK:   # after 2 epochs CosFace and ArcFace verify WORSE than the softmax, and the triplet loss beats every head
    assert all(clearly_below(table["softmax", d0, "eer"], table[h, d0, "eer"]) for h in margin_heads)  # claim: heads-quick
    assert all(clearly_below(table["triplet (lecture 5)", d0, "eer"], table[h, d0, "eer"])  # claim: heads-quick
               for h in heads_only)
else:       # after 8 epochs ArcFace verifies better than the softmax, beyond the seed spread, on both datasets
    assert all(clearly_below(table[margin_heads[1], d, "eer"], table["softmax", d, "eer"])  # claim: heads-full
               for d in DATASETS)

# %% [markdown]
# How to read the table. Every entry is a mean ± standard deviation over the seeds in `SEEDS` (other initial
# weights, another batch order). The lines under the figure compare CosFace's and ArcFace's EER with the softmax's by
# the course's rule over seeds (lecture 4: a gap counts when it is larger than the two standard deviations added), and
# the list after them gives every EER difference between two rows that passes the rule; any other gap between two
# rows is seed noise, not a ranking.
#
# What holds depends on the training length, and the cell asserts it for each mode:
#
# - After the 8 epochs of full mode (both datasets, three seeds), ArcFace verifies better than the plain softmax
#   beyond the seed spread, on both datasets.
# - After the 2 epochs of quick mode (Fashion-MNIST, two seeds), CosFace and ArcFace verify *worse* than the softmax,
#   beyond the seed spread, and the triplet loss of lecture 5 verifies better than every head.
#
# A likely reason for the short runs: a head must first place one weight vector per class, and a margin makes every
# training image harder to count as right, while the triplet loss pulls same-class neighbours together from the first
# batch. Whether the contrastive loss is ahead of the heads is not part of this finding: read its row with the list.

# %% [markdown]
# ## 5. Pitfalls
#
# **A large scale and margin from a random start.** ArcFace with $s = 64$, $m = 1.2$ asks every training image to be
# more than 69° closer to its class than to any other before the loss lets go. From random weights no image is, so the
# margin-penalised target logit $s\cos(\theta_y + m)$ starts far below the others and the loss sits near its maximum.
# Two things follow, and the run below shows both:
#
# - **The loss stops being a progress bar.** Its value says how far the images are from the 69° goal, not whether the
#   embedding is any good: it stays far above $\log 10 \approx 2.3$ (the loss of a uniform guess over 10 classes)
#   while the plain cosine already ranks the test images well above chance. Never compare loss values across
#   different $(s, m)$.
# - **Whether it learns depends on the number of classes and the training time.** With 10 classes in 64 dimensions a
#   69° margin is reachable in the end (10 weight vectors can sit 96° apart), so a long run can catch up; how far
#   it has got after this notebook's epochs is printed below (one seed each, so read a gap of a point or two as
#   noise, see section 4). With the thousands of
#   identities of face recognition the weights cannot spread that far, the margin is never met, and training fails —
#   which is why ArcFace's authors train with $m = 0.5$, and why some implementations raise the margin from 0 during
#   the first epochs.

# %%
hard = run("arcface (s=30, m=0.5)", d0, override=("head", dict(scale=64.0, margin=1.2)))
easy = results["arcface (s=30, m=0.5)", d0]
for tag, r in (("s=30, m=0.5", easy), ("s=64, m=1.2", hard)):
    print(f"ArcFace {tag}: final loss {r['history'].step_loss[-1]:7.2f}, P@1 {r['p1']:.3f}, MAP@R {r['map_r']:.3f}, "
          f"EER {r['eer']:.3f}")
# the hard run's loss is worse than a uniform guess, yet its embedding retrieves far above chance (0.1)
assert hard["history"].step_loss[-1] > math.log(10) and hard["p1"] > 0.5   # claim: loss-not-progress
assert hard["history"].step_loss[-1] > easy["history"].step_loss[-1]

# %% [markdown]
# **NaN in half precision.** $\frac{d}{dc}\arccos c = -1/\sqrt{1 - c^2}$ is infinite at $c = \pm 1$ — when a feature lies
# exactly on its class weight. Clamping to $1 - 10^{-6}$ fixes it in float32, but in float16 $1 - 10^{-6}$ *rounds to 1*:
# the clamp does nothing. Our heads compute the margin in (at least) float32 whatever the input dtype.

# %%
c = torch.tensor([1.0], dtype=torch.float16, requires_grad=True)
torch.acos(c.clamp(-1 + 1e-6, 1 - 1e-6)).sum().backward()
print("float16, clamped in float16: gradient", c.grad.item())
head = heads.ArcFaceHead(4, 3, scale=64, margin=0.5).half()
x = torch.nn.functional.normalize(head.weight.detach().float(), dim=1).half().requires_grad_(True)  # cos = 1 exactly
loss = torch.nn.functional.cross_entropy(head(x, torch.arange(3)).float(), torch.arange(3))
loss.backward()
print("our ArcFaceHead in float16 at cos = 1: loss", round(loss.item(), 4), "finite gradient:",
      bool(torch.isfinite(x.grad.float()).all()))
assert not math.isfinite(c.grad.item()) and torch.isfinite(x.grad.float()).all()   # claim: half-precision

# %% [markdown]
# **The class weights live in the head.** They are parameters of the *loss*, not of the network: an optimiser built
# on `model.parameters()` alone never updates them (they stay random), and `torch.save(model.state_dict())` does not
# save them. `train.train` adds the parameters of an `nn.Module` loss to its optimiser; when you save, save both.

# %%
net, head = models.MLP(16), heads.CosFaceHead(16, 10)
before = head.weight.detach().clone()
tr = data.load("mnist", "train", "mini")
opt = torch.optim.Adam(net.parameters(), lr=1e-3)          # the mistake: the head is not in the optimiser
for xb, yb in data.DeviceLoader(tr.images[:512], tr.labels[:512], batch_size=128, name="mnist"):
    loss = torch.nn.functional.cross_entropy(head(net(xb), yb), yb)
    opt.zero_grad(); loss.backward(); opt.step()
print("class weights changed:", not torch.equal(before, head.weight.detach()))
assert torch.equal(before, head.weight.detach())   # claim: weights-in-optimiser
checkpoint = {"model": net.state_dict(), "head": head.state_dict()}   # save both
print("saved:", list(checkpoint["head"]))

# %% [markdown]
# ## 6. The Embedding Lab
# The lab trains a network with the head you choose (the margin slider is the head's $m$: radians for ArcFace, a
# cosine offset for CosFace, the integer multiplier for SphereFace; Softmax and NormFace have none, so it is greyed
# out) and shows a fixed set of test images after every epoch (UMAP of the L2-normalised embeddings; press ▶).
# Retrieval is measured with the cosine, as in section 4. Keep two runs to compare, say, CosFace and ArcFace.
#
# The cell trains ArcFace ($s = 30$, $m = 0.5$) once, to check that the lab is wired up.

# %%
from dmlcourse import lab

embedding_lab = lab.EmbeddingLab(losses=["arcface", "cosface", "sphereface", "normface", "softmax"], size=SIZE,
                                 epochs=runtime.quick(5, 2), train_per_class=runtime.quick(None, 100),
                                 probe_per_class=runtime.quick(100, 20),
                                 layout=runtime.quick("chain", "pca"), warm_up=not QUICK)  # CI: no UMAP
assert embedding_lab.miner.disabled and not embedding_lab.margin.disabled   # heads have a margin, no miner
embedding_lab.train(); embedding_lab.wait()           # what the Train button does
run = embedding_lab.run
p1 = run.metric("precision_at_1")
print(f"ArcFace m = {run.config['margin']}: Precision@1 (cosine) of the probe set {p1[0]:.3f} -> {p1[-1]:.3f}")
assert not run.failed and run.config["margin"] == 0.5 and p1[-1] > p1[0]
from IPython.display import display
display(embedding_lab)

# %% [markdown]
# ## Summary
#
# - Normalising weights and features turns the softmax into a classifier of **angles**, and the scale $s$ lets it
#   become confident: with ten classes the true class cannot pass a probability of 0.25 at $s = 1$, and passes 0.99
#   at $s = 16$. <!-- claim: scale-confidence -->
# - A margin on the target class forces a gap between classes: multiplicative on the angle (SphereFace, trained with
#   annealing), subtractive on the cosine (CosFace) or additive on the angle (ArcFace, in radians —
#   pytorch-metric-learning takes degrees). <!-- recap -->
# - SphereFace's $\psi$ and ArcFace's fallback past $\pi - m$ keep every target logit decreasing in the angle.
#   <!-- claim: monotone-targets -->
# - An acos clamped in float16 still has an infinite gradient at $\cos = 1$, so the heads compute the margin in
#   float32. <!-- claim: half-precision -->
# - In 2-D, every margin head packs its classes into narrower arcs than the plain softmax, on every seed.
#   <!-- claim: narrower-arcs -->
# - In the 64-d runs of section 4, what holds depends on the training length. After full mode's 8 epochs ArcFace
#   verifies better than the softmax beyond the seed spread on both datasets <!-- claim: heads-full -->; after quick
#   mode's 2 epochs CosFace and ArcFace verify worse than the softmax beyond the spread, and the triplet loss of
#   lecture 5 better than every head. <!-- claim: heads-quick --> Any other gap between two rows is within the
#   seed spread unless the list under the table names it.
# - A loss value is not comparable across scales and margins: ArcFace with $s = 64$, $m = 1.2$ ends with a loss
#   worse than a uniform guess while its embedding retrieves far above chance. <!-- claim: loss-not-progress -->
# - The class weights belong to the loss: an optimiser built on the network's parameters alone never moves them, so
#   put them in the optimiser and in your checkpoints. <!-- claim: weights-in-optimiser -->
#
# ## Exercises
#
# Each exercise asks you to write a few lines in the cell below it; the `check(...)` at the end of the cell says
# ✓ (right), ✗ (and what looks wrong) or ○ (not attempted yet). Stuck? `hint("07.1")` gives a hint, and another
# one each time you call it. `show_solution("07.1")` prints the solution, for when you decide to look.
#
# 1. **CosFace by hand.** Write `my_cosface(x, W, labels, s, m)`, the training logits of CosFace for features `x`
#    (N, D) and class weights `W` (C, D, one row per class, not normalised), without `dmlcourse.heads`.
# 2. **SphereFace by hand.** Write `my_sphereface(x, W, labels, m)`: $\lVert x\rVert\,\psi(\theta_y)$ for the target
#    class, $\lVert x\rVert\cos\theta_j$ for the others, with the piecewise $\psi$ of section 2 (no annealing).
# 3. **Predict, then explain: how large can a margin be in 2-D?** Section 3 gave 10 classes an ArcFace margin of
#    0.2 rad on the circle. Guess the largest margin that all 10 classes can have in 2-D. Then explain it with three
#    numbers: that largest margin for 10 evenly spaced class weights, the room (in degrees) a point has on each side
#    of its class weight at $m = 0.6$ rad, and the smallest angle between two class weights of section 3's trained
#    ArcFace head.
# 4. **Explore (no check).** Re-run section 3 with ArcFace margins of 0, 0.2 and 0.5 rad (change `LOW_D`): what
#    happens to the arc width and the accuracy, and how does exercise 3's limit show? Then train ArcFace with
#    $s = 64$, $m = 1.2$ but raise the margin linearly from 0 over the first epoch (`train.train` calls
#    `should_stop()` after every step: a function that sets `head.margin` and returns False does it). How does it
#    compare with the $m = 0.5$ run of section 5, in quick and in full mode? Does the loss curve work as a progress
#    bar then?

# %%
from dmlcourse.exercises import check, hint, show_solution

# %% exercise="07.1"
def my_cosface(x, W, labels, s, m):
    """Return the (N, C) logits s (cos θ_y - m) for the target class labels[i] of row i, s cos θ_j for the others;
    θ_j is the angle between x[i] and the row W[j]."""
    ### BEGIN SOLUTION
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(W, dim=1).T
    cos[torch.arange(len(labels)), labels] -= m      # the margin: target class only
    return s * cos
    ### END SOLUTION


check("07.1", my_cosface)

# %% exercise="07.2"
def my_sphereface(x, W, labels, m):
    """Return the (N, C) logits ||x|| ψ(θ_y) for the target class labels[i] of row i, ||x|| cos θ_j for the others;
    ψ(θ) = (-1)^k cos(mθ) - 2k on [kπ/m, (k+1)π/m], k = 0 .. m-1. The rows of W are normalised, x is not."""
    ### BEGIN SOLUTION
    norm = x.norm(dim=1, keepdim=True)
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(W, dim=1).T
    rows = torch.arange(len(labels))
    theta = torch.acos(cos[rows, labels].clamp(-1, 1))
    k = torch.floor(theta * m / math.pi).clamp(max=m - 1)
    psi = (1 - 2 * (k % 2)) * torch.cos(m * theta) - 2 * k
    logits = norm * cos
    logits[rows, labels] = norm[:, 0] * psi
    return logits
    ### END SOLUTION


check("07.2", my_sphereface)

# %% exercise="07.3"
W_arc = class_weights(flat["arcface"][1])  # (10, 2): the class weights of section 3's ArcFace head (m = 0.2)
my_prediction = None  # your guess: the largest margin (radians) all 10 classes can have in 2-D
my_max_margin = None  # that margin, for 10 evenly spaced class weights
my_room_deg = None  # at m = 0.6 rad: how far (degrees) a point may stray from its class weight and keep the margin
my_smallest_gap = None  # the smallest angle (radians) between two class weights of W_arc
### BEGIN SOLUTION
my_prediction = 0.5
my_max_margin = 2 * math.pi / 10  # a point ON its weight (θ_y = 0) needs m < θ_neighbour = 2π/10
my_room_deg = math.degrees((2 * math.pi / 10 - 0.6) / 2)  # φ + m < 2π/10 - φ
cos_w = W_arc @ W_arc.T
cos_w.fill_diagonal_(-1.0)  # not a weight with itself
my_smallest_gap = torch.acos(cos_w.max().clamp(-1, 1)).item()
### END SOLUTION

check("07.3", my_prediction, my_max_margin, my_room_deg, my_smallest_gap, W_arc)
