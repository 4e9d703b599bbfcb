# %% [markdown]
# # 05 · Siamese and triplet networks: contrastive, triplet and NCA losses
#
# Lectures 03 and 04 learned embeddings *indirectly*: by reconstructing the input or by classifying it. This lecture
# trains the embedding **directly on distances**. The network sees two or three images at a time and is told only
# *"these two are alike"* or *"this one is closer to that one than to the other"*. The loss then moves the
# embeddings so that the distances tell the truth.
#
# What you will see:
# 1. the Siamese network, and why "sharing weights" has two implementations that compute exactly the same (with
#    batch norm in eval mode);
# 2. pairs and triplets built from labels, and positives built **without** labels, by augmentation;
# 3. the contrastive loss (two forms), the triplet loss and the NCA loss, each with its geometry;
# 4. all three trained on MNIST and Fashion-MNIST, compared honestly.

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
from dmlcourse import cache, losses, siamese, tuples
from dmlcourse.listing import show

TEST_PER_CLASS = runtime.quick(200, 100)
# Section 4 compares losses: smaller runs, each repeated with several seeds, teach more than one big run.
SEEDS = runtime.quick([0, 1, 2], [0, 1])
RUN_PER_CLASS = runtime.quick(300, 100)
RUN_EPOCHS = runtime.quick(5, 2)
MARGINS = runtime.quick((0.1, 0.2, 0.4), (0.2,))   # triplet margins of the squared-or-plain sweep
EPOCHS = 2                                    # section 5's self-supervised run ...
SSL_PER_CLASS = 100                           # ... on this many of section 4's training images per class

# %% [markdown]
# ## 1. A Siamese network is one network used several times
#
# A Siamese network has two (or three) *sub-networks* $f_\theta$ with **the same weights** $\theta$. Each image of a
# pair goes through "its" sub-network, and the loss looks at the distance $d(f_\theta(x^1), f_\theta(x^2))$.
#
# The Guelph slides describe two ways to build it:
#
# * **copies in memory** — $k$ separate sub-networks whose weights are kept equal: after each update the new weights
#   are copied into every copy;
# * **one sub-network applied $k$ times** — nothing to keep in sync.
#
# There is one subtlety in the first version. Because $\theta$ is *one* parameter used $k$ times, its gradient is the
# **sum** of the gradients that reach each copy:
# $\nabla_\theta L = \sum_{b=1}^{k} \nabla_{\theta_b} L$. Updating with one copy's gradient and copying that around
# would be a different (wrong) algorithm. `SiameseCopies.step` sums first, updates once, then copies. (The demo
# after it borrows two tools that sections 2 and 3 explain: `tuples.make_pairs` draws labelled pairs and
# `losses.contrastive_loss` gives them a loss, here only so that there is a gradient to compare.)

# %%
show(siamese.SiameseCopies.step)

# %%
runtime.seed_everything(0)
net = models.SmallCNN(embedding_dim=16)
shared = siamese.SharedSiamese(net).to(device)
copies = siamese.SiameseCopies(net, k=2).to(device)
opt_shared = torch.optim.SGD(shared.parameters(), lr=0.05)
opt_copies = torch.optim.SGD(copies.branches[0].parameters(), lr=0.05)

demo = data.load("mnist", "train", "mini")
i, j, y = tuples.make_pairs(demo.labels, 64, seed=0)
x1, x2 = data.to_float(demo.images[i], "mnist").to(device), data.to_float(demo.images[j], "mnist").to(device)
y = y.to(device)

shared.eval(); copies.eval()   # batch-norm statistics are then fixed, so both see identical arithmetic
for step in range(3):
    z_shared, z_copies = shared(x1, x2), copies(x1, x2)
    same_out = max((a - b).abs().max().item() for a, b in zip(z_shared, z_copies))
    for z, opt in ((z_shared, opt_shared), (z_copies, opt_copies)):
        opt.zero_grad()
        losses.contrastive_loss(*z, y, margin=1.0).backward()
    grad_bytes = siamese.gradient_bytes(shared), siamese.gradient_bytes(copies)
    # what the first copy's gradient alone would miss: the other copy's share of the summed gradient
    one_copy = max((p.grad - q.grad).abs().max().item()
                   for p, q in zip(shared.parameters(), copies.branches[0].parameters()))
    opt_shared.step()
    copies.step(opt_copies)
    same_w = max((p - q).abs().max().item() for p, q in zip(shared.parameters(), copies.branches[1].parameters()))
    print(f"step {step}: largest output difference {same_out:.1e}, largest weight difference after update "
          f"{same_w:.1e}; one copy's gradient alone is off by up to {one_copy:.1e}")
    assert same_out < 1e-4 and same_w < 1e-5   # claim: siamese-sum
    assert one_copy > 1e-3                     # claim: siamese-sum (100 times the weights' tolerance)

print(f"\nparameters: one shared network {siamese.parameter_bytes(shared) / 1024:.0f} KiB, "
      f"two copies {siamese.parameter_bytes(copies) / 1024:.0f} KiB")
print(f"gradients during the step: {grad_bytes[0] / 1024:.0f} KiB vs {grad_bytes[1] / 1024:.0f} KiB")

# %% [markdown]
# Same outputs and the same update (asserted at every step), while the first copy's gradient alone differs from
# the summed one by far more than rounding (asserted too). The copies cost $k$ times the memory for parameters and
# gradients (printed; the activations are the same either way: both versions push the same images through the same
# layers). That is why
# every modern implementation, this course's included, uses **one** network and simply calls it on each element
# of the tuple; "Siamese" then only describes how the loss is built.
#
# ## 2. Tuples: from labels, and from augmentation
#
# With labels, any two images of the same class make a *similar* pair ($y = 0$) and two images of different classes a
# *dissimilar* pair ($y = 1$ — note the Guelph slides' convention: $y$ marks **dis**similarity). A triplet is an
# anchor, a positive of its class and a negative of another class.

# %%
show(tuples.make_triplets)
a, p, n = tuples.make_triplets(demo.labels, 8, seed=1)
assert torch.all(demo.labels[a] == demo.labels[p]) and torch.all(demo.labels[a] != demo.labels[n])
grid = torch.cat([demo.images[a], demo.images[p], demo.images[n]])
plots.image_grid(grid, torch.cat([demo.labels[a], demo.labels[p], demo.labels[n]]), ncols=8,
                 title="triplets: anchors (top), positives (middle), negatives (bottom)");

# %% [markdown]
# **Without labels** we can still make a positive: a slightly shifted, rotated and noisy copy of the anchor shows the
# same object, so it should embed close to it. Every *other* image of the batch serves as a negative (most of them
# really are of another class). This is the idea behind *self-supervised* methods, which learn from the data alone;
# SimCLR (Chen, Kornblith, Norouzi & Hinton, 2020) is the best-known one for images: it trains a network to
# recognise which two augmented views in a large batch come from the same image. Our augmentation is written in
# plain torch (an affine sampling grid), no torchvision needed.

# %%
v1, v2 = tuples.augmentation_pairs(demo.images[:10], seed=0, max_shift=3, max_rotation=15, noise=0.1)
plots.image_grid(torch.cat([demo.images[:10], v1[:, 0], v2[:, 0]]), ncols=10,
                 title="originals (top) and two augmented views of each (no labels used)");

