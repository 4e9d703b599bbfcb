# %% [markdown]
# # 01 · Metric spaces, and why we learn a metric
#
# Almost every method in this course ends with a question of the form *"which of these is closest?"* — the nearest
# neighbour of a query, the cluster an image falls into, whether two faces are the same person. The answer depends
# entirely on the **distance** we use. This lecture asks what a distance is, and shows that the distances we get for
# free (on raw pixels) are poor ones, so it pays to *learn* one.
#
# What you will see:
# 1. the four axioms of a metric, checked numerically — and two popular "distances" that break one of them;
# 2. an interactive triangle to break the triangle inequality yourself;
# 3. k-nearest-neighbour accuracy on raw pixels under five fixed distances, against a learned embedding;
# 4. classification versus verification, closed-set versus open-set — done for real, on classes the network never saw;
# 5. separable versus discriminative features;
# 6. supervised versus weakly supervised settings (labels versus pairs, triplets, quadruplets);
# 7. applications: retrieval and clustering, then out-of-distribution detection and few-shot classification.

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
import inspect

from dmlcourse import cache, heads, losses, open_set, tuples
from dmlcourse import metric_spaces as ms
from dmlcourse.listing import show

TRAIN_PER_CLASS = runtime.quick(None, 400)   # None = every training image of SIZE
TEST_PER_CLASS = runtime.quick(200, 100)
EPOCHS = 4                                   # both modes; full mode trains on every training image
CLASSIFIER_EPOCHS = runtime.quick(6, 4)      # section 4's classifier (at 4 epochs: 0.84 on its own digits)
K = 5                                        # k of the kNN classifier (majority of 5 neighbours)
SEEDS = runtime.quick([0, 1, 2], [0, 1])     # the seeds of the embedding on the digits 0-4 (section 7)

# %% [markdown]
# ## 1. What a distance must satisfy
#
# A **metric** on a set is a function $d(x, y)$ with, for all $x, y, z$:
#
# | axiom | formula | in words |
# |---|---|---|
# | identity | $d(x, x) = 0$ | nothing separates a point from itself |
# | positivity | $d(x, y) > 0$ if $x \ne y$ | different points are *some* distance apart |
# | symmetry | $d(x, y) = d(y, x)$ | there and back are the same length |
# | triangle inequality | $d(x, z) \le d(x, y) + d(y, z)$ | a detour through $y$ is never shorter |
#
# Non-negativity, $d \ge 0$, need not be listed: it follows from identity, symmetry and the triangle inequality,
# since $2\,d(x, y) = d(x, y) + d(y, x) \ge d(x, x) = 0$. A function that satisfies all but positivity — distinct
# points may be at distance 0 — is a **pseudo-metric**.
#
# A sample of points can never *prove* an axiom, but it can *refute* one: `check_axioms` evaluates $d$ on every pair
# and every triple of a sample and reports the offending points. It does not loop over the $n^3$ triples: from the
# $n \times n$ matrix $D$ of all distances it builds, by broadcasting, the $n \times n \times n$ tensor whose entry
# $[a, b, c]$ is $d(a,c) - d(a,b) - d(b,c)$, and every positive entry is a violation. Exercise 2 asks you to write
# that broadcast yourself, so its code is shown only with the exercise's solution. The identity, positivity and
# symmetry checks are one line each:

# %%
show(ms.check_axioms, "pairs")

# %% [markdown]
# Four candidates, on 40 random points of the plane. The Mahalanobis distance with $W = \mathrm{diag}(1, 0)$ looks
# only at the first coordinate (lecture 02 is about this family); to give it something to miss, the sample also
# holds copies of 10 points shifted along the second coordinate.

# %%
g = torch.Generator().manual_seed(0)
pts = torch.randn(30, 2, generator=g, dtype=torch.float64)
pts = torch.cat([pts, pts[:10] + torch.tensor([0.0, 1.0], dtype=torch.float64)])
W_singular = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
candidates = {"euclidean": ms.euclidean, "squared euclidean": ms.squared_euclidean,
              "cosine 1 - cos": ms.cosine_distance, "Mahalanobis, W = diag(1, 0)": ms.mahalanobis(W_singular)}
reports = {}
for name, fn in candidates.items():
    reports[name] = ms.check_axioms(fn, pts)
    print(f"--- {name}\n{reports[name]}\n")

assert reports["euclidean"].is_metric  # claim: axioms
assert reports["squared euclidean"].failing() == ["triangle"]  # claim: axioms
assert reports["cosine 1 - cos"].failing() == ["triangle"]  # claim: axioms
assert reports["Mahalanobis, W = diag(1, 0)"].failing() == ["positivity"]  # claim: axioms
i, j = reports["Mahalanobis, W = diag(1, 0)"].examples["positivity"][0]
print(f"distinct points {pts[i].numpy().round(2)} and {pts[j].numpy().round(2)} are at Mahalanobis distance "
      f"{ms.mahalanobis(W_singular)(pts[i], pts[j]).item():.1e}")
assert not torch.equal(pts[i], pts[j]) and ms.mahalanobis(W_singular)(pts[i], pts[j]) < 1e-12

# %% [markdown]
# Two counterexamples of the kind the checker found, drawn with the points placed so that the triangle can be seen
# (the checker's own examples above are often nearly flat). Each side is labelled with its length under that
# distance; the long side (red) is longer than the two short sides together.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
shown = {"squared euclidean": torch.tensor([[0.0, 0.0], [1.0, 0.45], [2.0, 0.0]]),     # y above the line xz
         "cosine 1 - cos": torch.tensor([[1.6, 0.2], [1.1, 1.1], [0.2, 1.6]])}           # y's direction between
