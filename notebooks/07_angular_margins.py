# %% [markdown]
# # 07 · Angular margins: SphereFace, CosFace and ArcFace on the hypersphere
#
# Lecture 4 showed that a softmax classifier's penultimate layer is an embedding — *separable* but not
# *discriminative*: classes fill wedges that touch. Face recognition pushed this idea to its best results by changing
# only the last layer, so that classes must be separated **by a margin in angle**. This notebook builds the heads,
# draws their decision boundaries from the papers' equations, trains them, and measures them as retrieval and as
# verification systems.

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
# between the embedding and the class weight. Besides the angle, the bias and the length of $W_j$ can decide which
# class wins the argmax. The length of $x$ multiplies every class's term alike, so on its own it cannot change the
# winner; it sets how confident the softmax is, and how much the biases weigh against the angles. Dropping the bias and
# **normalising** both $W_j$ and $x$ leaves only the angle: the logit is $s\cos\theta_j$ (NormFace). Retrieval then
# uses the cosine — the same quantity the training optimised.
#
# Why the scale $s$? Cosines lie in $[-1, 1]$, so without it the softmax can never be confident. Take 10 classes and a
# point lying on its own class weight: with the other nine weights at 90°, the probability of the true class at $s = 1$
# is $e/(e + 9) \approx 0.23$. Spreading the weights further apart helps little: the best layout for all ten classes at
# once puts them at the corners of a regular simplex, every pair at $\cos = -1/9$ (about 96° apart), and even then
# $e/(e + 9e^{-1/9}) \approx 0.25$ (the NormFace paper's bound). The loss keeps pushing even perfectly classified points.
# Move $s$ (the widget puts the other weights at 90°):

# %%
explorer = heads.scale_explorer(16.0)
explorer

# %%
# a point on its own class weight, the other nine weights at 90° (cos = 0)
best = {s: float(heads.true_class_probability(torch.tensor(0.0), s)) for s in (1, 4, 16, 64)}
# the best layout for all ten classes at once: a regular simplex, cos = -1/9 between any two weights
simplex = {s: math.exp(s) / (math.exp(s) + 9 * math.exp(-s / 9)) for s in best}
print("probability of the true class, others at 90°:", {s: round(p, 3) for s, p in best.items()})
print("probability of the true class, weights as a simplex:", {s: round(p, 3) for s, p in simplex.items()})
assert best[1] < 0.24 and simplex[1] < 0.26 and best[16] > 0.99   # claim: scale-confidence

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
# | ArcFace (Deng et al., CVPR 2019; on arXiv since 2018) | $s\cos(\theta_y + m)$, $m$ in **radians** | the angle, additively |
#
# Mind the unit of ArcFace's margin when you switch libraries: our heads take radians, but pytorch-metric-learning's
# `ArcFaceLoss` takes its margin in degrees.
#
# Where the target logit of class 1 equals the other logit of class 2 lies the decision boundary between the two:
# SphereFace $\cos m\theta_1 = \cos\theta_2$, CosFace $\cos\theta_1 - m = \cos\theta_2$, ArcFace
# $\cos(\theta_1 + m) = \cos\theta_2$. The ArcFace paper lists the same lines with the factor in front,
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
axes[0].set(xlabel="θ (degrees)", ylabel="target logit ÷ s (SphereFace: ÷ ‖x‖)",
            title="target logits (m as in the papers)")
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
# the hidden layer: a purely linear map to 2-D untangles ten classes less well, so more test points would land among
# another class and blur the picture of what the loss does. The cell below checks this for the plain softmax: it
# trains its projection both ways on every seed and prints the two test accuracies. The features are standardised
# first: the normalised heads only see angles, and their gradients shrink as $1/\lVert x\rVert$.

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

def angle_to_weight(z, y, head):
    # median angle (degrees) between an embedding and the weight vector of its own class: theta_y, the angle
    # every margin acts on. The median ignores the few misclassified points that sit in another class's arc.
    cos = torch.nn.functional.normalize(z, dim=1) @ class_weights(head).T
    theta_y = torch.rad2deg(torch.acos(cos.gather(1, y[:, None]).clamp(-1, 1)))
    return theta_y.median().item()