# %% [markdown]
# ## 3. The three losses and their geometry
#
# ### Contrastive loss
# For a pair with distance $d = d(f(x^1), f(x^2))$ and $y = 1$ for dissimilar pairs, eq. 11 of the Guelph slides is
#
# $$\ell = (1 - y)\, d + y\, [m - d]_+ ,$$
#
# pull similar pairs together, push dissimilar pairs out to the margin $m$ and then leave them alone.
# The original paper (Hadsell, Chopra & LeCun, 2006) writes it with the Euclidean distance $D$ and **squares**:
#
# $$\ell_{\text{Hadsell}} = (1 - y)\,\tfrac12 D^2 + y\,\tfrac12 [m - D]_+^2 .$$
#
# The two are not the same function. Squaring changes the gradients: the pull on a similar pair is $D$ (weak when it
# is already close) instead of a constant, and the push on a dissimilar pair fades smoothly to 0 as it reaches the
# margin instead of stopping abruptly. `contrastive_loss(..., form="hadsell", distance="euclidean")` is the paper's
# version; `form="lecture"` (the slides' eq. 11) with its default `distance="squared_euclidean"` is eq. 11 with
# $d = D^2$ — then the similar-pair term is $D^2$ (twice Hadsell's) but the dissimilar term $[m - D^2]_+$ has its
# margin on the *squared* scale: it stops pushing at $D = \sqrt{m}$, not at $D = m$. Margins do not carry over
# between the two. The figure uses $m = 0.5$, where the difference shows: the push of the two plain-distance
# forms ends at $D = 0.5$, that of the squared one at $D = \sqrt{0.5} \approx 0.71$ (asserted). (At $m = 1$ the
# three would end at the same place, since $\sqrt{1} = 1$.) You write eq. 11 yourself in the first exercise at the
# end; the package's `contrastive_loss` is printed after the exercises.

# %%
D = torch.linspace(0, 2, 201, dtype=torch.float64, requires_grad=True)
zeros = torch.zeros(201, 1, dtype=torch.float64)
m = 0.5
curves = {}
for label, form, dist in [("eq. 11, d = D", "lecture", "euclidean"), ("eq. 11, d = D²", "lecture", "squared_euclidean"),
                          ("Hadsell", "hadsell", "euclidean")]:
    for y in (0, 1):
        val = losses.contrastive_loss(zeros, D[:, None], torch.full((201,), y), m, distance=dist, form=form,
                                      reduction="none")
        grad, = torch.autograd.grad(val.sum(), D)
        curves[label, y] = (val.detach(), grad)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for ax, y, title in ((axes[0], 0, "similar pair (y = 0)"), (axes[1], 1, f"dissimilar pair (y = 1), m = {m}")):
    for label in ("eq. 11, d = D", "eq. 11, d = D²", "Hadsell"):
        ax.plot(D.detach(), curves[label, y][0], label=label)
    ax.set(xlabel="Euclidean distance D", ylabel="loss", title=title)
axes[0].legend(frameon=False)
fig.tight_layout()

# the claims of the text, checked
near_margin = torch.argmin((D.detach() - (m - 0.01)).abs())       # D just below the margin
assert curves["Hadsell", 1][1][near_margin].abs() < 0.02          # Hadsell's push fades out at the margin ...
assert abs(curves["eq. 11, d = D", 1][1][near_margin] + 1) < 1e-9  # ... eq. 11's stays at full strength
# where each push ends: the last D with a non-zero dissimilar-pair loss
push_ends = {label: D.detach()[curves[label, 1][0] > 0].max().item() for label in ("eq. 11, d = D", "eq. 11, d = D²",
                                                                                    "Hadsell")}
print(f"m = {m}: the last D (grid step 0.01) with a dissimilar-pair loss above 0: "
      + ", ".join(f"{k} {v:.2f}" for k, v in push_ends.items()))
assert abs(push_ends["eq. 11, d = D"] - m) < 0.02 and abs(push_ends["Hadsell"] - m) < 0.02
assert abs(push_ends["eq. 11, d = D²"] - m ** 0.5) < 0.02 and m ** 0.5 - m > 0.1   # the squared margin ends later

# %% [markdown]
# ### Triplet loss
# A triplet only asks for an *order*: the positive must be closer than the negative, by a margin $m$ (eq. 12):
#
# $$\ell = [\, d(a,p) - d(a,n) + m \,]_+ .$$
#
# Below is the loss over the plane of $(d(a,p), d(a,n))$. Above the dashed line $d(a,n) = d(a,p) + m$ a triplet is
# already satisfied and gives **zero** loss and zero gradient: it teaches nothing. The red dots are 2,000 random
# triplets of test images under the *untrained* network (normalised embeddings). Move the margin and watch the
# fraction of *active* triplets — the ones still producing a gradient.

# %%
test = data.load("mnist", "test", "mini")
runtime.seed_everything(0)
untrained = models.SmallCNN(32, normalize=True)
z_untrained = models.embed(untrained, test.images, name="mnist")
a, p, n = tuples.make_triplets(test.labels, 2000, seed=0)
# every distance between two test images (exact, not the faster matrix-product formula), then the triplets' ones
dist_untrained = torch.cdist(z_untrained, z_untrained, compute_mode="donot_use_mm_for_euclid_dist")
d_ap, d_an = dist_untrained[a, p], dist_untrained[a, n]
explorer = siamese.triplet_margin_explorer(d_ap, d_an, margin=0.2)
explorer

# %%
triplet_terms = {m: losses.triplet_loss(z_untrained[a], z_untrained[p], z_untrained[n], m, distance="euclidean",
                                       reduction="none")
                 for m in (0.0, 0.2, 0.5, 1.0)}   # one loss term per triplet, from the package
active = {m: (t > 0).float().mean().item() for m, t in triplet_terms.items()}
print("active fraction at m = 0, 0.2, 0.5, 1.0:", [f"{a:.2f}" for a in active.values()])
print(f"median d(a,p) {d_ap.median():.3f}, median d(a,n) {d_an.median():.3f}")
assert active[0.0] < 0.5    # most triplets are already in the right order before any training ...
assert active[0.2] > 0.9    # ... but the distances are so bunched that m = 0.2 leaves nearly all of them active

# %% [markdown]
# Even at $m = 0$ fewer than half of the triplets are violated: the untrained network keeps some of the pixels'
# similarity, so the positive is usually the closer one already. But every distance is small (printed medians), so
# the gaps $d(a,n) - d(a,p)$ between them are smaller still, and at $m = 0.2$ nearly every triplet is active (more
# than 90 %, asserted): the loss has something to say about almost all of them.

# %% [markdown]
# ### Squared or plain distance?
# Which distance goes into eq. 12? The Guelph slides give the **squared** Euclidean distance as an example of $d$
# (eq. 2; FaceNet uses it), while the face-recognition slides write the triplet loss with the plain distance
# $\lVert f(a) - f(p) \rVert_2$, as does `TripletMarginLoss` in pytorch-metric-learning (a widely used PyTorch
# library of metric-learning losses and miners, which this course's tests use as an independent reference; you
# do not need it installed). The formula looks the same,
# but the margin does not mean the same thing. Factor the difference of squares:
#
# $$d(a,p)^2 - d(a,n)^2 + m = \big(d(a,p) + d(a,n)\big)\Big(d(a,p) - d(a,n) + \frac{m}{d(a,p) + d(a,n)}\Big).$$
#
# The squared hinge is the plain hinge with a margin $m / (d(a,p) + d(a,n))$ that changes from triplet to triplet:
# **larger** than $m$ where the two distances add up to less than 1, **smaller** where they add up to more. On
# L2-normalised embeddings there is a cleaner way to say it: $d^2 = 2 - 2\cos$, so the squared hinge is
# $[\,2(\cos(a,n) - \cos(a,p)) + m\,]_+$, a margin of $m/2$ **on the cosines**, the same for every triplet.
# `triplet_loss(..., distance="squared_euclidean")` is the squared form. Triplet by triplet this is algebra: where
# $d(a,p) + d(a,n) < 1$ the squared form is the stricter one, where the sum is above 1 the plain one is. What has to
# be measured is where the sums lie. On the untrained network above the embeddings are bunched together, so at the
# same $m$ the squared form should keep **more** triplets active:

# %%
def active_fractions(z, a, p, n, margins):
    """Fraction of the triplets (a, p, n) with a non-zero loss, plain and squared distance, per margin."""
    za, zp, zn = z[a], z[p], z[n]
    out = {}
    for m in margins:
        plain = losses.triplet_loss(za, zp, zn, m, distance="euclidean", reduction="none")
        squared = losses.triplet_loss(za, zp, zn, m, distance="squared_euclidean", reduction="none")
        out[m] = ((plain > 0).float().mean().item(), (squared > 0).float().mean().item())
    return out

sums_untrained = d_ap + d_an
untrained_active = active_fractions(z_untrained, a, p, n, MARGINS)
print(f"untrained: d(a,p) + d(a,n) has median {sums_untrained.median():.2f}, "
      f"{(sums_untrained < 1).float().mean():.0%} of the triplets below 1")
for m, (plain, squared) in untrained_active.items():
    print(f"  m = {m}: active fraction, plain {plain:.3f}, squared {squared:.3f}")
assert (sums_untrained < 1).all()   # claim: bunched (every sum below 1: the squared form's margin acts larger ...)
# ... so it keeps strictly more triplets active, at every margin that leaves the plain form anything to satisfy
# claim: bunched
assert all(sq > pl for pl, sq in untrained_active.values() if pl < 1) and any(pl < 1 for pl, _ in untrained_active.values())

# %% [markdown]
# ### NCA loss
# NCA (Goldberger et al., 2005) turns distances into a soft choice of neighbour. Point $i$ picks $j$ with probability
# $p_{ij} = \exp(-d_{ij}) / \sum_{k \ne i} \exp(-d_{ik})$ (squared Euclidean $d$), and the loss is
# $-\log \sum_{j \in \text{class}(i)} p_{ij}$: the chance that $i$ picks a neighbour of its own class.
#
# Eq. 14 of the Guelph slides writes a different variant: for each anchor–positive pair, the positive alone in the
# numerator and **only the negatives** in the denominator,
# $-\log\big(e^{-d(a,p)} / \sum_{n} e^{-d(a,n)}\big)$. (Eq. 14 prints the denominator's distance as
# $d(f(a) - f(n))$: a slip for $d(f(a), f(n))$, since a distance takes two points.)
# Because the positive is missing from the denominator this
# is not the log of a probability: it is not bounded below by 0 and keeps rewarding larger gaps without end. The
# `variant` argument selects either.
#
# Two toys of 12 points in the plane, three classes, each blown up by a factor of 10. In the first the labels are
# random (`arange(12) % 3` on random points): no spread makes such classes separable, and blowing the points up only
# sharpens the soft choice of neighbour into a hard one, so wherever the nearest point is of another class the loss
# explodes. Neither loss measures separability alone: both depend on the **scale** of the embedding. (That is why
# a loss on normalised embeddings comes with a scale, or temperature, as in section 5.) In the second toy the
# classes really are three separate clusters: blowing them up drives Goldberger's loss down to its floor of 0, and
# eq. 14 below zero, further the more they are spread.

# %%
g = torch.Generator().manual_seed(0)
labels_toy = torch.arange(12) % 3
toys = {"random labels": torch.randn(12, 2, generator=g),
        "three clusters": torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])[labels_toy]
                          + 0.4 * torch.randn(12, 2, generator=g)}
nca_toy = {}
for toy, z0 in toys.items():
    for spread in (1, 10):
        lg = losses.nca_loss(spread * z0, labels_toy, variant="goldberger")
        ln = losses.nca_loss(spread * z0, labels_toy, variant="negatives_only")
        nca_toy[toy, spread] = (lg.item(), ln.item())
        print(f"{toy:<15} spread x{spread:<3} mean Goldberger term {lg:9.3f}   mean eq. 14 term {ln:9.3f}")
# random labels: the same classes, ten times the spread, a loss many times larger
assert nca_toy["random labels", 10][0] > 10 * nca_toy["random labels", 1][0]   # claim: nca-scale
assert nca_toy["random labels", 10][1] > 10 * nca_toy["random labels", 1][1]   # claim: nca-scale
# separable clusters: Goldberger's loss falls towards 0, eq. 14 falls below 0 and keeps falling
assert nca_toy["three clusters", 10][0] < nca_toy["three clusters", 1][0] < 0.1      # claim: nca-unbounded
assert nca_toy["three clusters", 10][1] < nca_toy["three clusters", 1][1] < 0        # claim: nca-unbounded

# %% [markdown]
# ## 4. Training with each loss
#
# The same network, the same class-balanced batches (8 classes × 16 images), the same epochs; only the loss changes
# (and the triplet runs normalise their embeddings, as the table's rows say).
# The network is an MLP (784 → 256 → 32, `models.MLP`) rather than the CNN of section 1: the lesson is the loss, and
# on a CPU the MLP trains many times faster, which pays for training every configuration with several seeds. Batch
# versions of the losses (`siamese.make_batch_loss`):
#
# | loss | tuples from a batch of 128 | settings |
# |---|---|---|
# | contrastive | every pair (8,128 pairs) | eq. 11, Euclidean $d$, $m = 1$ |
# | triplet | 4 random triplets per anchor (random sampling; lecture 06 mines them) | Euclidean $d$ on L2-normalised embeddings, $m = 0.2$ |
# | NCA | the whole batch | Goldberger's form, squared Euclidean |
#
# Eq. 11 and eq. 12 give one term per tuple; a batch loss has to turn its terms into one number, its `reduction`.
# Summed, the loss and its gradient would grow with the number of tuples in the batch (8,128 pairs here, 512
# triplets), so the step a learning rate makes would too. All runs here take the **mean** (`reduction="mean"`).
# Another choice, `"mean_nonzero"` (the default of pytorch-metric-learning's triplet loss), averages only the
# non-zero terms, so the loss does not shrink merely because most tuples are already satisfied; exercise 4 lets
# you try it, and lecture 06 compares the two.
#
# On MNIST we store the distances of similar and dissimilar test pairs, to watch them separate: before and after
# training, and for the contrastive loss after every epoch too (the Fashion-MNIST runs skip them: nothing below
# draws them). Runs are cached on disk: running the notebook again loads them.
#
# One training run is one draw: another seed (other initial weights, another batch order, other random triplets)
# moves P@1 and MAP@R by about the standard deviations the table prints. So every configuration is trained once
# per seed in `SEEDS`, with smaller runs to pay for the repeats, and the tables give the **mean ± standard deviation
# over seeds**. A difference
# between two losses counts only when it is larger than their spread (here: the gap between the means exceeds the
# sum of the two standard deviations); anything smaller is seed noise.

# %%
SETTINGS = {
    "contrastive": (dict(margin=1.0, distance="euclidean"), False),
    "triplet": (dict(margin=0.2, distance="euclidean"), True),
    "nca": ({}, False),
}