for ax, name in zip(axes, ["squared euclidean", "cosine 1 - cos"]):
    fn = candidates[name]
    P = shown[name]
    d = lambda u, v, fn=fn, P=P: fn(P[u], P[v]).item()
    ax.plot(*P[[0, 1, 2, 0]].T.numpy(), "-", color="#999", zorder=1)
    ax.scatter(*P.T.numpy(), s=60, color=["#1f77b4", "#ff7f0e", "#2ca02c"], zorder=2)
    centre = P.mean(0)
    for k, lab in enumerate("xyz"):   # each name pushed away from the triangle's centre, inside the frame
        away = torch.nn.functional.normalize(P[k] - centre, dim=0) * 14
        ax.annotate(lab, P[k].numpy(), textcoords="offset points", xytext=away.tolist(), fontsize=12,
                    ha="center", va="center")
    for u, v in ((0, 1), (1, 2), (0, 2)):
        mid = (P[u] + P[v]) / 2
        off = torch.nn.functional.normalize(mid - centre, dim=0) * 12   # labels outside the triangle
        ax.annotate(f"{d(u, v):.2f}", mid.numpy(), textcoords="offset points", xytext=off.tolist(), fontsize=10,
                    color="#d62728" if (u, v) == (0, 2) else "black", ha="center", va="center",
                    bbox=dict(fc="white", ec="none", alpha=0.8))
    if name.startswith("cosine"):
        for k in range(3):   # the cosine distance only sees directions: draw the rays from the origin
            ax.plot([0, P[k, 0] * 1.2], [0, P[k, 1] * 1.2], ":", color="#bbb", zorder=0)
        ax.scatter([0], [0], marker="+", color="black")
        ax.annotate("origin", (0, 0), textcoords="offset points", xytext=(8, -10), fontsize=9, color="#666")
    ax.set_aspect("equal", adjustable="datalim")
    ax.margins(0.25)
    ax.set_title(f"{name}: d(x,z) = {d(0, 2):.2f} > {d(0, 1):.2f} + {d(1, 2):.2f}")
    assert d(0, 2) > d(0, 1) + d(1, 2)
fig.tight_layout()

# %% [markdown]
# Why they fail, and why it matters less than it seems:
#
# * **Squared Euclidean**: for three points on a line at 0, 1, 2, $d(0,2) = 4 > 1 + 1$. Squaring punishes long
#   distances more than the sum of short ones. Yet it ranks neighbours *exactly* like the Euclidean distance
#   (squaring is increasing), so nearest neighbours and kNN accuracy do not change — section 3 checks this. It matters
#   for anything that *adds* distances or relies on the triangle inequality (search trees that prune with it, the
#   margins of the losses in lectures 05–07).
# * **Cosine distance** $1 - \cos(x, y)$: it only looks at directions, so $x$ and $2x$ are at distance 0 (positivity
#   fails too, though not on this sample), and it fails the triangle inequality. On the unit sphere it is a
#   disguised *squared* Euclidean distance: $\|u - v\|^2 = 2 - 2\cos(u, v)$. Its square root
#   $\sqrt{2(1 - \cos)}$, the chord length, **is** a metric on directions:

# %%
chord = lambda u, v: torch.sqrt((2 * ms.cosine_distance(u, v)).clamp_min(0))
u = torch.nn.functional.normalize(pts, dim=1)
assert torch.allclose(ms.squared_euclidean(u[:, None], u[None]), 2 * ms.cosine_distance(u[:, None], u[None]))
on_circle = ms.check_axioms(chord, u, atol=1e-6)          # round-off in sqrt needs a looser tolerance
with_multiples = ms.check_axioms(chord, torch.cat([pts, 2 * pts[:3]]), atol=1e-6)
print(f"chord on the unit circle:\n{on_circle}\n\nchord on the plane, with x and 2x in the sample:\n{with_multiples}")
assert on_circle.is_metric and with_multiples.failing() == ["positivity"]

# %% [markdown]
# On the unit circle the chord is a metric; on the whole plane it is only a pseudo-metric, since $x$ and $2x$ share a
# direction.
#
# ## 2. Break the triangle inequality yourself
#
# Move $x$, $y$ and $z$ with the sliders and switch the distance. The readout compares $d(x,z)$ with
# $d(x,y) + d(y,z)$ live. Try: put the three points on a line with $y$ in the middle, then switch from Euclidean to
# squared Euclidean. For the cosine distance, put $y$ at an angle *between* $x$ and $z$.

# %%
# no point at the origin: the cosine distance of the zero vector is undefined (it would read 1 for every y)
explorer = ms.triangle_explorer(((0.5, 0.5), (1.5, 1.0), (2.5, 0.5)), distance="squared euclidean")
explorer

# %%
# the widget, driven from code (what a test does headlessly)
explorer.distance.value = "euclidean"
assert "holds" in explorer.figure.layout.title.text
explorer.distance.value = "squared euclidean"
assert "VIOLATED" in explorer.figure.layout.title.text
import re
print(re.sub(r"<[^>]+>", "", explorer.readout.value))   # the readout is HTML: its text

# %% [markdown]
# ## 3. Why learn a metric: nearest neighbours on pixels
#
# The k-nearest-neighbour classifier labels an image with the class of its nearest training image. It has no
# parameters at all: everything rests on the distance (here $k = 5$: a majority vote of the five nearest). On raw
# pixels, two images are close when their ink is in the same places — a "1" written with a slant and a "1" written
# upright share few pixels. Below: 5-NN accuracy with five fixed distances on the pixels, against the same
# classifier on a **learned embedding** (a small CNN trained with the NCA loss, which lecture 02 introduces for a
# linear map and lecture 05 for a network, by the course's training loop; treat it as a black box for now).

# %%
RAW_DISTANCES = ["euclidean", "squared euclidean", "manhattan", "chebyshev", "cosine (1 - cos)"]