def arc_width(z, y):
    # median angle (degrees) between an embedding and the mean direction of its own class: how wide each class's
    # arc is, wherever it sits on the circle
    zn = torch.nn.functional.normalize(z, dim=1)
    centres = torch.nn.functional.normalize(torch.stack([zn[y == c].mean(0) for c in range(10)]), dim=1)
    return torch.rad2deg(torch.acos((zn * centres[y]).sum(1).clamp(-1, 1))).median().item()

def margin_met(z, y, head):
    # share of the embeddings whose target logit still wins WITH the margin: head(z, y) is the training logits
    return (head(z, y).argmax(1) == y).float().mean().item()

fig, axes = plt.subplots(1, 6, figsize=(21, 3.8))
z_soft, _ = flat["softmax"]
plots.scatter_2d(z_soft, feats["yt"], ax=axes[0], title="softmax: raw 2-D features")
for ax, (name, (z, head)) in zip(axes[1:], flat.items()):
    zn = torch.nn.functional.normalize(z, dim=1)
    jitter = 1 + 0.04 * torch.randn(len(zn), 1, generator=torch.Generator().manual_seed(0))
    plots.scatter_2d(zn * jitter, feats["yt"], ax=ax, s=3)
    w = class_weights(head)
    for c in range(10):
        ax.plot([0, 1.25 * w[c, 0]], [0, 1.25 * w[c, 1]], color=plots.PALETTE[c], lw=1)
    ax.set_title(f"{name}: acc {head_accuracy(z, head):.2f}, θ_y {angle_to_weight(z, feats['yt'], head):.1f}°, "
                 f"arc {arc_width(z, feats['yt']):.1f}°", fontsize=9)
    ax.set_aspect("equal")
axes[0].legend(markerscale=3, fontsize=6, frameon=False)
fig.tight_layout()

# one picture is one seed: both angles on every seed (other initial weights, another batch order)
to_weight, widths, met = ({name: [] for name in LOW_D} for _ in range(3))
for seed in SEEDS:
    for name in LOW_D:
        z_s, head_s = low_dim(name, 2, feats, seed=seed)
        to_weight[name].append(angle_to_weight(z_s, feats["yt"], head_s))
        widths[name].append(arc_width(z_s, feats["yt"]))
        if name in ("cosface", "arcface"):
            met[name].append(margin_met(z_s, feats["yt"], head_s))

def mean_sds(values, digits=1):
    return ", ".join(f"{k} {metrics.mean_sd(v)[0]:.{digits}f} ± {metrics.mean_sd(v)[1]:.{digits}f}"
                     for k, v in values.items() if v)

def verdict(x, y, smaller, larger):
    """How the (mean, sd) x compares with y by the course's rule over seeds."""
    return smaller if metrics.clearly_above(y, x) else larger if metrics.clearly_above(x, y) else "within the seed spread"

print(f"mean ± sd over {len(SEEDS)} seeds (degrees)")
print("θ_y, median angle to the own class weight:", mean_sds(to_weight))
print("arc width, median angle to the class's mean direction:", mean_sds(widths))
for name in ("normface", "sphereface", "cosface", "arcface"):
    print(f"  {name} against the softmax: θ_y "
          + verdict(metrics.mean_sd(to_weight[name]), metrics.mean_sd(to_weight["softmax"]), "smaller, beyond the "
                    "seed spread", "larger, beyond the seed spread")
          + "; arc width "
          + verdict(metrics.mean_sd(widths[name]), metrics.mean_sd(widths["softmax"]), "narrower, beyond the seed "
                    "spread", "wider, beyond the seed spread"))