def run(loss_name, dataset, seed=0, kwargs=None):
    default_kwargs, normalize = SETTINGS[loss_name]
    kwargs = default_kwargs if kwargs is None else kwargs
    # the test-pair distances that the histograms below draw: MNIST only, every epoch for the contrastive loss
    dists_when = ("never" if dataset != "mnist" else "every epoch" if loss_name == "contrastive"
                  else "before and after")
    config = dict(loss=loss_name, dataset=dataset, size=SIZE, kwargs=kwargs, epochs=RUN_EPOCHS,
                  train_per_class=RUN_PER_CLASS, test_per_class=TEST_PER_CLASS, seed=seed, net="mlp",
                  dists=dists_when)

    def compute():
        tr, te = data.load(dataset, "train", SIZE), data.load(dataset, "test", SIZE)
        keep = data.balanced_subset(tr.labels, RUN_PER_CLASS)
        tkeep = data.balanced_subset(te.labels, TEST_PER_CLASS)
        xt, yt = te.images[tkeep], te.labels[tkeep]
        runtime.seed_everything(seed)
        model = models.MLP(32, hidden=(256,), normalize=normalize)
        loss_fn = siamese.make_batch_loss(loss_name, **kwargs, **(dict(seed=seed) if loss_name == "triplet" else {}))

        def test_pair_distances():
            return siamese.pair_distances(models.embed(model, xt, name=dataset, device=device), yt)

        dists = [] if dists_when == "never" else [test_pair_distances()]
        hist = train.train(model, loss_fn, tr.images[keep], tr.labels[keep], seed=seed,
                           epochs=RUN_EPOCHS, batch_size=128, samples_per_class=16, lr=2e-3, name=dataset,
                           device=device, progress=True,
                           on_epoch_end=(lambda h: dists.append(test_pair_distances()))
                           if dists_when == "every epoch" else None)
        if dists_when == "before and after":
            dists.append(test_pair_distances())
        z = models.embed(model, xt, name=dataset, device=device)
        return {"history": hist, "z": z, "labels": yt, "images": xt, "dists": dists,
                "p1": metrics.precision_at_1(z, yt), "map_r": metrics.map_at_r(z, yt)}

    tag = "" if kwargs == default_kwargs else "-" + "-".join(f"{k}{v}" for k, v in sorted(kwargs.items()))
    return cache.cached(f"l05-{loss_name}-{dataset}{tag}-seed{seed}", config, compute)

runs = {(l, d, seed): run(l, d, seed) for d in ("mnist", "fashion-mnist") for l in SETTINGS for seed in SEEDS}
results = {(l, d): runs[l, d, SEEDS[0]] for d in ("mnist", "fashion-mnist") for l in SETTINGS}  # for the pictures

# %%
raw = {}
for d in ("mnist", "fashion-mnist"):
    r = results["nca", d]
    x = data.to_float(r["images"]).flatten(1)
    raw[d] = (metrics.precision_at_1(x, r["labels"]), metrics.map_at_r(x, r["labels"]))

# lecture 04's rule: metrics.mean_sd gives (mean, sd) over the seeds; metrics.clearly_above(a, b) asks for a gap
# between the means larger than the two standard deviations added
def pm(mean_sd):
    return f"{mean_sd[0]:.3f} ± {mean_sd[1]:.3f}"

table = {(l, d, k): metrics.mean_sd([runs[l, d, seed][k] for seed in SEEDS])
         for l in SETTINGS for d in ("mnist", "fashion-mnist") for k in ("p1", "map_r")}
print(f"mean ± sd over {len(SEEDS)} seeds ({RUN_PER_CLASS} training images per class, {RUN_EPOCHS} epochs)")
print(f"{'':<13}{'MNIST P@1':>17}{'MAP@R':>17}{'Fashion P@1':>17}{'MAP@R':>17}")
print(f"{'raw pixels':<13}" + "".join(f"{v:>17.3f}" for d in ("mnist", "fashion-mnist") for v in raw[d]))
for l in SETTINGS:
    print(f"{l:<13}" + "".join(f"{pm(table[l, d, k]):>17}" for d in ("mnist", "fashion-mnist")
                                for k in ("p1", "map_r")))

for d in ("mnist", "fashion-mnist"):
    for l in SETTINGS:
        for seed in SEEDS:   # every loss gathers whole classes better than raw pixels, on every seed
            assert runs[l, d, seed]["map_r"] > raw[d][1], (l, d, seed)
assert all(raw[d][0] > 0.7 for d in raw)   # the nearest neighbour in pixel space is already mostly right

print("\nMAP@R, pair by pair (a gap of the means larger than the two standard deviations added, or not):")
verdicts = {}
for d in ("mnist", "fashion-mnist"):
    for i, l1 in enumerate(SETTINGS):
        for l2 in list(SETTINGS)[i + 1:]:
            hi, lo = (l1, l2) if table[l1, d, "map_r"][0] >= table[l2, d, "map_r"][0] else (l2, l1)
            verdicts[d, hi, lo] = metrics.clearly_above(table[hi, d, "map_r"], table[lo, d, "map_r"])
            print(f"  {d}: {hi} > {lo}" if verdicts[d, hi, lo] else
                  f"  {d}: {hi} and {lo} within the seed noise")

# %% [markdown]
# What the table supports, seed by seed: each of the three losses gathers whole classes better than raw pixels
# (MAP@R, on every seed, asserted). Precision@1 is a weak test here — raw pixels already find a neighbour of the same
# class most of the time (asserted) — while MAP@R asks whether *all* images of a class come before the others.
# Which loss is *best* is a question about differences between losses, and each difference is judged against the
# seed spread: the lines under the table name, for each dataset and each pair of losses, the one that is clearly
# higher, or say that the two are within the seed noise. A single run of each loss would give no such verdict.
# (In quick mode the runs are very short and the table is not the full-strength one; run the notebook without
# `DMLCOURSE_QUICK` for that.)
#
# ### The triplet margin, squared or plain, after training
# Back to the question of section 3, now with the MLP of this section: the triplet loss on Fashion-MNIST with the
# margins in `MARGINS` (0.1, 0.2 and 0.4 in full mode; quick mode pays only for 0.2), once with the plain and once
# with the squared distance, every seed. "Active" is the fraction of the sampled training triplets with a non-zero
# loss during the last epoch. Below the table, the geometry: the distances of 2,000 fixed test triplets under each
# seed's network before and after training (the plain form, $m = 0.2$), and the active fractions of both forms on
# that fixed, trained embedding.

# %%
FORMS = {"plain d": "euclidean", "squared d²": "squared_euclidean"}
sweep = {(f, m, seed): run("triplet", "fashion-mnist", seed, dict(margin=m, distance=FORMS[f]))
         for f in FORMS for m in MARGINS for seed in SEEDS}

def last_epoch_active(r):
    steps = r["history"].step_info["active_fraction"]
    per_epoch = len(steps) // RUN_EPOCHS
    return sum(steps[-per_epoch:]) / per_epoch

sweep_table = {(f, m, k): metrics.mean_sd([last_epoch_active(sweep[f, m, seed]) if k == "active" else sweep[f, m, seed][k]
                                      for seed in SEEDS])
               for f in FORMS for m in MARGINS for k in ("active", "p1", "map_r")}
print(f"triplet loss, Fashion-MNIST, mean ± sd over {len(SEEDS)} seeds")
print(f"{'':<12}{'m':>5}{'active (training)':>20}{'P@1':>17}{'MAP@R':>17}")
for f in FORMS:
    for m in MARGINS:
        print(f"{f:<12}{m:>5}" + "".join(f"{pm(sweep_table[f, m, k]):>{w}}"
                                         for k, w in (("active", 20), ("p1", 17), ("map_r", 17))))

# the same geometry on trained embeddings: every seed's plain-distance network (m = 0.2), fixed test triplets
ta, tp, tn = tuples.make_triplets(sweep["plain d", 0.2, SEEDS[0]]["labels"], 2000, seed=0)

def triplet_distances(z):
    dist = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")
    return dist[ta, tp], dist[ta, tn]