def load_split(dataset):
    tr, te = data.load(dataset, "train", SIZE), data.load(dataset, "test", SIZE)
    keep = data.balanced_subset(tr.labels, TRAIN_PER_CLASS) if TRAIN_PER_CLASS else torch.arange(len(tr.labels))
    tkeep = data.balanced_subset(te.labels, TEST_PER_CLASS)
    return tr.images[keep], tr.labels[keep], te.images[tkeep], te.labels[tkeep]

def train_embedding(dataset, classes=None, tag="all", seed=0):
    '''A SmallCNN trained with the NCA loss on `classes` (all if None); returns the model (cached).'''
    def compute():
        xtr, ytr, _, _ = load_split(dataset)
        if classes is not None:
            xtr, ytr, _, _ = open_set.split_by_classes(xtr, ytr, classes)
        runtime.seed_everything(seed)
        model = models.SmallCNN(32, normalize=True)
        train.train(model, lambda z, y: losses.nca_loss(z, y, scale=16.0), xtr, ytr, epochs=EPOCHS,
                    batch_size=128, samples_per_class=16, lr=3e-3, name=dataset, device=device, progress=True,
                    seed=seed)
        return {"state": model.cpu().state_dict()}

    config = dict(dataset=dataset, classes=classes, size=SIZE, epochs=EPOCHS, per_class=TRAIN_PER_CLASS, v=1,
                  **({"seed": seed} if seed else {}))
    model = models.SmallCNN(32, normalize=True)
    model.load_state_dict(cache.cached(f"l01-emb-{tag}-{dataset}" + (f"-seed{seed}" if seed else ""), config,
                                       compute)["state"])
    return model.to(device).eval()

def raw_pixel_knn(dataset, xtr, ytr, xte, yte):
    '''K-NN accuracy on the raw pixels under each fixed distance (cached too: at full strength the Manhattan
    and Chebyshev distances from every test image to every training image take about a minute on a CPU).'''
    def compute():
        ptr, pte = data.to_float(xtr).flatten(1), data.to_float(xte).flatten(1)   # pixels in [0, 1]
        return {dist: ms.knn_accuracy(pte, yte, ptr, ytr, distance=dist, k=K) for dist in RAW_DISTANCES}

    config = dict(dataset=dataset, size=SIZE, per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS, k=K,
                  distances=RAW_DISTANCES, v=1)
    return cache.cached(f"l01-raw-knn-{dataset}", config, compute)

knn, splits, embedded = {}, {}, {}
for dataset in ("mnist", "fashion-mnist"):
    xtr, ytr, xte, yte = splits[dataset] = load_split(dataset)
    for dist, accuracy in raw_pixel_knn(dataset, xtr, ytr, xte, yte).items():
        knn[dataset, "pixels, " + dist] = accuracy
    model = train_embedding(dataset)
    # cache=True: a re-run with the cached network loads its embeddings too (seconds for 60,000 images)
    ztr, zte = models.embed(model, xtr, name=dataset, cache=True), models.embed(model, xte, name=dataset, cache=True)
    embedded[dataset] = (ztr, zte)
    knn[dataset, "learned embedding, euclidean"] = ms.knn_accuracy(zte, yte, ztr, ytr, k=K)

# %%
rows = [r for (d, r) in knn if d == "mnist"]
print(f"{K}-NN test accuracy ({len(splits['mnist'][3])} test images against {len(splits['mnist'][1])} training "
      f"images per dataset)\n")
print(f"{'':<34}{'MNIST':>8}{'Fashion':>9}")
for r in rows:
    print(f"{r:<34}{knn['mnist', r]:>8.3f}{knn['fashion-mnist', r]:>9.3f}")
print(f"\n(the learned embedding: {EPOCHS} epochs on {len(splits['mnist'][1])} training images per dataset"
      f"{', quick mode' if QUICK else ''})")

OTHER_RAW = [d for d in RAW_DISTANCES if d != "chebyshev"]
for dataset in ("mnist", "fashion-mnist"):
    raw_rows = {d: knn[dataset, "pixels, " + d] for d in RAW_DISTANCES}
    best_raw = max(raw_rows.values())
    print(f"{dataset}: best raw distance {max(raw_rows, key=raw_rows.get)} {best_raw:.3f}; the other four "
          f"within {max(raw_rows[d] for d in OTHER_RAW) - min(raw_rows[d] for d in OTHER_RAW):.3f} of each "
          f"other; Chebyshev {raw_rows['chebyshev']:.3f}")
    assert knn[dataset, "learned embedding, euclidean"] > best_raw, dataset  # claim: learned-beats-raw
    # squaring does not change the order of neighbours, hence not the kNN accuracy
    assert knn[dataset, "pixels, euclidean"] == knn[dataset, "pixels, squared euclidean"]  # claim: squared-ranks
    # the Chebyshev distance sees one pixel: far behind every other fixed distance
    assert raw_rows["chebyshev"] < min(raw_rows[d] for d in OTHER_RAW) - 0.1, dataset