print("share of test points that meet their head's margin (m = 0.2 for both):", mean_sds(met, 3))
cos_m = LOW_D["cosface"]["margin"]
print(f"CosFace at θ_y = 0: cos θ_y - {cos_m} = cos {math.degrees(math.acos(1 - cos_m)):.1f}°; ArcFace's "
      f"{LOW_D['arcface']['margin']} rad is {math.degrees(LOW_D['arcface']['margin']):.1f}°")
print(f"SphereFace (m = {LOW_D['sphereface']['margin']}): λ = {flat['sphereface'][1].lambda_:.1f} "
      "at the end of training")

# %% [markdown]
# Left, the classic softmax picture: classes are wedges radiating from the origin, and a point's *length* varies a lot
# within a class — separable by angle, but a Euclidean nearest neighbour gets confused near the centre. The other panels
# show the embeddings on the unit circle (with a little radial jitter to see the density) and the class weights as
# lines.
#
# With 10 classes in 2-D, evenly spaced class weights are 36° apart, so an angular margin must be small. ArcFace gets
# 0.2 rad (about 11°) here, and SphereFace $m = 2$: a point must be less than half as far in angle from its own weight
# as from any other (its margin is annealed as in section 2; the cell prints where $\lambda$ ended). CosFace's 0.2 is
# not an angle but an offset on the cosine, and near a class weight, where the cosine is flat, subtracting 0.2 costs
# as much as moving far away from the weight: the cell prints how far. So the two margins of 0.2 are not alike.
# The last printed share counts the test points whose target logit still wins *with* the margin: fewer meet
# CosFace's than ArcFace's, beyond the seed spread (exercise 3 works out how much room a margin leaves on the circle).
#
# Two angles describe each picture (mean ± sd over the seeds; one picture is one seed):
#
# - $\theta_y$, the median angle between a test embedding and the weight of its own class: the angle the margins act
#   on. The normalised heads' losses pull every point towards its own weight. The softmax's argmax also depends on
#   the lengths of $x$ and $W_j$ and on the biases, so nothing keeps its classes on their weight lines: compact
#   classes can sit well off them.
# - the **arc width**, the median angle between a test embedding and the mean direction of its own class: how wide a
#   class's arc is, wherever it sits.
#
# For each normalised head, the cell prints whether its gap to the softmax on either angle passes lecture 04's rule
# over seeds in your run (a gap counts when it is larger than the two standard deviations added). Read the pictures
# with those verdicts, not by eye: one picture is one seed.
#
# NormFace (Wang et al., 2017), on arXiv in the same month as SphereFace, puts no margin between the classes. What it
# showed is section 1's point: once features and weights are normalised, the softmax trains well only if the cosines
# are multiplied by a scale large enough for the true class to become confident. Angular margins are older:
# L-Softmax (Liu et al., 2016) put a multiplicative one on a softmax without normalisation, and SphereFace kept it and
# normalised the weights. CosFace and ArcFace (both on arXiv in January 2018) took NormFace's normalisation and scale
# and added their margins.