fixed_active, geometry = [], {}   # per seed: {m: (plain, squared)} on the fixed, trained embedding
for seed in SEEDS:
    r = sweep["plain d", 0.2, seed]
    runtime.seed_everything(seed)    # the same MLP before training: the same seed gives the same initial weights
    z_before = models.embed(models.MLP(32, hidden=(256,), normalize=True), r["images"], name="fashion-mnist")
    for when, z in (("untrained", z_before), ("trained", r["z"])):
        ap, an = triplet_distances(z)
        geometry[seed, when] = dict(d_ap=ap.median().item(), d_an=an.median().item(), sum=(ap + an).median().item(),
                                    above_1=(ap + an > 1).float().mean().item())
        g_ = geometry[seed, when]
        print(f"seed {seed}, {when:<9}: median d(a,p) {g_['d_ap']:.2f}, d(a,n) {g_['d_an']:.2f}, "
              f"d(a,p) + d(a,n) {g_['sum']:.2f} ({g_['above_1']:.0%} of the sums above 1)")
    # the triplets a margin acts on: those the plain form leaves active at m = 0.2 (the negative is close)
    ap, an = triplet_distances(r["z"])
    geometry[seed, "trained"]["active_sum"] = (ap + an)[an - ap < 0.2].median().item()
    fixed_active.append(active_fractions(r["z"], ta, tp, tn, MARGINS))
    print(f"    trained, only the triplets active at m = 0.2: median d(a,p) + d(a,n) "
          f"{geometry[seed, 'trained']['active_sum']:.2f}")
    counts = {m: (round(pl * len(ta)), round(sq * len(ta))) for m, (pl, sq) in fixed_active[-1].items()}
    print(f"    active on the trained embedding, of the {len(ta)} triplets, plain / squared: "
          + ", ".join(f"m = {m}: {pl} / {sq} (squared keeps "
                      f"{'more' if sq > pl else 'fewer' if sq < pl else 'as many'})"
                      for m, (pl, sq) in counts.items()))

# the conversion: d(a,n)^2 - d(a,p)^2 = (d(a,n) - d(a,p)) (d(a,n) + d(a,p)), so a squared margin m' asks for the
# same gap in distance as a plain margin m where m' = m (d(a,p) + d(a,n)): the sum is the factor
def middle_seed(when, key):
    return sorted(geometry[seed, when][key] for seed in SEEDS)[len(SEEDS) // 2]

factor = {"untrained": middle_seed("untrained", "sum"), "trained": middle_seed("trained", "sum"),
          "active": middle_seed("trained", "active_sum")}
print(f"\nsquared margin m' asking for the same gap as a plain margin m, m' = m (d(a,p) + d(a,n)), middle seed: "
      f"the typical triplet gives m' = {factor['untrained']:.2f} m before training, {factor['trained']:.2f} m after; "
      f"the trained triplets a margin acts on give m' = {factor['active']:.2f} m")
print(f"in cosines (unit vectors, d^2 = 2 - 2 cos): a plain m = 0.2 asks the typical trained triplet for a cosine "
      f"gap of about {0.2 * factor['trained'] / 2:.2f}, a squared m = 0.2 asks every triplet for 0.2 / 2 = 0.1")
for seed in SEEDS:
    # claim: spread-out (the untrained MLP's typical sum is above 1, and training keeps most sums above 1 ...)
    assert geometry[seed, "untrained"]["sum"] > 1 and geometry[seed, "trained"]["above_1"] > 0.5, seed
    # ... but the triplets the margin acts on are the close ones: their sums are smaller than the typical one
    assert geometry[seed, "trained"]["active_sum"] < geometry[seed, "trained"]["sum"], seed   # claim: spread-out

if len(MARGINS) > 1:   # full mode: what a larger margin does on a fixed embedding, and what training with it does
    lo, hi = MARGINS[0], MARGINS[-1]
    print(f"\nthe same {len(ta)} test triplets, each form's networks measured with their own distance, "
          f"mean ± sd over {len(SEEDS)} seeds:")
    for col, f in enumerate(FORMS):
        # per seed: the network trained with m = lo, measured at lo and at hi; the one trained with m = hi, at hi
        per_seed = [(active_fractions(sweep[f, lo, seed]["z"], ta, tp, tn, (lo, hi)),
                     active_fractions(sweep[f, hi, seed]["z"], ta, tp, tn, (hi,))) for seed in SEEDS]
        lo_at_lo = metrics.mean_sd([net_lo[lo][col] for net_lo, _ in per_seed])
        lo_at_hi = metrics.mean_sd([net_lo[hi][col] for net_lo, _ in per_seed])
        hi_at_hi = metrics.mean_sd([net_hi[hi][col] for _, net_hi in per_seed])
        print(f"  {f}: trained with m = {lo}: active {pm(lo_at_lo)} at m = {lo}, {pm(lo_at_hi)} at m = {hi}; "
              f"trained with m = {hi}: {pm(hi_at_hi)} at m = {hi}")
        # claim: margin-training (a fixed embedding counts more active at the larger margin ...)
        assert metrics.clearly_above(lo_at_hi, lo_at_lo), f
        # ... and the network trained with the larger margin leaves fewer of them active than the other one does
        assert metrics.clearly_above(lo_at_hi, hi_at_hi), f   # claim: margin-training

squared_vs_plain = {k: (metrics.clearly_above(sweep_table["squared d²", 0.2, k], sweep_table["plain d", 0.2, k]),
                        metrics.clearly_above(sweep_table["plain d", 0.2, k], sweep_table["squared d²", 0.2, k]))
                    for k in ("active", "p1", "map_r")}
for k, (sq_higher, pl_higher) in squared_vs_plain.items():
    print(f"m = 0.2, {k}: " + ("squared higher beyond the spread" if sq_higher else
                               "plain higher beyond the spread" if pl_higher else "within the seed spread"))

# %% [markdown]
# Where the sums $d(a,p) + d(a,n)$ lie depends on the network and on training. Section 3's untrained CNN bunches
# every image together (every sum below 1, asserted there), so there the squared form keeps more triplets active.
# The MLP trained here starts spread out: before training its typical sum is above 1 on every seed, and after
# training most sums are still above 1 (both asserted, every seed; the printed medians say by how much). Judged by
# the typical triplet, the squared form would be the *less* strict one here. But a margin only acts on the triplets
# near it, and those are the close ones — a negative near the anchor, so a small $d(a,n)$ and a small sum: the
# triplets that the plain form leaves active have a smaller median sum than the typical triplet (asserted, every
# seed). Which form keeps more triplets active on the fixed, trained embedding is decided by those triplets, and
# the output says, per margin, which one it is.
#
# A margin is therefore meaningless without its distance. Because
# $d(a,n)^2 - d(a,p)^2 = \big(d(a,n) - d(a,p)\big)\big(d(a,n) + d(a,p)\big)$, a squared margin $m'$ asks for the
# same gap in distance as a plain margin $m$ where $m' \approx m\,\big(d(a,p) + d(a,n)\big)$. The printed factors
# are the conversion, and they are measurements, not constants: below 1 for the CNN of section 3, above 1 for the
# typical triplet of this MLP, and smaller again for the triplets a margin acts on. In cosines ($d^2 = 2 - 2\cos$
# on unit vectors) the squared form asks every triplet for a cosine gap of $m'/2$, the plain form for
# $m\,(d(a,p) + d(a,n))/2$, which the output also prints. How good this rule of thumb is, triplet by triplet, is the
# third exercise. During *training* the two forms also move the embedding differently (the gradient of $d^2$
# grows with $d$, that of $d$ does not), so the training columns compare two different runs, not one geometry; the
# last lines of the output say which of their differences exceed the seed spread.
#
# The margin's own effect (full mode, where there are three margins) is measured on the same fixed test triplets,
# each form's networks with their own distance. On a *fixed* embedding, the network trained with the smallest
# margin, a larger margin simply counts more triplets as active. A network *trained* with the larger margin does
# not sit still under it: at that margin it leaves fewer of the triplets active than the network trained with the
# small margin does (both asserted, both forms, beyond the seed spread). Training has moved its embedding to
# satisfy more of the margin it was trained with.
#
# ### Distances separate during training
# The histograms of similar (green) and dissimilar (red) test-pair distances, one per epoch; drag the slider. The
# figure after it draws each loss's histograms before and after training (seed 0), and the same cell sums each
# histogram pair up in one number, the **separation**: the gap between the mean dissimilar and the mean similar
# distance, in units of the pooled standard deviation of the two groups,
# $(\bar d_{\text{dis}} - \bar d_{\text{sim}}) / s_{\text{pooled}}$ with
# $s_{\text{pooled}}^2 = \big((n_{\text{sim}} - 1)s_{\text{sim}}^2 + (n_{\text{dis}} - 1)s_{\text{dis}}^2\big) /
# (n_{\text{sim}} + n_{\text{dis}} - 2)$ (Cohen's $d$). It does not depend on the scale of the embedding, so it
# compares the network before and after training although training changes every distance. The cell prints it
# before and after training for each loss (seed 0) and asserts that it grows on every seed.

# %%
browser = siamese.histogram_browser(results["contrastive", "mnist"]["dists"],
                                    title="contrastive loss, MNIST test pairs")
browser

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3))
for ax, l in zip(axes, SETTINGS):
    dists = results[l, "mnist"]["dists"]
    for (sim, dis), style, when in ((dists[0], ":", "before"), (dists[-1], "-", "after")):
        hi = float(torch.cat([sim, dis]).max())
        for v, c in ((sim, "#2ca02c"), (dis, "#d62728")):
            ax.hist((v / hi).numpy(), bins=40, density=True, histtype="step", ls=style, color=c,
                    label=f"{'similar' if c == '#2ca02c' else 'dissimilar'}, {when}")
    ax.set(title=f"{l} (MNIST)", xlabel="distance / largest distance")