# %% [markdown]
# No fixed distance rescues the pixels. Four of them land close together (the printed spread), and the squared
# Euclidean row equals the Euclidean one (same order of neighbours, as promised). The fifth, the **Chebyshev**
# distance $\max_k |x_k - y_k|$, is far behind on both datasets: it judges two images by the single pixel where they
# differ most, and between two handwritten digits that pixel is almost always ink in one image and paper in the
# other, so most distances come out near the largest possible value and the nearest neighbours are decided by
# ties (exercise 4 counts them). The learned embedding beats every fixed distance on both datasets. That is the
# whole motivation of metric learning: instead of choosing a distance, learn a map $f$ such that the plain Euclidean
# distance between $f(x)$ and $f(y)$ means *same class or not*. (The line under the table says how long the network
# trained: in quick mode a few epochs on a subset, without `DMLCOURSE_QUICK` every training image of the size.)
#
# ## 4. Classification versus verification, closed-set versus open-set
#
# Think of a face-recognition system. Two ways to build it:
#
# * **Classification**: an $N$-way classifier with one output per known person. It answers *"which of my $N$
#   people is this?"* and nothing else.
# * **Verification / retrieval**: an embedding, and a comparison: *"is this face close to that one?"*. A new person
#   is added by storing one embedding of their face — no retraining.
#
# The choice depends on the test classes:
#
# * **closed-set**: every class met at test time was seen in training (digit recognition: always the same ten
#   digits). A classifier is the natural tool.
# * **open-set**: test classes may be **new** (faces of people who were not in the training set, products added to
#   a catalogue yesterday). A classifier cannot output a class it does not have; an embedding can still say which
#   images go together.
#
# ⚠️ The first seed document of this course states these two the wrong way round ("open set (same classes come during
# training set) vs closed set (different classes from training set)"). It is a common confusion: *closed* means the
# set of classes is closed — fixed at training time.
#
# ⚠️ The same seed calls matching a sample against the closest of $N$ stored references "verification". That is
# **identification** (1:N): *who in my gallery is this?* **Verification** is 1:1: *is this the person they claim to
# be?*, one comparison of two embeddings against a threshold. Both use the same embedding; they differ in the
# question asked, in how errors are counted (the chance of a false match grows with the gallery size $N$), and in the metric
# reported (identification accuracy or P@1 versus false accept and false reject rates).
#
# Let us do it for real on MNIST: train on the digits 0–4 only and hold out 5–9. Two networks of the same
# architecture and training budget: a **softmax classifier** (a linear head with 5 outputs on the network, trained
# with cross-entropy) and a **metric embedding** (the NCA loss, as above).

# %%
SEEN = [0, 1, 2, 3, 4]
xtr, ytr, xte, yte = splits["mnist"]
xs_tr, ys_tr, xu_tr, yu_tr = open_set.split_by_classes(xtr, ytr, SEEN)
xs_te, ys_te, xu_te, yu_te = open_set.split_by_classes(xte, yte, SEEN)

def train_classifier():
    def compute():
        runtime.seed_everything(0)
        net, head = models.SmallCNN(32), heads.SoftmaxHead(32, len(SEEN))
        train.train(net, heads.HeadLoss(head), xs_tr, ys_tr, epochs=CLASSIFIER_EPOCHS, batch_size=128, lr=3e-3,
                    name="mnist", device=device, progress=True)
        return {"net": net.cpu().state_dict(), "head": head.cpu().state_dict()}
    config = dict(seen=SEEN, size=SIZE, epochs=CLASSIFIER_EPOCHS, per_class=TRAIN_PER_CLASS, v=1)
    state = cache.cached("l01-classifier-mnist", config, compute)
    net, head = models.SmallCNN(32), heads.SoftmaxHead(32, len(SEEN))
    net.load_state_dict(state["net"]); head.load_state_dict(state["head"])
    return net.to(device).eval(), head.to(device).eval()

clf_net, clf_head = train_classifier()
emb_seen = train_embedding("mnist", classes=SEEN, tag="seen")

def classifier_outputs(images):
    feats = models.embed(clf_net, images, name="mnist", cache=True)
    with torch.no_grad():
        probs = torch.softmax(clf_head(feats.to(device)), 1).cpu()
    return feats, probs

_, probs_seen = classifier_outputs(xs_te)
feats_unseen, probs_unseen = classifier_outputs(xu_te)
closed_acc = (probs_seen.argmax(1) == ys_te).float().mean().item()
open_acc = (torch.as_tensor(SEEN)[probs_unseen.argmax(1)] == yu_te).float().mean().item()
print(f"closed-set: classifier accuracy on test digits {SEEN}: {closed_acc:.3f}")
print(f"open-set:   classifier accuracy on test digits 5-9:    {open_acc:.3f} "
      f"(its mean confidence on them: {probs_unseen.max(1).values.mean():.2f})")
confidence_unseen = probs_unseen.max(1).values.mean().item()
assert closed_acc > 0.8  # claim: closed-set
# open_acc is 0 by construction: a head with 5 outputs has no answer 5-9. What can fail is its confidence:
# on average it puts more than half of its probability on one wrong digit (an unsure head would spread it, 1/5 each)
assert confidence_unseen > 0.5  # claim: confidently-wrong

# %% [markdown]
# In the closed set the classifier does its job; on the new digits it is wrong every single time — not because it
# is bad, but because "5" is not among its answers (an accuracy of 0 is certain before we run anything). Worse, it
# is *confident* about its wrong answers: a head that knew it did not know would spread its probability, a fifth on
# each digit, but on average it puts more than half of it on a single wrong digit (printed above, and asserted), so
# it does not even warn us.
#
# The embedding has no notion of "answers". Give it a small gallery of the new digits (training images of 5–9 that
# neither network saw) and ask for each test image's nearest gallery image (Precision@1), or cluster the test images
# with k-means and compare the clusters with the true digits (NMI, 1 = perfect). For completeness the table also
# scores the classifier's 5 class probabilities and the 32 features it computes before its linear head, used as if
# they were embeddings.

# %%
feats_gallery, probs_gallery = classifier_outputs(xu_tr)
candidates_unseen = {
    "raw pixels": (data.to_float(xu_te).flatten(1), data.to_float(xu_tr).flatten(1)),
    "classifier: 5 class probabilities": (probs_unseen, probs_gallery),
    "classifier: features before the head": (feats_unseen, feats_gallery),
    "metric embedding (NCA)": (models.embed(emb_seen, xu_te, name="mnist", cache=True),
                               models.embed(emb_seen, xu_tr, name="mnist", cache=True)),
}
open_scores = {}
for name, (q, gal) in candidates_unseen.items():
    p1 = metrics.precision_at_1(q, yu_te, gal, yu_tr)
    nmi, _ = open_set.kmeans_nmi(q, yu_te, seed=0)
    open_scores[name] = (p1, nmi)