# %%
# in 2-D both margins are 0.2, but CosFace's (on the cosine) is met by fewer test points than ArcFace's (on the angle)
assert metrics.clearly_above(metrics.mean_sd(met["arcface"]), metrics.mean_sd(met["cosface"]))   # claim: cosface-2d
assert math.degrees(math.acos(1 - cos_m)) > math.degrees(LOW_D["arcface"]["margin"])

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
# ## 4. A realistic embedding: heads against the losses of lecture 05
#
# Now end to end: an MLP (784 → 256 → 64, `models.MLP`, with a 64-d embedding: cheap enough on a CPU to train every
# configuration on several seeds), the same epochs and batches for every head and for the triplet and contrastive
# losses of lecture 05. The margins are the papers' ($m = 4$ for SphereFace, $m = 0.35$ for CosFace, $m = 0.5$ for
# ArcFace); the scale is $s = 30$ for both CosFace and ArcFace, which is AM-Softmax's setting (with the same
# $m = 0.35$). The CosFace and ArcFace papers use $s = 64$ for their thousands of identities; with ten classes the
# true class can reach a probability above 0.99 from $s = 16$ on (section 1). Retrieval uses the cosine on the
# embedding.
#
# SphereFace's $m = 4$ needs a caveat. Its margin is annealed by the number of training steps (section 2), and these
# runs are short: at their end $\lambda$ is still far above the final 5 of the SphereFace code, so the target logit is
# still mostly the plain cosine. The cell prints $\lambda$ and what the margin is then worth at $\theta_y = 30°$, as
# an extra angle, next to its worth at $\lambda = 5$. Read the SphereFace row as SphereFace early in its warm-up,
# with little of its margin, not as SphereFace at $m = 4$.
#
# **Verification** asks whether two images show the same class. We score 20,000 test pairs, half *genuine* (same
# class) and half *impostor* (different classes), by the cosine of their embeddings, and accept a pair when its score
# is at least a threshold $t$. The true accept rate TAR is the share of genuine pairs accepted, the false accept rate
# FAR the share of impostor pairs accepted; moving $t$ trades one for the other, and the ROC curve draws TAR against
# FAR. We report the equal error rate (EER), the error rate at the threshold where FAR = 1 − TAR (as many false
# accepts as false rejects; lower is better), and the TAR at FAR = $10^{-3}$ (the share of genuine pairs still accepted
# when at most one impostor pair in a thousand is; higher is better).