axes[0].legend(fontsize=7, frameon=False)
fig.tight_layout()

def separation(sim, dis):
    """(mean dissimilar - mean similar distance) / pooled standard deviation of the two groups (Cohen's d)."""
    n_s, n_d = len(sim), len(dis)
    pooled = (((n_s - 1) * sim.var() + (n_d - 1) * dis.var()) / (n_s + n_d - 2)).sqrt()
    return ((dis.mean() - sim.mean()) / pooled).item()

for l in SETTINGS:
    before, after = separation(*results[l, "mnist"]["dists"][0]), separation(*results[l, "mnist"]["dists"][-1])
    print(f"{l:<12} separation before {before:.2f}, after {after:.2f} (pooled standard deviations, seed {SEEDS[0]})")
    for seed in SEEDS:   # not a lucky seed: every seed's distances separate
        sep = [separation(*runs[l, "mnist", seed]["dists"][k]) for k in (0, -1)]
        assert sep[1] > sep[0], (l, seed)   # claim: separate

# %% [markdown]
# ### The embeddings side by side
# Each picture is a UMAP of `LAYOUT_PER_CLASS` test images per class (a UMAP's time grows with the number of
# points; the cell prints how many it draws); the P@1 and MAP@R in the titles are measured on all of the run's test
# images, as in the table.

# %%
LAYOUT_PER_CLASS = runtime.quick(100, 50)
fig, axes = plt.subplots(2, 3, figsize=(13, 8.5))
layouts, shown = {}, {}   # shown[d]: the test images (indices into a run's "z") that the pictures lay out
for row, d in enumerate(("mnist", "fashion-mnist")):
    shown[d] = data.balanced_subset(results["nca", d]["labels"], LAYOUT_PER_CLASS)   # the same for every run
    for col, l in enumerate(SETTINGS):
        r = results[l, d]
        layouts[l, d] = plots.project_2d(r["z"][shown[d]], seed=0, cache=True)
        plots.scatter_2d(layouts[l, d], r["labels"][shown[d]], ax=axes[row, col],
                         class_names=data.CLASS_NAMES[d], title=f"{l}, {d}\nP@1 {r['p1']:.2f}, MAP@R {r['map_r']:.2f}")
    axes[row, 2].legend(markerscale=5, fontsize=9, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
fig.tight_layout()
print(f"each picture: {len(shown['mnist'])} of the {len(results['nca', 'mnist']['labels'])} test images; "
      f"P@1 and MAP@R in the titles: all of them")

# %%
r = results["triplet", "fashion-mnist"]
plots.embedding_explorer(layouts["triplet", "fashion-mnist"], r["labels"][shown["fashion-mnist"]],
                         r["images"][shown["fashion-mnist"]], class_names=data.CLASS_NAMES["fashion-mnist"],
                         title="triplet loss, Fashion-MNIST test")


# %% [markdown]
# ## 5. No labels at all: positives by augmentation
#
# Now we drop the labels. Each batch of images becomes two augmented views; the two views of an image are the only
# positives, every other image is a negative. The NCA loss on normalised embeddings (with a scale, a *temperature*)
# does the rest. This is essentially SimCLR's loss, which its authors call NT-Xent (normalised temperature-scaled
# cross-entropy): on unit vectors $d^2 = 2 - 2\cos$, so the scale 10 on squared distances is a softmax over
# cosines with temperature $1/20$. The training loop is short enough to write here. The network is the small CNN
# of sections 1 and 3 rather than section 4's MLP (a convolution applies the same weights at every position, so a
# shifted stroke meets the same filters). It trains on `SSL_PER_CLASS` images per class, a subset of section 4's
# training images (the labels only pick that class-balanced subset; the training loop never sees them; the table's
# first line prints both sizes), for a short run of
# `EPOCHS` epochs, once per seed in `SEEDS`. The initial weights come from
# `runtime.seed_everything(seed)` and every other random choice (batch order, augmentations) from the generator
# `g`, seeded by `seed`, so a run is reproducible and its cache key names it:

# %%
def self_supervised(dataset, epochs, per_class, seed=0):
    tr = data.load(dataset, "train", SIZE)
    x = tr.images[data.balanced_subset(tr.labels, per_class)]   # labels pick the subset; training never sees them
    mean, std = data.PIXEL_STATS[dataset]
    runtime.seed_everything(seed)                               # the initial weights
    model = models.SmallCNN(32).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)                     # everything else
    for _epoch in range(epochs):
        for batch in torch.randperm(len(x), generator=g).split(128):
            view_seed = int(torch.randint(2**31 - 1, (1,), generator=g))   # drawn, so the run repeats exactly
            v1, v2 = tuples.augmentation_pairs(x[batch], seed=view_seed, noise=0.1)
            z = model(((torch.cat([v1, v2]) - mean) / std).to(device))
            same_image = torch.arange(len(batch), device=device).repeat(2)   # view k of image b has "label" b
            loss = losses.nca_loss(torch.nn.functional.normalize(z, dim=1), same_image, scale=10.0)
            opt.zero_grad(); loss.backward(); opt.step()
    return model

def self_supervised_cached(dataset, epochs, per_class, seed=0):
    '''self_supervised's network, trained once: a re-run loads its weights from the cache.'''
    config = dict(dataset=dataset, size=SIZE, epochs=epochs, per_class=per_class, seed=seed,
                  view_seeds="randint from the generator", v=2)
    state = cache.cached(f"l05-ssl-{dataset}-seed{seed}", config,
                         lambda: self_supervised(dataset, epochs, per_class, seed).cpu().state_dict())
    model = models.SmallCNN(32)
    model.load_state_dict(state)
    return model.eval()

ROWS = ("random network", "self-supervised", "NCA with labels")
# the self-supervised run's images are some of section 4's (balanced_subset: the same draw, cut short)
for d in ("mnist", "fashion-mnist"):
    train_labels = data.load(d, "train", SIZE).labels
    assert set(data.balanced_subset(train_labels, SSL_PER_CLASS).tolist()) <= set(
        data.balanced_subset(train_labels, RUN_PER_CLASS).tolist()), d