print(f"unseen digits 5-9: {len(yu_te)} queries, gallery of {len(yu_tr)} images\n")
print(f"{'':<38}{'P@1':>7}{'NMI':>7}")
for name, (p1, nmi) in open_scores.items():
    print(f"{name:<38}{p1:>7.3f}{nmi:>7.3f}")

emb, clf = open_scores["metric embedding (NCA)"], open_scores["classifier: 5 class probabilities"]
assert emb[0] > clf[0] and emb[1] > clf[1]  # claim: open-set-embedding
assert open_scores["raw pixels"][0] > clf[0]

# %% [markdown]
# The classifier's *outputs* are nearly useless on new classes: five probabilities, all describing digits 0–4,
# cannot tell a 6 from an 8. Its inner features carry more — a softmax-trained network is an embedding in disguise,
# the starting point of lecture 04 — and the metric embedding, trained *for* distances, retrieves the new digits far
# better than the classifier's outputs.
#
# Be honest about the raw-pixel row, though: on MNIST the nearest raw image is usually the same digit, and a network
# trained briefly on five digits has specialised to them. Features that *transfer* to unseen classes are the central
# difficulty of deep metric learning, and its benchmarks (CUB-200, Cars196, Stanford Online Products) are built
# exactly like this experiment: train on half of the classes, test retrieval on the other half. The UMAP maps of
# the held-out digits (each colour one unseen digit):

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, name in zip(axes, ["classifier: 5 class probabilities", "metric embedding (NCA)"]):
    xy = plots.project_2d(candidates_unseen[name][0], seed=0, cache=True)
    plots.scatter_2d(xy, yu_te, ax=ax, title=f"{name}\nP@1 {open_scores[name][0]:.2f}, NMI {open_scores[name][1]:.2f}")