# %%
CONFIGS = {
    "softmax": ("head", dict()),
    "normface (s=16)": ("head", dict(scale=16.0)),
    "sphereface (m=4)": ("head", dict(margin=4)),
    "cosface (s=30, m=0.35)": ("head", dict(scale=30.0, margin=0.35)),
    "arcface (s=30, m=0.5)": ("head", dict(scale=30.0, margin=0.5)),
    "triplet (lecture 05)": ("loss", dict(margin=0.2)),
    "contrastive (lecture 05)": ("loss", dict(margin=1.0)),
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

# SphereFace's annealing: lambda after this many steps, and the extra angle its target logit then adds at 30 degrees
sphere = heads.SphereFaceHead(64, 10, margin=CONFIGS["sphereface (m=4)"][1]["margin"])
steps = len(runs["sphereface (m=4)", DATASETS[0], SEEDS[0]]["history"].step_loss)
theta30 = torch.tensor(math.radians(30.0))

def extra_angle(lam):
    target = (lam * torch.cos(theta30) + heads.sphereface_psi(theta30, sphere.margin)) / (1 + lam)
    return math.degrees(torch.acos(target).item()) - 30.0

sphere.steps.fill_(steps)
lam_end, lam_final = sphere.lambda_, sphere.lambda_min
print(f"\nSphereFace after {steps} training steps: λ = {lam_end:.1f}; at θ_y = 30° its margin adds "
      f"{extra_angle(lam_end):.1f}° (at λ = {lam_final:g}: {extra_angle(lam_final):.1f}°)")
# far from the final lambda, the margin is worth less than a quarter of what it is worth there
assert lam_end > 2 * lam_final and extra_angle(lam_end) < extra_angle(lam_final) / 4

# %%
d0 = DATASETS[0]
fig, ax = plt.subplots(figsize=(6, 4.2))
for label in CONFIGS:
    roc = results[label, d0]["roc"]
    ax.plot(roc.far.clamp_min(1e-5), roc.tar, label=f"{label}: EER {results[label, d0]['eer']:.3f}")
ax.set(xscale="log", xlim=(1e-4, 1), xlabel="false accept rate", ylabel="true accept rate",
       title=f"ROC, {d0} test pairs, seed {SEEDS[0]} only (the table: every seed)")
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
if not QUICK:   # the default settings: ArcFace verifies better than the softmax, beyond the seed spread, on both datasets
    assert all(clearly_below(table[margin_heads[1], d, "eer"], table["softmax", d, "eer"])  # claim: heads-full
               for d in DATASETS)

# %% [markdown]
# How to read the table. Every entry is a mean ± standard deviation over the seeds in `SEEDS` (other initial
# weights, another batch order). The lines under the figure compare CosFace's and ArcFace's EER with the softmax's by
# the course's rule over seeds (lecture 04: a gap counts when it is larger than the two standard deviations added), and
# the list after them gives every EER difference between two rows that passes the rule; any other gap between two
# rows is seed noise, not a ranking. The figure shows one seed only, so its legend may order two close rows
# differently from the table.
#
# With this notebook's default settings (8 epochs, three seeds, both datasets), ArcFace verifies better than the plain
# softmax beyond the seed spread, on both datasets; the cell asserts it in that mode. The quick mode that CI runs
# trains far less (2 epochs on half the images, one dataset, two seeds), and its verdicts need not agree: read the lines your
# run printed.

# %% [markdown]
# ## 5. Pitfalls
#
# **A large scale and margin from a random start.** ArcFace with $s = 64$, $m = 1.2$ asks every training image to be
# more than 69° closer to its class than to any other before the loss lets go. From random weights no image is, so the
# margin-penalised target logit $s\cos(\theta_y + m)$ starts far below the others, and the loss starts far above
# $\log 10 \approx 2.3$, the loss of a uniform guess over 10 classes. The run below (section 4's network and data, on
# every seed) shows what follows:
#
# - **The loss stops being a progress bar.** Its value says how far the images are from the 69° goal, not whether the
#   embedding is any good: at the end of the run it is still above that of a uniform guess, while the plain cosine
#   already ranks the test images far above chance. So never compare loss values across different $(s, m)$; compare
#   what you care about (retrieval, verification). The cell prints how the run's Precision@1 compares with section 4's
#   $s = 30$, $m = 0.5$ runs, by the rule over seeds.
#
# Whether such a margin can be met at all depends on how many classes share the sphere. With 10 classes in 64
# dimensions it can: ten weights can sit 96° apart (the simplex of section 1), well over the 69° asked for. The more
# classes, the closer each weight's nearest neighbour, and the thinner the cap around its weight in which an image
# meets the margin; with the thousands of identities of face recognition, that cap leaves room for few images. Face
# recognition therefore uses smaller margins (ArcFace's authors compared several and train with $m = 0.5$), and some
# implementations raise the margin from 0 during the first epochs; exercise 4 tries that here.

# %%
hard_runs = [run("arcface (s=30, m=0.5)", d0, override=("head", dict(scale=64.0, margin=1.2)), seed=seed)
             for seed in SEEDS]
easy_runs = [runs["arcface (s=30, m=0.5)", d0, seed] for seed in SEEDS]
for tag, rs in (("s=30, m=0.5", easy_runs), ("s=64, m=1.2", hard_runs)):
    first = metrics.mean_sd([r["history"].step_loss[0] for r in rs])
    last = metrics.mean_sd([r["history"].step_loss[-1] for r in rs])
    p1 = metrics.mean_sd([r["p1"] for r in rs])
    print(f"ArcFace {tag}: loss {first[0]:6.2f} at the first step, {last[0]:6.2f} ± {last[1]:.2f} at the last; "
          f"P@1 {p1[0]:.3f} ± {p1[1]:.3f}")
hard_p1, easy_p1 = metrics.mean_sd([r["p1"] for r in hard_runs]), metrics.mean_sd([r["p1"] for r in easy_runs])
print(f"{d0}, over {len(SEEDS)} seeds: P@1 of s=64, m=1.2 against s=30, m=0.5: "
      + ("higher, beyond the seed spread" if metrics.clearly_above(hard_p1, easy_p1) else
         "lower, beyond the seed spread" if metrics.clearly_above(easy_p1, hard_p1) else "within the seed spread"))
# on every seed: the loss starts and ends worse than a uniform guess, yet the embedding retrieves far above chance (0.1)
assert all(r["history"].step_loss[0] > math.log(10) for r in hard_runs)
assert all(r["history"].step_loss[-1] > math.log(10) and r["p1"] > 0.5 for r in hard_runs)   # claim: loss-not-progress

# %% [markdown]
# **NaN in half precision.** $\frac{d}{dc}\arccos c = -1/\sqrt{1 - c^2}$ is infinite at $c = \pm 1$ — when a feature lies
# exactly on its class weight. Clamping to $1 - 10^{-6}$ fixes it in float32, but in float16 $1 - 10^{-6}$ *rounds to 1*:
# the clamp does nothing. Our heads compute the margin in (at least) float32 whatever the input dtype.

# %%
c = torch.tensor([1.0], dtype=torch.float16, requires_grad=True)
torch.acos(c.clamp(-1 + 1e-6, 1 - 1e-6)).sum().backward()
print("float16, clamped in float16: gradient", c.grad.item())
head = heads.ArcFaceHead(4, 3, scale=16, margin=0.5).half()
# unit class weights that float16 holds exactly, and features equal to them: every target cosine is exactly 1
W_exact = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
with torch.no_grad():
    head.weight.copy_(W_exact)
x = W_exact.half().requires_grad_(True)
target_cos = head.cosine(x.detach()).diagonal()
loss = torch.nn.functional.cross_entropy(head(x, torch.arange(3)).float(), torch.arange(3))
loss.backward()
print("target cosines in float16:", target_cos.tolist())
print("our ArcFaceHead in float16 at cos = 1: loss", round(loss.item(), 4), "finite gradient:",
      bool(torch.isfinite(x.grad.float()).all()))
assert bool((target_cos == 1).all())   # the case the sentence is about
assert not math.isfinite(c.grad.item()) and torch.isfinite(x.grad.float()).all()   # claim: half-precision

# %% [markdown]
# **The class weights live in the head.** They are parameters of the *loss*, not of the network: an optimiser built
# on `model.parameters()` alone never updates them (they stay random), and `torch.save(model.state_dict())` does not
# save them. `train.train` adds the parameters of an `nn.Module` loss to its optimiser; when you save, save both.
# The cell makes the mistake on purpose, then trains the same head with `train.train`.

# %%
net, head = models.MLP(16), heads.CosFaceHead(16, 10)
before = head.weight.detach().clone()
tr = data.load("mnist", "train", "mini")
opt = torch.optim.Adam(net.parameters(), lr=1e-3)          # the mistake: the head is not in the optimiser
for xb, yb in data.DeviceLoader(tr.images[:512], tr.labels[:512], batch_size=128, name="mnist"):
    loss = torch.nn.functional.cross_entropy(head(net(xb), yb), yb)
    opt.zero_grad(); loss.backward(); opt.step()
grad = head.weight.grad.norm().item()
print(f"the loss's gradient on the class weights has norm {grad:.3g}; class weights changed:",
      not torch.equal(before, head.weight.detach()))
# the loss asks the class weights to move, and the optimiser built on the network alone leaves them where they were
assert grad > 0 and torch.equal(before, head.weight.detach())   # claim: weights-in-optimiser
train.train(net, heads.HeadLoss(head), tr.images[:512], tr.labels[:512], epochs=1, batch_size=128, lr=1e-3,
            name="mnist", device="cpu", progress=False)
print("after train.train (the head's loss given as loss_fn): class weights changed:",
      not torch.equal(before, head.weight.detach()))
assert not torch.equal(before, head.weight.detach())   # claim: weights-in-optimiser
checkpoint = {"model": net.state_dict(), "head": head.state_dict()}   # save both
print("saved:", list(checkpoint["head"]))

# %% [markdown]
# ## 6. The Embedding Lab
# The lab trains a network with the head you choose (the margin slider is the head's $m$: radians for ArcFace, a
# cosine offset for CosFace, the integer multiplier for SphereFace; Softmax and NormFace have none, so it is greyed
# out) and shows a fixed set of test images after every epoch (a UMAP layout; press ▶). For the four normalised heads
# the layout is made from the L2-normalised embeddings and retrieval is measured with the cosine, as in section 4. For
# Softmax the lab uses the raw embeddings and the Euclidean distance, unlike section 4, which scores the softmax with
# the cosine too: so a Softmax run of the lab and section 4's softmax row are not measured alike. Keep two runs to
# compare, say, CosFace and ArcFace.
#
# The cell trains ArcFace ($s = 30$, $m = 0.5$) once, to check that the lab is wired up.

# %%
from dmlcourse import lab

embedding_lab = lab.EmbeddingLab(losses=["arcface", "cosface", "sphereface", "normface", "softmax"], size=SIZE,
                                 epochs=runtime.quick(5, 2), train_per_class=runtime.quick(None, 100),
                                 probe_per_class=runtime.quick(100, 20),
                                 layout=runtime.quick("chain", "pca"), warm_up=not QUICK)  # CI: no UMAP
assert embedding_lab.miner.disabled and not embedding_lab.margin.disabled   # heads have a margin, no miner
# how the lab measures each head: the cosine for the normalised heads, the Euclidean distance for the softmax
assert all(lab.distance_for(h) == "cosine" for h in ("arcface", "cosface", "sphereface", "normface"))
assert lab.distance_for("softmax") == "euclidean"
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
#   become confident: with ten classes at $s = 1$, a point on its own weight reaches a probability of only
#   $e/(e + 9) \approx 0.23$ with the other weights at 90°, and no layout lets all ten classes pass
#   $e/(e + 9e^{-1/9}) \approx 0.25$ at once; at $s = 16$ even the 90° layout passes 0.99. <!-- claim: scale-confidence -->
# - A margin on the target class forces a gap between classes: multiplicative on the angle (SphereFace, trained with
#   annealing), subtractive on the cosine (CosFace) or additive on the angle (ArcFace, in radians —
#   pytorch-metric-learning takes degrees). <!-- recap -->
# - SphereFace's $\psi$ and ArcFace's fallback past $\pi - m$ keep every target logit decreasing in the angle.
#   <!-- claim: monotone-targets -->
# - An acos clamped in float16 still has an infinite gradient at $\cos = 1$, so the heads compute the margin in
#   float32. <!-- claim: half-precision -->
# - A margin of the same size is not the same margin on the cosine and on the angle: in 2-D, fewer test points meet
#   CosFace's 0.2 than ArcFace's 0.2 rad, beyond the seed spread. <!-- claim: cosface-2d -->
# - A 2-D embedding is read by two angles, to the class's own weight ($\theta_y$, what the margins act on) and around
#   the class's own mean direction (the arc width), compared over seeds, not in one picture. <!-- recap -->
# - With section 4's default settings, ArcFace verifies better than the softmax beyond the seed spread on both
#   datasets; any other gap between two rows is within the seed spread unless the list under the table names it.
#   <!-- claim: heads-full -->
# - A loss value is not comparable across scales and margins: ArcFace with $s = 64$, $m = 1.2$ ends with a loss
#   worse than a uniform guess on every seed while its embedding retrieves far above chance.
#   <!-- claim: loss-not-progress -->
# - The class weights belong to the loss: an optimiser built on the network's parameters alone never moves them,
#   while `train.train` adds them to its optimiser; put them in your checkpoints too. <!-- claim: weights-in-optimiser -->
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
#    happens to $\theta_y$, the arc width and the accuracy, and how does exercise 3's limit show? Then train ArcFace
#    with $s = 64$, $m = 1.2$ but raise the margin linearly from 0 over the first epoch (`train.train` calls
#    `should_stop()` after every step: a function that sets `head.margin` and returns False does it). How does it
#    compare, over the seeds, with section 4's $s = 30$, $m = 0.5$ runs (the ones section 5 compared with), in quick
#    and in full mode? Does the loss curve work as a progress bar then?

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
    ψ(θ) = (-1)^k cos(mθ) - 2k on [kπ/m, (k+1)π/m], k = 0 .. m-1. The rows of W may have any length: normalise
    them (unit class weights); x keeps its length."""
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