ssl_runs, raw_ssl = {}, {}   # ssl_runs[d, row, seed] = (P@1, MAP@R) on section 4's test images
for d in ("mnist", "fashion-mnist"):
    images, labels = results["nca", d]["images"], results["nca", d]["labels"]
    raw_ssl[d] = (metrics.precision_at_1(data.to_float(images).flatten(1), labels),
                  metrics.map_at_r(data.to_float(images).flatten(1), labels))
    for seed in SEEDS:
        runtime.seed_everything(seed)
        random_net = models.SmallCNN(32)   # the self-supervised network's weights before training
        ssl = self_supervised_cached(d, EPOCHS, SSL_PER_CLASS, seed)
        for row, z in (("random network", models.embed(random_net, images, name=d)),
                       ("self-supervised", models.embed(ssl, images, name=d)),
                       ("NCA with labels", runs["nca", d, seed]["z"])):
            ssl_runs[d, row, seed] = (metrics.precision_at_1(z, labels), metrics.map_at_r(z, labels))

ssl_table = {(d, row, k): metrics.mean_sd([ssl_runs[d, row, seed][k] for seed in SEEDS])
             for d in ("mnist", "fashion-mnist") for row in ROWS for k in (0, 1)}
print(f"mean ± sd over {len(SEEDS)} seeds; random network and self-supervised: the small CNN, {EPOCHS} epochs "
      f"without labels on {SSL_PER_CLASS} training images per class; NCA with labels: section 4's MLP, "
      f"{RUN_EPOCHS} epochs on {RUN_PER_CLASS} per class (which include the self-supervised run's)")
print(f"{'':<17}{'MNIST P@1':>17}{'MAP@R':>17}{'Fashion P@1':>17}{'MAP@R':>17}")
print(f"{'raw pixels':<17}" + "".join(f"{v:>17.3f}" for d in ("mnist", "fashion-mnist") for v in raw_ssl[d]))
for row in ROWS:
    print(f"{row:<17}" + "".join(f"{pm(ssl_table[d, row, k]):>17}" for d in ("mnist", "fashion-mnist")
                                   for k in (0, 1)))

def verdict(a, b):
    """a against b, two (mean, sd) pairs: which is higher beyond the seed spread, if either."""
    return ("higher" if metrics.clearly_above(a, b) else "lower" if metrics.clearly_above(b, a)
            else "within the seed noise")

def no_sd(v):
    return (v, 0.0)   # raw pixels: no training, no seed, no spread
# the gain over the random start, seed by seed (the same seed: the same weights before training)
ssl_gain = {(d, k): metrics.mean_sd([ssl_runs[d, "self-supervised", seed][k] - ssl_runs[d, "random network", seed][k]
                                     for seed in SEEDS]) for d in ("mnist", "fashion-mnist") for k in (0, 1)}
for d in ("mnist", "fashion-mnist"):
    print(f"{d}, self-supervised against its random start: P@1 "
          f"{verdict(ssl_table[d, 'self-supervised', 0], ssl_table[d, 'random network', 0])}, MAP@R "
          f"{verdict(ssl_table[d, 'self-supervised', 1], ssl_table[d, 'random network', 1])}; against raw pixels: "
          f"P@1 {verdict(ssl_table[d, 'self-supervised', 0], no_sd(raw_ssl[d][0]))}, MAP@R "
          f"{verdict(ssl_table[d, 'self-supervised', 1], no_sd(raw_ssl[d][1]))}; gain over the random start: "
          f"P@1 {pm(ssl_gain[d, 0])}, MAP@R {pm(ssl_gain[d, 1])}")

# claim: ssl (MNIST: the neighbours and the whole classes improve on the random start, beyond the seed spread)
assert all(metrics.clearly_above(ssl_table["mnist", "self-supervised", k], ssl_table["mnist", "random network", k])
           for k in (0, 1))
# claim: ssl (Fashion-MNIST gains far less: its P@1 gain is below MNIST's, beyond the seed spread)
assert metrics.clearly_above(ssl_gain["mnist", 0], ssl_gain["fashion-mnist", 0])
for d in ("mnist", "fashion-mnist"):
    # claim: ssl (still below raw pixels in P@1, and above them nowhere, beyond the seed spread)
    assert metrics.clearly_above(no_sd(raw_ssl[d][0]), ssl_table[d, "self-supervised", 0]), d
    assert not any(metrics.clearly_above(ssl_table[d, "self-supervised", k], no_sd(raw_ssl[d][k])) for k in (0, 1)), d
    # claim: ssl (the labelled NCA run's MAP@R is far higher: more than the seed spread, and by more than 0.1)
    nca_map, ssl_map = ssl_table[d, "NCA with labels", 1], ssl_table[d, "self-supervised", 1]
    assert metrics.clearly_above(nca_map, ssl_map) and nca_map[0] - ssl_map[0] > 0.1, d

# %% [markdown]
# Without a single label, on MNIST the network's nearest neighbours improve on its random start (the same weights
# before training), and so does MAP@R: both gains exceed the seed spread (asserted). That is as far as it goes: after
# this short run the self-supervised network is still below raw pixels in P@1 on both datasets and above them
# nowhere (asserted): its classes are far from gathered. On Fashion-MNIST the same run gains far less, if
# anything: its P@1 gain over the random start is smaller than MNIST's, beyond the seed spread (asserted); the
# lines under the table say whether any of its changes exceeds the seed spread at all. Shirts, pullovers and
# coats differ in ways that small shifts and rotations do not reveal; self-supervised methods use stronger
# augmentations and much longer training.
#
# The last row is section 4's NCA run, which reads the labels of its training images. It is not the same
# network (an MLP, not the CNN), and its epochs and training images need not be the self-supervised run's (its
# images include them; the table's first line prints both runs' sizes), so the row does not isolate what the
# labels add; it shows that a labelled run of this size reaches a far higher MAP@R on both datasets, by more than
# 0.1 and beyond the seed spread (asserted). Augmentation alone teaches *which changes do not matter*, not which
# images belong together.
#
# ## 6. The Embedding Lab
# The lab below trains one configuration at a time and shows a fixed set of test images (100 per class; 20 in quick
# mode) after every
# epoch, laid out by UMAP; press ▶ to watch the points move from the random network to the trained one. Pick the
# loss, the margin, the embedding size; for the triplet loss also how triplets are chosen (`random` is this
# lecture's baseline, the others are lecture 06's miners). Controls that do not apply to a loss are greyed out.
# Hover over a point to see its image. "Keep this run" pins a result so that you can set two losses side by side.
#
# Before you play: the cell trains the triplet loss with **random** triplets once. Watch the right-hand plot, the
# fraction of triplets that still violate the margin: it falls from every epoch to the next (asserted), because
# most random triplets become easy. That is the motivation for lecture 06.

# %%
from dmlcourse import lab

embedding_lab = lab.EmbeddingLab(losses=["triplet", "contrastive", "nca"],
                                 miners=["random", "batch_semi_hard", "batch_hard"], size=SIZE,
                                 epochs=runtime.quick(5, 2), train_per_class=runtime.quick(None, 100),
                                 probe_per_class=runtime.quick(100, 20),
                                 layout=runtime.quick("chain", "pca"), warm_up=not QUICK)  # CI: no UMAP
embedding_lab.miner.value = "random"                  # this notebook's random triplets, margin 0.2
embedding_lab.train(); embedding_lab.wait()           # what the Train button does
lab_run = embedding_lab.run                           # (section 4's run() keeps its name, for exercise 4)
lab_active = lab_run.active_fraction()
print(f"active triplets per epoch: {[round(a, 3) for a in lab_active]}; Precision@1 of the probe set "
      f"{lab_run.metric('precision_at_1')[0]:.3f} (untrained) -> {lab_run.metric('precision_at_1')[-1]:.3f}")