axes[1].legend(markerscale=3, title="unseen digit", loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
fig.tight_layout()


# %% [markdown]
# ## 5. Separable versus discriminative features
#
# A softmax classifier only needs features that a *linear* boundary can split: **separable**. Retrieval needs more:
# the distance must be small within a class and large between classes, with room to spare — **discriminative**
# features, with compact classes and margins between them. To see the difference, train a small network with a
# **2-dimensional** output on the digits 0–4, once with a softmax head and once with the NCA loss, and plot the
# features themselves.

# %%
def two_d(kind):
    '''The 2-D features of the test digits 0-4 under a small MLP trained with `kind` (cached).'''
    def compute():
        runtime.seed_everything(0)
        net = models.MLP(2, hidden=(128,))
        loss = heads.HeadLoss(heads.SoftmaxHead(2, len(SEEN), bias=False)) if kind == "softmax" else (
            lambda z, y: losses.nca_loss(z, y))
        train.train(net, loss, xs_tr, ys_tr, epochs=10, batch_size=128, samples_per_class=16, lr=3e-3,
                    name="mnist", device=device, progress=False)
        return models.embed(net, xs_te, name="mnist")
    config = dict(kind=kind, seen=SEEN, size=SIZE, per_class=TRAIN_PER_CLASS, epochs=10, v=1)
    return cache.cached(f"l01-two-d-{kind}", config, compute)

feat2 = {"softmax (separable)": two_d("softmax"), "NCA loss (discriminative)": two_d("nca")}
from matplotlib.ticker import AutoLocator
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
spread = {}
for ax, (name, z) in zip(axes, feat2.items()):
    spread[name] = open_set.class_spread(z, ys_te)
    plots.scatter_2d(z, ys_te, ax=ax, title=f"{name}\nspread within / between classes = {spread[name]['ratio']:.2f}")
    ax.set_aspect("equal", adjustable="datalim")
    ax.xaxis.set_major_locator(AutoLocator()), ax.yaxis.set_major_locator(AutoLocator())  # ticks back,
    ax.axhline(0, color="#999", lw=0.8, zorder=0), ax.axvline(0, color="#999", lw=0.8, zorder=0)  # and the origin
    ax.scatter([0], [0], marker="+", s=120, color="black", zorder=3)
axes[1].legend(markerscale=3, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
fig.tight_layout()
print(inspect.getdoc(open_set.class_spread))


map_r_2d = {name: {"euclidean": metrics.map_at_r(z, ys_te),
                   "direction only": metrics.map_at_r(torch.nn.functional.normalize(z, dim=1), ys_te)}
            for name, z in feat2.items()}
print("MAP@R of the 2-D test features, from the points themselves and from their directions only:")
for name, r in map_r_2d.items():
    print(f"  {name:27s} euclidean {r['euclidean']:.3f}   direction only (unit length) {r['direction only']:.3f}")
soft, nca_2d = map_r_2d["softmax (separable)"], map_r_2d["NCA loss (discriminative)"]
# claim: direction-decides
assert soft["direction only"] > soft["euclidean"] and nca_2d["direction only"] < nca_2d["euclidean"]

# %% [markdown]
# Look at what each loss asks for. The softmax head has no bias here, so its decision $\arg\max_c w_c^\top z$ does
# not change when $z$ is made longer or shorter: it only asks each class to win its own *direction*, and says
# nothing about how far apart two images of one class may lie along it. Its classes are wedges around the origin,
# and the length of a feature is noise for retrieval. The NCA loss asks directly for small distances within a class
# wherever the classes sit in the plane. The printed MAP@R measures exactly this: throwing the length away (keeping
# only the direction) *helps* retrieval on the softmax features and *hurts* it on the NCA features (both asserted).
# The within/between ratio of the titles (`class_spread`) is one number for the whole picture and cannot tell the two
# apart; the losses of lectures 05–07 add *margins*, and lecture 07 repairs the softmax itself by normalising the
# features and putting the margin on the angle.
#
# ## 6. Problem settings: labels, or only tuples
#
# * **Supervised**: every training point has a class label, as in classification. We want a distance under which
#   two images of one class come out small and two images of different classes come out large.
# * **Weakly supervised**: we only know something about *tuples* of points: this pair is similar, that pair is not
#   (pairs); $a$ is closer to $p$ than to $n$ (triplets); or the quadruplet version with a second negative from a third
#   class. Such information is cheaper to collect (two photos taken seconds apart by the same camera, a user who
#   clicked two products in one session) and needs no global list of classes.
#
# Labels can always be turned into tuples — the converse is not true. The builders of `dmlcourse.tuples`:

# %%
labels_demo = ys_tr
i, j, dissimilar = tuples.make_pairs(labels_demo, 6, seed=0)
a, p, n = tuples.make_triplets(labels_demo, 6, seed=0)
qa, qp, qn, qn2 = tuples.make_quadruplets(labels_demo, 6, seed=0)
print("pairs (i, j, dissimilar):  labels", list(zip(labels_demo[i].tolist(), labels_demo[j].tolist(), dissimilar.tolist())))
print("triplets (a, p, n):        labels", list(zip(labels_demo[a].tolist(), labels_demo[p].tolist(), labels_demo[n].tolist())))
print("quadruplets (a, p, n, n2): labels", list(zip(*(labels_demo[t].tolist() for t in (qa, qp, qn, qn2)))))

assert torch.equal(dissimilar, (labels_demo[i] != labels_demo[j]).long()) and not torch.any(i == j)
assert torch.all(labels_demo[a] == labels_demo[p]) and torch.all(labels_demo[a] != labels_demo[n]) and not torch.any(a == p)
assert torch.all(labels_demo[qn2] != labels_demo[qa]) and torch.all(labels_demo[qn2] != labels_demo[qn])
plots.image_grid(torch.cat([xs_tr[qa], xs_tr[qp], xs_tr[qn], xs_tr[qn2]]),
                 torch.cat([labels_demo[t] for t in (qa, qp, qn, qn2)]), ncols=6,
                 title="quadruplets: anchor, positive, negative, second negative (rows)");

# %% [markdown]
# ## 7. Applications: retrieval and clustering
#
# Metric learning serves face recognition and person re-identification, image and product search, duplicate and
# anomaly detection, and the self-supervised pre-training of image, text and audio models (CLIP matches images and
# captions with exactly this kind of embedding). Two small working demos on Fashion-MNIST:
#
# **Retrieval**: a query image and its five nearest training images, on pixels and on the learned embedding
# (green title: same class as the query, red: another).

# %%
xtr_f, ytr_f, xte_f, yte_f = splits["fashion-mnist"]
ztr_f, zte_f = embedded["fashion-mnist"]
queries = torch.tensor([3, 150, 290, 420, 660, 820]) * len(yte_f) // 1000   # spread over the classes
names = data.CLASS_NAMES["fashion-mnist"]
for title, Q, R in (("raw pixels", data.to_float(xte_f).flatten(1), data.to_float(xtr_f).flatten(1)),
                    ("learned embedding", zte_f, ztr_f)):
    nn = open_set.nearest_neighbours(Q[queries], R, 5)
    open_set.retrieval_grid(xte_f[queries], xtr_f, nn, yte_f[queries], ytr_f, class_names=names,
                            title=f"retrieval on {title}")
show(open_set.nearest_neighbours, "k nearest")   # the distances, then the k smallest

# %% [markdown]
# **Clustering**: k-means with 10 clusters on the test images, scored by the normalised mutual information between
# clusters and classes (1: the clusters are the classes, 0: unrelated).

# %%
print(f"{'':<10}{'NMI pixels':>12}{'NMI embedding':>15}")
nmi_scores = {}
for dataset in ("mnist", "fashion-mnist"):
    _, _, xte_d, yte_d = splits[dataset]
    nmi_scores[dataset] = (open_set.kmeans_nmi(data.to_float(xte_d).flatten(1), yte_d)[0],
                           open_set.kmeans_nmi(embedded[dataset][1], yte_d)[0])
    print(f"{dataset:<10}{nmi_scores[dataset][0]:>12.3f}{nmi_scores[dataset][1]:>15.3f}")
    assert nmi_scores[dataset][1] > nmi_scores[dataset][0]  # claim: clustering

# %% [markdown]
# ### Beyond retrieval and clustering: out-of-distribution detection and few-shot classification
#
# The same embedding answers two more questions, with no new training. We reuse the network of section 4, trained
# with the NCA loss on the digits 0–4 only.
#
# **Out-of-distribution (OOD) detection**: is this input like anything seen in training? Score each input by its
# distance to the nearest training embedding; a large distance flags it. Two kinds of strangers: the held-out digits
# 5–9 (near: same pen strokes, new classes) and Fashion-MNIST clothes (far: another kind of image). The score is
# judged by the **AUROC**: the probability that a random stranger scores higher than a random test image of the
# digits 0–4 (1 = perfect separation, 0.5 = chance). The same scores on raw pixels are the baseline.
#
# One trained network is one draw: another seed (another random start and batch order) gives another embedding. So
# the embedding is trained with every seed in `SEEDS`, and its row is the mean ± standard deviation over them. A
# difference counts only where the gap between the means is larger than the two standard deviations added (raw
# pixels have no seed, so their spread is 0): the rule lecture 04 explains, in `metrics.clearly_above`.

# %%
show(open_set.knn_distance_scores, docstring=False)
x_fashion_ood = splits["fashion-mnist"][2]
STRANGERS = {"digits 5-9": xu_te, "Fashion-MNIST": x_fashion_ood}

def ood_aurocs(f):
    '''AUROC of the nearest-training-image distance in the space f, for each set of strangers.'''
    reference = f(xs_tr)                                   # the training images of the seen digits
    s_in = open_set.knn_distance_scores(f(xs_te), reference)
    return {name: open_set.auroc(s_in, open_set.knn_distance_scores(f(imgs), reference))
            for name, imgs in STRANGERS.items()}

emb_seen_all = {seed: emb_seen if seed == 0 else train_embedding("mnist", classes=SEEN, tag="seen", seed=seed)
                for seed in SEEDS}
raw_ood = ood_aurocs(lambda imgs: data.to_float(imgs).flatten(1))
emb_ood_runs = [ood_aurocs(lambda imgs, m=m: models.embed(m, imgs, name="mnist", cache=True))
                for m in emb_seen_all.values()]
emb_ood = {k: metrics.mean_sd([r[k] for r in emb_ood_runs]) for k in STRANGERS}
print(f"AUROC of the nearest-neighbour distance ({len(xs_te)} test digits 0-4 against each set of strangers)\n")
print(f"{'':<38}{'digits 5-9':>16}{'Fashion-MNIST':>16}")
print(f"{'raw pixels':<38}" + "".join(f"{raw_ood[k]:>16.3f}" for k in STRANGERS))
print(f"{f'metric embedding, {len(SEEDS)} seeds':<38}"
      + "".join(f"{f'{emb_ood[k][0]:.3f} ± {emb_ood[k][1]:.3f}':>16}" for k in STRANGERS))
verdict = {k: "embedding ahead" if metrics.clearly_above(emb_ood[k], (raw_ood[k], 0.0)) else
           "raw pixels ahead" if metrics.clearly_above((raw_ood[k], 0.0), emb_ood[k]) else "within the seed spread"
           for k in STRANGERS}
print("\nembedding against raw pixels:", verdict)
assert raw_ood["Fashion-MNIST"] > raw_ood["digits 5-9"] + 0.05  # claim: far-strangers-easier
assert min([raw_ood["Fashion-MNIST"]] + [r["Fashion-MNIST"] for r in emb_ood_runs]) > 0.95  # claim: clothes-flagged
assert verdict["digits 5-9"] == "embedding ahead"  # claim: near-strangers

# %% [markdown]
# Clothes are easy to flag in either space: on raw pixels a shirt is far from every digit, and the embedding keeps
# it far (every AUROC above 0.95, asserted). Whether one space flags them better is the printed verdict; a gap
# smaller than the seed spread ranks nothing. The held-out digits are the hard case, and there the embedding flags
# them better than raw pixels do, by more than its seed spread: it was trained to pull the digits 0–4 into tight
# groups, so a 7 lands away from all of them, while in pixel space a 7 and a 1 share most of their ink.

# %% [markdown]
# **Few-shot classification**: the digits 5–9 were never trained on; now a user labels 1, 5 or 10 images of each and
# asks the system to recognise the rest. With an embedding this needs no training at all: average the labelled
# embeddings of each class and give every other image the class of the nearest mean. Each accuracy is the mean (±
# standard deviation) over 20 random draws of the labelled examples.

# %%
show(open_set.nearest_class_mean, docstring=False)
spaces = {"raw pixels": lambda imgs: data.to_float(imgs).flatten(1),
          "metric embedding (NCA, digits 0-4)": lambda imgs: models.embed(emb_seen, imgs, name="mnist", cache=True)}
SHOTS = (1, 5, 10)
few_shot = {space: {k: open_set.few_shot_accuracy(f(xu_te), yu_te, k, episodes=20, seed=0) for k in SHOTS}
            for space, f in spaces.items()}
print(f"nearest-class-mean accuracy on the unseen digits 5-9 ({len(yu_te)} test images, chance 0.2)\n")
print(f"{'':<38}" + "".join(f"{f'{k}-shot':>15}" for k in SHOTS))
for space, v in few_shot.items():
    print(f"{space:<38}" + "".join(f"{m:>9.3f} ± {sd:.2f}" for m, sd in v.values()))
emb_fs, raw_fs = few_shot["metric embedding (NCA, digits 0-4)"], few_shot["raw pixels"]
for v in (emb_fs, raw_fs):
    assert v[1][0] < v[5][0] < v[10][0] and v[1][0] > 0.3  # claim: few-shot
for k in SHOTS:
    gap, spread = emb_fs[k][0] - raw_fs[k][0], emb_fs[k][1] + raw_fs[k][1]
    verdict = "within the spread" if abs(gap) <= spread else ("embedding ahead" if gap > 0 else "raw pixels ahead")
    print(f"{k:>2}-shot: embedding minus raw pixels {gap:+.3f} (spread {spread:.2f}): {verdict}")
# %% [markdown]
# Both spaces recognise the new digits from a handful of examples, far above chance, and both improve with every
# extra labelled example. Whether the embedding (seed 0) beats the pixels is printed above, shot by shot, with the
# spread of the 20 draws of labelled examples as the yardstick. Do not expect a clear win here: this embedding saw
# only five digits, briefly, and MNIST digits are close in raw pixels already, the same caveat as in section 4. The
# rule itself is the one behind prototypical networks (Snell, Swersky and Zemel, 2017): nearest class mean on an
# embedding trained for it, across many classes.
#
# %% [markdown]
# ## Summary
#
# - A **metric** satisfies identity, positivity, symmetry and the triangle inequality. Squared Euclidean and cosine
#   distances break the triangle inequality (the checker finds counterexamples); a Mahalanobis distance with a
#   singular $W$ is a **pseudo-metric** (distinct points at distance 0). <!-- claim: axioms --> For *ranking*
#   neighbours the squared Euclidean distance is exactly as good as the Euclidean one. <!-- claim: squared-ranks -->
# - kNN on raw pixels is mediocre whatever fixed distance we pick, and the Chebyshev distance, which sees one pixel,
#   is far worse than the others; a **learned** embedding beats all of them. <!-- claim: learned-beats-raw -->
# - **Closed-set**: the test classes were seen in training; **open-set**: they may be new. A softmax classifier is
#   confidently wrong on new classes; an embedding still retrieves and clusters them. <!-- claim: closed-set -->
#   <!-- claim: confidently-wrong --> <!-- claim: open-set-embedding -->
# - Softmax features are **separable**: the class lives in a feature's direction, and its length is noise (MAP@R
#   rises when the 2-D softmax features are cut to unit length, and falls for the NCA features, which use distances).
#   Retrieval needs **discriminative** features: compact classes with margins between them. <!-- claim: direction-decides -->
# - **Supervised** metric learning uses labels; **weakly supervised** uses pairs, triplets or quadruplets — and labels
#   can always be turned into tuples. <!-- recap -->
# - Applications: retrieval, clustering, verification, re-identification, self-supervised pre-training. With no new
#   training, the same embedding clusters the test images closer to their classes than raw pixels do, flags inputs
#   unlike the training data (new digits better than raw pixels, over seeds), and recognises new classes from a few
#   labelled examples (nearest class mean). <!-- claim: clustering --> <!-- claim: near-strangers -->
#   <!-- claim: few-shot -->
#
# ## Exercises
#
# Each exercise asks you to write a few lines in the cell below it; the `check(...)` at the end of the cell says
# ✓ (right), ✗ (and what looks wrong) or ○ (not attempted yet). Stuck? `hint("01.1")` gives a hint, and another
# one each time you call it. `show_solution("01.1")` prints the solution, for when you decide to look.
#
# 1. **The Manhattan distance.** Write `my_manhattan(u, v)`, the row-wise $\sum_k |u_k - v_k|$ of two $N \times D$
#    tensors, without `dmlcourse.metric_spaces`. Then run `ms.check_axioms(my_manhattan, pts)`: is it a metric?
# 2. **Find the violations.** Write `my_violations(D)`: for an $n \times n$ distance matrix, the $n \times n \times n$
#    boolean tensor that is True at $[a, b, c]$ where $D[a,c] > D[a,b] + D[b,c]$ (plus $10^{-9}$ for round-off),
#    without loops (broadcasting).
# 3. **Triplets from labels.** Write `my_triplets(labels, n)`: $n$ random triplets of indices (anchor, positive,
#    negative), without `dmlcourse.tuples`. Mind the anchors whose class has a single sample.
# 4. **Predict, then explain: one pixel decides.** Before you look at section 3's table again, guess the 5-NN
#    accuracy of the *Chebyshev* distance on MNIST pixels. Then explain it with one number: for 200 MNIST test
#    images spread over the classes (`Q`, given), find the distance of the $K$-th nearest training image under the
#    Chebyshev distance and count the training images at that distance or closer; `my_tied` is the mean of that
#    count over the 200 queries. (Without ties it would be exactly $K$.)
# 5. **Explore (no check).** Section 4 with `SEEN = [0, 1, 2, 3, 4, 5, 6, 7]` (it retrains two networks): does the
#    embedding's P@1 on the two held-out digits go up or down?

# %%
from dmlcourse.exercises import check, hint, show_solution

# %% exercise="01.1"
def my_manhattan(u, v):
    """Return the (N,) tensor of Manhattan distances sum_k |u[i, k] - v[i, k]|, one per row of u and v."""
    ### BEGIN SOLUTION
    return (u - v).abs().sum(-1)
    ### END SOLUTION


check("01.1", my_manhattan)

# %% exercise="01.2"
def my_violations(D):
    """Return the (n, n, n) bool tensor, True at [a, b, c] exactly where D[a, c] > D[a, b] + D[b, c] + 1e-9."""
    ### BEGIN SOLUTION
    return D[:, None, :] > D[:, :, None] + D[None, :, :] + 1e-9
    ### END SOLUTION


check("01.2", my_violations)

# %% exercise="01.3"
def my_triplets(labels, n):
    """Return (anchors, positives, negatives): three tensors of n random indices into labels, with
    labels[positive] == labels[anchor], positive != anchor, and labels[negative] != labels[anchor]."""
    ### BEGIN SOLUTION
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    ok = torch.nonzero(pos.any(1) & (~same).any(1)).flatten()   # anchors with a positive and a negative
    a = ok[torch.randint(len(ok), (n,))]
    p = torch.multinomial(pos[a].float(), 1).flatten()          # one random True column per row
    neg = torch.multinomial((~same[a]).float(), 1).flatten()
    return a, p, neg
    ### END SOLUTION


check("01.3", my_triplets)

# %% exercise="01.4"
xtr_m, _, xte_m, _ = splits["mnist"]
spread_out = torch.linspace(0, len(xte_m) - 1, 200).long()     # the test set is sorted by class: take every k-th
# training and test pixels as their stored values 0-255: every distance is then a whole number, so ties are exact
P, Q = xtr_m.flatten(1).float(), xte_m[spread_out].flatten(1).float()
my_prediction = None   # your guess: 5-NN accuracy of the CHEBYSHEV distance on MNIST pixels
my_tied = None         # mean over the queries Q of: training images at or within their K-th Chebyshev distance
### BEGIN SOLUTION
my_prediction = 0.85
d = torch.cdist(Q, P, p=float("inf"))                    # (200, N): max_k |q_k - p_k|
kth = d.topk(K, dim=1, largest=False).values[:, -1:]       # each query's K-th smallest distance
my_tied = (d <= kth).sum(1).float().mean().item()
### END SOLUTION

check("01.4", my_prediction, my_tied, knn, Q, P, K)