assert not lab_run.failed
assert all(later < earlier for earlier, later in zip(lab_active, lab_active[1:]))   # claim: lab-silent (every epoch)
assert lab_run.metric("precision_at_1")[-1] > lab_run.metric("precision_at_1")[0]
from IPython.display import display
display(embedding_lab)

# %% [markdown]
# ## Summary
#
# - A Siamese network is **one** network applied to every element of a pair or triplet. Keeping $k$ copies in sync
#   gives the same outputs and update only if their gradients are **summed** (one copy's gradient alone is a
#   different update, asserted) — and costs $k$ times the parameter memory. <!-- claim: siamese-sum -->
# - Tuples come from labels (pairs, triplets) or, without labels, from augmentation (two views of one image).
#   <!-- recap -->
# - **Contrastive**: pulls similar pairs together and pushes dissimilar pairs out to a margin. Eq. 11 of the Guelph
#   slides and Hadsell's squared form differ in their gradients and in the scale of the margin. <!-- recap -->
# - **Triplet**: only the order matters; once $d(a,n) > d(a,p) + m$ a triplet is silent. The margin decides how many
#   triplets stay active — which is why lecture 06 is about *choosing* triplets. With random triplets the active
#   fraction falls every epoch (asserted on the Lab's run). <!-- claim: lab-silent -->
# - A margin belongs to its distance. On $d^2$ it is the margin $m / (d(a,p) + d(a,n))$ on $d$: on unit vectors,
#   where $d^2 = 2 - 2\cos$, a margin $m/2$ on the cosines. The untrained CNN of section 3 has every sum below 1,
#   and there the squared form keeps more triplets active (asserted). <!-- claim: bunched -->
# - The MLP of section 4 has most sums above 1 before and after training, but the triplets a margin acts on are
#   the close ones, with smaller sums (asserted, every seed). A squared margin matching a plain $m$ is about $m$
#   times the sum of the triplets it acts on: a measured factor, not a constant. <!-- claim: spread-out -->
# - One run per configuration is one draw: compare losses by the mean over seeds, and only where the gap exceeds
#   the spread. <!-- recap -->
# - **NCA**: a soft nearest-neighbour classifier over the batch. Goldberger's form is a true $-\log$ probability;
#   eq. 14 of the Guelph slides (negatives only in the denominator) falls below zero without end as separable
#   classes spread (asserted on a toy), and both forms depend on the scale of the embedding (ten times the spread,
#   a loss more than ten times larger on random labels, asserted).
#   <!-- claim: nca-unbounded --> <!-- claim: nca-scale -->
# - Every loss separates the similar from the dissimilar test-pair distances during training, on every seed
#   (separation in pooled standard deviations, asserted). Without labels, augmentation alone lifts the CNN's
#   nearest neighbours and MAP@R above its random start on MNIST, beyond the seed spread; its P@1 gain on
#   Fashion-MNIST is far smaller, and after this short run the network is nowhere above raw pixels, while a labelled
#   NCA run (another network) reaches a far higher MAP@R (asserted). <!-- claim: separate --> <!-- claim: ssl -->
# - `reduction`: a batch loss turns one term per tuple into one number. The **mean** keeps the size of a step from
#   growing with the number of tuples in a batch; `"mean_nonzero"` (pytorch-metric-learning's default for the
#   triplet loss) averages only the active terms, so the loss does not shrink just because most triplets are
#   already satisfied (exercise 4; lecture 06 compares them). <!-- recap -->
#
# ## Exercises
#
# Each exercise asks you to write a few lines in the cell below it; the `check(...)` at the end of the cell says
# ✓ (right), ✗ (and what looks wrong) or ○ (not attempted yet). Stuck? `hint("05.1")` gives a hint, and another
# one each time you call it. `show_solution("05.1")` prints the solution, for when you decide to look.
#
# 1. **The contrastive loss.** Write `my_contrastive(z1, z2, dissimilar, margin)`: eq. 11 with the *squared*
#    Euclidean distance, mean over pairs, without `losses.contrastive_loss`.
# 2. **The triplet loss, with the distance you choose.** Write `my_triplet(za, zp, zn, margin)` (eq. 12, mean over
#    triplets) with the plain Euclidean distance $\lVert a - p \rVert$ (section 4 trains with it) or the squared one
#    $\lVert a - p \rVert^2$ (FaceNet's). Tell the check which: `check("05.2", my_triplet, "plain")` or
#    `"squared"`.
# 3. **Predict, then explain.** Take section 3's 2,000 random triplets under the untrained CNN (`d_ap`, `d_an`,
#    plain distances) and the plain triplet loss at $m = 0.1$. At which margin $m'$ does the **squared** form keep
#    exactly as many of these triplets active? Guess the ratio $m'/m$ before computing anything (section 4's rule of
#    thumb is one guess: is it right here?), then find $m'$ (`my_matching_margin`) from the triplets themselves.
# 4. **Explore (no check).** Re-run section 4's triplet loss with the margin 0.05 and 1.0, or with
#    `reduction="mean_nonzero"`: `r = run("triplet", "mnist", kwargs=dict(margin=0.05, distance="euclidean"))`
#    (add `reduction="mean_nonzero"` to the `dict` for the other reduction) trains it, or loads it from the cache.
#    What happens to the active fraction (`r["history"].step_info["active_fraction"]`), to the loss curve and to
#    MAP@R (`r["map_r"]`)? Compare with the seed-0 run of the table's loss (`results`), not with its mean over the
#    seeds: one run against one run; for a verdict, train the other seeds too and use `metrics.clearly_above`.

# %%
from dmlcourse.exercises import check, hint, show_solution

# %% exercise="05.1"
def my_contrastive(z1, z2, dissimilar, margin):
    """Return the mean over pairs of (1 - y) d + y [margin - d]_+, with y = dissimilar (1 = dissimilar pair)
    and d = ||z1 - z2||^2, the squared Euclidean distance between the rows."""
    ### BEGIN SOLUTION
    d = ((z1 - z2) ** 2).sum(dim=1)
    y = dissimilar.to(d.dtype)
    return ((1 - y) * d + y * torch.relu(margin - d)).mean()
    ### END SOLUTION


check("05.1", my_contrastive)

# %% exercise="05.2"
def my_triplet(za, zp, zn, margin):
    """Return the mean over rows of [d(a, p) - d(a, n) + margin]_+, with d the distance you name in check(...)."""
    ### BEGIN SOLUTION
    d_ap = torch.linalg.norm(za - zp, dim=1)
    d_an = torch.linalg.norm(za - zn, dim=1)
    return torch.relu(d_ap - d_an + margin).mean()
    ### END SOLUTION


check("05.2", my_triplet, "plain")  # "plain": ||a - p||; "squared": ||a - p||^2. Say which one you wrote.

# %% exercise="05.3"
my_prediction = None  # your guess of the ratio m' / m, a number, before computing anything
my_matching_margin = None  # the margin m' of the squared form that keeps as many triplets active as plain m = 0.1
### BEGIN SOLUTION
my_prediction = 0.25
plain_active = int((d_ap - d_an + 0.1 > 0).sum())         # k triplets active under the plain form
squared_gaps = (d_an.double() ** 2 - d_ap.double() ** 2).sort().values
# active on the squared scale <=> gap < m': any m' in (k-th gap, (k+1)-th gap] keeps exactly k
my_matching_margin = ((squared_gaps[plain_active - 1] + squared_gaps[plain_active]) / 2).item()
### END SOLUTION

check("05.3", my_prediction, my_matching_margin, d_ap, d_an)

# %% [markdown]
# The package's versions of the losses you wrote in the first two exercises (`show_solution("05.1")` and
# `show_solution("05.2")` print them too):

# %%
show(losses.contrastive_loss)
show(losses.triplet_loss)
