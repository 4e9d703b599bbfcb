# %% [markdown]
# # 01 · Metric spaces, and why we learn a metric
#
# Almost every method in this course ends with a question of the form *"which of these is closest?"* — the nearest
# neighbour of a query, the cluster an image falls into, whether two faces are the same person. The answer depends
# entirely on the **distance** we use. This lecture asks what a distance is, and shows that the distances we get for
# free (on raw pixels) are poor ones, so it pays to *learn* one.
#
# What you will see:
# 1. the four axioms of a metric, checked numerically — and three candidates that fail them: the squared Euclidean
#    and cosine distances break the triangle inequality, and a Mahalanobis distance with a singular matrix breaks
#    positivity;
# 2. an interactive triangle to break the triangle inequality yourself;
# 3. k-nearest-neighbour accuracy on raw pixels under five fixed distances, against a learned embedding (trained with
#    several seeds, and compared by a rule that tells a real gap from seed noise);
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
EPOCHS = 4                                   # every CNN of sections 3-4, both modes (quick: fewer images)
K = 5                                        # k of the kNN classifier (majority of 5 neighbours)
SEEDS = runtime.quick([0, 1, 2], [0, 1])     # every trained network is trained once per seed

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
# The $k$-nearest-neighbour (kNN) classifier gives an image the majority class among its $k$ nearest training
# images (here $k = 5$). It has no parameters at all: everything rests on the distance. On raw pixels, two images
# are close when their ink is in the same places — a "1" written with a slant and a "1" written upright share few
# pixels. Below: 5-NN accuracy with five fixed distances on the pixels, against the same classifier on a **learned
# embedding** (a small CNN trained with the NCA loss, which lecture 02 introduces for a linear map and lecture 05
# for a network, by the course's training loop; treat it as a black box for now).
#
# One trained network is one draw: another seed (another random start and batch order) gives another embedding and
# another accuracy. So every network of this lecture is trained once for each seed in `SEEDS`, its rows show the
# mean ± standard deviation over the seeds, and a difference counts only where the gap between the means is larger
# than the two standard deviations added (`metrics.clearly_above`; lecture 04 explains the rule). Raw pixels have no
# seed: their spread is 0.

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

knn, knn_emb, splits, embedded = {}, {}, {}, {}
for dataset in ("mnist", "fashion-mnist"):
    xtr, ytr, xte, yte = splits[dataset] = load_split(dataset)
    for dist, accuracy in raw_pixel_knn(dataset, xtr, ytr, xte, yte).items():
        knn[dataset, "pixels, " + dist] = accuracy
    embedded[dataset] = {}                   # seed -> (training embeddings, test embeddings)
    for seed in SEEDS:
        model = train_embedding(dataset, seed=seed)
        # cache=True: a re-run with the cached network loads its embeddings too (seconds for 60,000 images)
        embedded[dataset][seed] = (models.embed(model, xtr, name=dataset, cache=True),
                                   models.embed(model, xte, name=dataset, cache=True))
    knn_emb[dataset] = metrics.mean_sd([ms.knn_accuracy(zte, yte, ztr, ytr, k=K)
                                        for ztr, zte in embedded[dataset].values()])

# %%
rows = [r for (d, r) in knn if d == "mnist"]
print(f"{K}-NN test accuracy ({len(splits['mnist'][3])} test images against {len(splits['mnist'][1])} training "
      f"images per dataset)\n")
print(f"{'':<34}{'MNIST':>16}{'Fashion':>16}")
for r in rows:
    print(f"{r:<34}{knn['mnist', r]:>16.3f}{knn['fashion-mnist', r]:>16.3f}")
print(f"{f'learned embedding, {len(SEEDS)} seeds':<34}"
      + "".join(f"{f'{m:.3f} ± {sd:.3f}':>16}" for m, sd in (knn_emb["mnist"], knn_emb["fashion-mnist"])))
print(f"\n(the learned embedding: {EPOCHS} epochs on {len(splits['mnist'][1])} training images per dataset"
      f"{', quick mode' if QUICK else ''})")

OTHER_RAW = [d for d in RAW_DISTANCES if d != "chebyshev"]
for dataset in ("mnist", "fashion-mnist"):
    raw_rows = {d: knn[dataset, "pixels, " + d] for d in RAW_DISTANCES}
    best_raw = max(raw_rows.values())
    ahead = metrics.clearly_above(knn_emb[dataset], (best_raw, 0.0))
    print(f"{dataset}: best raw distance {max(raw_rows, key=raw_rows.get)} {best_raw:.3f}; the other four "
          f"within {max(raw_rows[d] for d in OTHER_RAW) - min(raw_rows[d] for d in OTHER_RAW):.3f} of each "
          f"other; Chebyshev {raw_rows['chebyshev']:.3f}; the embedding "
          f"{'ahead of the best by more than its seed spread' if ahead else 'within its seed spread of the best'}")
    # ahead on MNIST in both modes; on Fashion-MNIST when trained on every training image (not on quick's subset)
    assert ahead or (QUICK and dataset == "fashion-mnist"), dataset  # claim: learned-beats-raw
    # squaring does not change the order of neighbours, hence not the kNN accuracy
    assert knn[dataset, "pixels, euclidean"] == knn[dataset, "pixels, squared euclidean"]  # claim: squared-ranks
    # the Chebyshev distance sees one pixel: far behind every other fixed distance
    assert raw_rows["chebyshev"] < min(raw_rows[d] for d in OTHER_RAW) - 0.1, dataset  # claim: chebyshev-far-behind

# %% [markdown]
# Four of the fixed distances land close together (the printed spread), and the squared Euclidean row equals the
# Euclidean one (same order of neighbours, as promised). On MNIST they do respectably: the nearest raw image is
# usually the same digit. The fifth, the **Chebyshev** distance $\max_k |x_k - y_k|$, is far behind on both datasets
# (more than 0.1 below every other distance, asserted): it judges two images by the single pixel where they differ
# most, and between two handwritten digits that pixel is almost always ink in one image and paper in the other, so
# most distances come out near the largest possible value and many training images tie (exercise 4 counts them).
# The learned embedding is ahead of the best fixed distance on MNIST by more than its seed spread, and on
# Fashion-MNIST too when it trains on every training image (both asserted; with quick mode's subset the Fashion-MNIST
# gap can fall within the spread, and the printed line says which). That is the motivation of metric learning:
# instead of choosing a distance, learn a map $f$ such that the plain Euclidean distance between $f(x)$ and $f(y)$
# means *same class or not*. (The line under the table says
# what the network trained on: the same number of epochs in both modes, on 400 images per class in quick mode and on
# every training image of the size without `DMLCOURSE_QUICK`.)
#
# ## 4. Classification versus verification, closed-set versus open-set
#
# A phone that unlocks for its owner's face, or a door that opens for a company's staff, can be designed around
# either of two network outputs:
#
# * **Classification**: one output per person known when the network was trained. It can only ever answer *"which
#   of my $N$ people is this?"*.
# * **Verification / retrieval**: an embedding, and a comparison of embeddings: *"is this face close to that one?"*.
#   Enrolling a new employee means storing one embedding of their face — the network is not retrained.
#
# Which design fits is settled by one question: will the system meet classes it was not trained on?
#
# * **closed-set**: every class met at test time was seen in training (digit recognition: always the same ten
#   digits). A classifier is the natural tool.
# * **open-set**: test classes may be **new** (faces of people who were not in the training set, products added to
#   a catalogue yesterday). A classifier cannot output a class it does not have; an embedding can still say which
#   images go together.
#
# ⚠️ *The fundamentals article* states these two the wrong way round ("open set (same classes come during training
# set) vs closed set (different classes from training set)"). It is a common confusion: *closed* means the set of
# classes is closed — fixed at training time.
#
# ⚠️ *The fundamentals article* also calls matching a sample against the closest of $N$ stored references
# "verification". That is **identification** (1:N): *who in my gallery is this?* **Verification** is 1:1: *is this
# the person they claim to be?*, one comparison of two embeddings against a threshold. Both use the same embedding;
# they differ in the question asked, in how errors are counted (the chance of a false match grows with the gallery
# size $N$), and in the metric reported (identification accuracy or P@1 versus false accept and false reject rates).
#
# Let us do it for real on MNIST: train on the digits 0–4 only and hold out 5–9. Two kinds of network, each trained
# once per seed, with the same backbone (the small CNN of section 3, 32 outputs), the same images, the same number of
# epochs and the same class-balanced batches: a **softmax classifier** (a linear head with 5 outputs on the
# network, trained with cross-entropy) and a **metric embedding** (the NCA loss on outputs cut to unit length, as
# in section 3).
#
# One step differs. At test time batch norm normalises with running averages collected during training, and those
# lag behind a network whose weights are still moving fast; a classifier's unnormalised logits can be thrown off by
# the lag. So after training, the classifier's averages are recomputed from its training images with the final
# weights (`torch.optim.swa_utils.update_bn`, one pass in training mode, no update of the weights). The accuracy it
# would have had without that pass is printed beside the real one.

# %%
SEEN = [0, 1, 2, 3, 4]
UNSEEN = [c for c in range(10) if c not in SEEN]
def digits(classes):   # "digits 5-9" for a run of digits, "digits 2, 7" otherwise
    run = classes == list(range(classes[0], classes[-1] + 1)) and len(classes) > 2
    return "digits " + (f"{classes[0]}-{classes[-1]}" if run else ", ".join(map(str, classes)))
xtr, ytr, xte, yte = splits["mnist"]
xs_tr, ys_tr, xu_tr, yu_tr = open_set.split_by_classes(xtr, ytr, SEEN)
xs_te, ys_te, xu_te, yu_te = open_set.split_by_classes(xte, yte, SEEN)

def closed_set_accuracy(net, head):
    '''Accuracy of the classifier (net, head) on the test images of the digits SEEN.'''
    with torch.no_grad():
        logits = head(models.embed(net, xs_te, name="mnist").to(device)).cpu()
    return (torch.as_tensor(SEEN)[logits.argmax(1)] == ys_te).float().mean().item()

def train_classifier(seed=0):
    '''A SmallCNN with a linear head of len(SEEN) outputs, trained with cross-entropy on SEEN, then its batch-norm
    statistics re-estimated on the training images (cached).'''
    def compute():
        runtime.seed_everything(seed)
        net, head = models.SmallCNN(32), heads.SoftmaxHead(32, len(SEEN))
        train.train(net, heads.HeadLoss(head), xs_tr, ys_tr, epochs=EPOCHS, batch_size=128, samples_per_class=16,
                    lr=3e-3, name="mnist", device=device, progress=True, seed=seed)
        head.to(device).eval()
        stale = closed_set_accuracy(net, head)         # with the running averages that training left
        x = data.to_float(xs_tr, "mnist")
        torch.optim.swa_utils.update_bn((x[i:i + 512] for i in range(0, len(x), 512)), net, device=device)
        return {"net": net.cpu().state_dict(), "head": head.cpu().state_dict(), "stale_accuracy": stale}
    config = dict(seen=SEEN, size=SIZE, epochs=EPOCHS, per_class=TRAIN_PER_CLASS, samples_per_class=16, v=2,
                  **({"seed": seed} if seed else {}))
    state = cache.cached("l01-classifier-mnist" + (f"-seed{seed}" if seed else ""), config, compute)
    net, head = models.SmallCNN(32), heads.SoftmaxHead(32, len(SEEN))
    net.load_state_dict(state["net"]); head.load_state_dict(state["head"])
    return net.to(device).eval(), head.to(device).eval(), state["stale_accuracy"]

classifiers, stale_acc = {}, []
for seed in SEEDS:
    net, head, stale = train_classifier(seed)
    classifiers[seed] = (net, head)
    stale_acc.append(stale)
emb_seen_all = {seed: train_embedding("mnist", classes=SEEN, tag="seen", seed=seed) for seed in SEEDS}
emb_seen = emb_seen_all[SEEDS[0]]

def classifier_outputs(classifier, images):
    net, head = classifier
    feats = models.embed(net, images, name="mnist", cache=True)
    with torch.no_grad():
        probs = torch.softmax(head(feats.to(device)), 1).cpu()
    return feats, probs

closed_acc, open_acc, confidence_unseen = [], [], []
for classifier in classifiers.values():
    _, probs_unseen = classifier_outputs(classifier, xu_te)
    closed_acc.append(closed_set_accuracy(*classifier))
    open_acc.append((torch.as_tensor(SEEN)[probs_unseen.argmax(1)] == yu_te).float().mean().item())
    confidence_unseen.append(probs_unseen.max(1).values.mean().item())
(acc_m, acc_sd), (conf_m, conf_sd) = metrics.mean_sd(closed_acc), metrics.mean_sd(confidence_unseen)
stale_m, stale_sd = metrics.mean_sd(stale_acc)
print(f"classifier, {len(SEEDS)} seeds:")
print(f"closed-set: accuracy on the test {digits(SEEN)}: {acc_m:.3f} ± {acc_sd:.3f} (lowest seed {min(closed_acc):.3f};"
      f" with the batch-norm averages training left: {stale_m:.3f} ± {stale_sd:.3f})")
print(f"open-set:   accuracy on the test {digits(UNSEEN)}: {max(open_acc):.3f} for every seed "
      f"(mean confidence on them: {conf_m:.2f} ± {conf_sd:.2f}, lowest seed {min(confidence_unseen):.2f})")
assert min(closed_acc) > 0.95  # claim: closed-set
# open_acc is 0 by construction: a head with 5 outputs has no answer 5-9. What can fail is its confidence:
# on average it puts more than half of its probability on one wrong digit (an unsure head would spread it, 1/5 each)
assert max(open_acc) == 0.0 and min(confidence_unseen) > 0.5  # claim: confidently-wrong

# %% [markdown]
# In the closed set the classifier does its job, with every seed above 0.95 accuracy (asserted). On the new digits
# it is wrong every single time — not because it is bad, but because "5" is not among its answers (an accuracy of 0
# is certain before we run anything). Worse, it is *confident* about its wrong answers: a head that knew it did not
# know would spread its probability, a fifth on each digit, but on average it puts more than half of it on a single
# wrong digit, with every seed (printed above, and asserted), so it does not even warn us.
#
# The embedding has no notion of "answers". Give it a gallery of the new digits — every training image of 5–9,
# which neither network saw (the count is printed) — and ask, for each test image, whether its nearest gallery image
# shows the same digit (**Precision@1**, P@1). Or cluster the test images with k-means and compare the clusters with
# the true digits by their **normalised mutual information** (NMI): 1 when the clusters are exactly the digits, 0
# when they say nothing about them. For completeness the table also scores the classifier's 5 class probabilities
# and the 32 features it computes before its linear head, used as if they were embeddings.

# %%
def open_set_scores(queries, gallery):
    '''(P@1 against the gallery of unseen training images, NMI of k-means on the queries) for the unseen digits.'''
    return (metrics.precision_at_1(queries, yu_te, gallery, yu_tr), open_set.kmeans_nmi(queries, yu_te, seed=0)[0])

ROWS = ["raw pixels", "classifier: 5 class probabilities", "classifier: features before the head",
        "metric embedding (NCA)"]
per_seed = {name: [] for name in ROWS[1:]}          # name -> [(P@1, NMI) for each seed]
candidates_unseen = {}                               # the spaces of the first seed, for the maps below
for seed in SEEDS:
    feats_q, probs_q = classifier_outputs(classifiers[seed], xu_te)
    feats_g, probs_g = classifier_outputs(classifiers[seed], xu_tr)
    spaces_seed = {"classifier: 5 class probabilities": (probs_q, probs_g),
                   "classifier: features before the head": (feats_q, feats_g),
                   "metric embedding (NCA)": (models.embed(emb_seen_all[seed], xu_te, name="mnist", cache=True),
                                              models.embed(emb_seen_all[seed], xu_tr, name="mnist", cache=True))}
    for name, (q, gal) in spaces_seed.items():
        per_seed[name].append(open_set_scores(q, gal))
    if seed == SEEDS[0]:
        candidates_unseen = spaces_seed
candidates_unseen = {"raw pixels": (data.to_float(xu_te).flatten(1), data.to_float(xu_tr).flatten(1)),
                     **candidates_unseen}
raw_p1, raw_nmi = open_set_scores(*candidates_unseen["raw pixels"])
open_scores = {"raw pixels": ((raw_p1, 0.0), (raw_nmi, 0.0))}   # name -> ((P@1 mean, sd), (NMI mean, sd))
open_scores.update({name: (metrics.mean_sd([r[0] for r in runs]), metrics.mean_sd([r[1] for r in runs]))
                    for name, runs in per_seed.items()})
print(f"unseen {digits(UNSEEN)}: {len(yu_te)} queries, gallery of {len(yu_tr)} images; "
      f"networks: mean ± sd over {len(SEEDS)} seeds\n")
print(f"{'':<38}{'P@1':>16}{'NMI':>16}")
for name, scores in open_scores.items():
    print(f"{name:<38}" + "".join(f"{f'{m:.3f} ± {sd:.3f}':>16}" for m, sd in scores))

def verdict(a, b, words):
    '''words[0] if the (mean, sd) score a is above b by more than the seed spread, words[1] if below, else "within
    the seed spread".'''
    return words[0] if metrics.clearly_above(a, b) else words[1] if metrics.clearly_above(b, a) else \
        "within the seed spread"

emb, clf, raw = (open_scores[n] for n in ("metric embedding (NCA)", "classifier: 5 class probabilities", "raw pixels"))
raw_vs_emb = {m: verdict(emb[i], raw[i], ("embedding ahead", "raw pixels ahead")) for i, m in enumerate(("P@1", "NMI"))}
print("\nmetric embedding against raw pixels:", raw_vs_emb)
assert metrics.clearly_above(emb[0], clf[0]) and metrics.clearly_above(emb[1], clf[1])  # claim: open-set-embedding
assert metrics.clearly_above(raw[0], clf[0])
assert raw_vs_emb["P@1"] == "raw pixels ahead"  # claim: pixels-retrieve-new-digits

# %% [markdown]
# The classifier's *outputs* are nearly useless on new classes: five probabilities, all describing digits 0–4,
# cannot tell a 6 from an 8. Its inner features carry more — a softmax-trained network is an embedding in disguise,
# the starting point of lecture 04 — and the metric embedding, trained *for* distances, retrieves and clusters the
# new digits far better than the classifier's outputs, by much more than the seed spread (asserted).
#
# Be honest about the raw-pixel row, though: on MNIST the nearest raw image is usually the same digit, and raw pixels
# retrieve the new digits *better* than this embedding does (P@1, asserted; for NMI the printed verdict says whether
# the gap exceeds the seed spread). A network trained briefly on five digits has specialised to them. Features that
# *transfer* to unseen classes are the central difficulty of deep metric learning, and its benchmarks (CUB-200,
# Cars196, Stanford Online Products) are built exactly like this experiment: train on half of the classes, test
# retrieval on the other half. The UMAP maps of the held-out digits (each colour one unseen digit; the networks of
# the first seed):

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, name in zip(axes, ["classifier: 5 class probabilities", "metric embedding (NCA)"]):
    xy = plots.project_2d(candidates_unseen[name][0], seed=0, cache=True)
    p1, nmi = per_seed[name][0]
    plots.scatter_2d(xy, yu_te, ax=ax, title=f"{name} (seed {SEEDS[0]})\nP@1 {p1:.2f}, NMI {nmi:.2f}")
axes[1].legend(markerscale=3, title="unseen digit", loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
fig.tight_layout()


# %% [markdown]
# ## 5. Separable versus discriminative features
#
# A softmax classifier only needs features that a *linear* boundary can split: **separable**. Retrieval needs more:
# the distance must be small within a class and large between classes, with room to spare — **discriminative**
# features, with compact classes and margins between them. Neither loss of this section asks for a margin; what we
# can look at is how each one arranges the classes. Train a small network with a **2-dimensional** output on the
# digits 0–4, once with a softmax head and once with the NCA loss (each with every seed), and plot the features
# themselves (the first seed).

# %%
def two_d(kind, seed=0):
    '''The 2-D features of the test digits 0-4 under a small MLP trained with `kind` (cached).'''
    def compute():
        runtime.seed_everything(seed)
        net = models.MLP(2, hidden=(128,))
        loss = heads.HeadLoss(heads.SoftmaxHead(2, len(SEEN), bias=False)) if kind == "softmax" else (
            lambda z, y: losses.nca_loss(z, y))
        train.train(net, loss, xs_tr, ys_tr, epochs=10, batch_size=128, samples_per_class=16, lr=3e-3,
                    name="mnist", device=device, progress=False, seed=seed)
        return models.embed(net, xs_te, name="mnist")
    config = dict(kind=kind, seen=SEEN, size=SIZE, per_class=TRAIN_PER_CLASS, epochs=10, v=1,
                  **({"seed": seed} if seed else {}))
    return cache.cached(f"l01-two-d-{kind}" + (f"-seed{seed}" if seed else ""), config, compute)

feat2 = {"softmax head": {seed: two_d("softmax", seed) for seed in SEEDS},
         "NCA loss": {seed: two_d("nca", seed) for seed in SEEDS}}
from matplotlib.ticker import AutoLocator
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, (name, runs) in zip(axes, feat2.items()):
    z = runs[SEEDS[0]]
    plots.scatter_2d(z, ys_te, ax=ax, title=f"{name} (seed {SEEDS[0]})\n"
                     f"spread within / between classes = {open_set.class_spread(z, ys_te)['ratio']:.2f}")
    ax.set_aspect("equal", adjustable="datalim")
    ax.xaxis.set_major_locator(AutoLocator()), ax.yaxis.set_major_locator(AutoLocator())  # ticks back,
    ax.axhline(0, color="#999", lw=0.8, zorder=0), ax.axvline(0, color="#999", lw=0.8, zorder=0)  # and the origin
    ax.scatter([0], [0], marker="+", s=120, color="black", zorder=3)
axes[1].legend(markerscale=3, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
fig.tight_layout()
print(inspect.getdoc(open_set.class_spread))


def over_seeds(measure):
    '''name -> (mean, sd) over the seeds of measure(features).'''
    return {name: metrics.mean_sd([measure(z) for z in runs.values()]) for name, runs in feat2.items()}

unit = lambda z: torch.nn.functional.normalize(z, dim=1)
ratio_2d = over_seeds(lambda z: open_set.class_spread(z, ys_te)["ratio"])
map_r_2d = {"euclidean": over_seeds(lambda z: metrics.map_at_r(z, ys_te)),
            "direction only": over_seeds(lambda z: metrics.map_at_r(unit(z), ys_te))}
print(f"\nover {len(SEEDS)} seeds (mean ± sd):")
print(f"{'':<16}{'within/between':>16}{'MAP@R':>16}{'MAP@R, direction':>20}   cutting to unit length")
for name in feat2:
    cut = verdict(map_r_2d["direction only"][name], map_r_2d["euclidean"][name], ("helps", "hurts"))
    print(f"{name:<16}" + "".join(f"{f'{m:.3f} ± {sd:.3f}':>16}" for m, sd in
                                  (ratio_2d[name], map_r_2d["euclidean"][name]))
          + f"{'{:.3f} ± {:.3f}'.format(*map_r_2d['direction only'][name]):>20}   {cut}")
print("within/between, softmax against NCA:", verdict(ratio_2d["softmax head"], ratio_2d["NCA loss"],
                                                       ("softmax higher", "NCA higher")))
# claim: direction-decides
assert metrics.clearly_above(map_r_2d["direction only"]["softmax head"], map_r_2d["euclidean"]["softmax head"])
assert not metrics.clearly_above(map_r_2d["direction only"]["NCA loss"], map_r_2d["euclidean"]["NCA loss"])

# %% [markdown]
# Look at what each loss asks for. The softmax head has no bias here, so its decision $\arg\max_c w_c^\top z$ does
# not change when $z$ is made longer or shorter: it only asks each class to win its own *direction*, and says
# nothing about how far apart two images of one class may lie along it. Its classes are wedges around the origin,
# and the length of a feature is noise for retrieval. The NCA loss asks directly for small distances within a class
# wherever the classes sit in the plane. The printed MAP@R measures this over the seeds: throwing the length away
# (keeping only the direction) *helps* retrieval on the softmax features, by more than the seed spread (asserted),
# and does not help on the NCA features (asserted; whether it hurts them beyond the spread is printed).
#
# Neither network was trained for discriminative features in the sense above: neither loss asks for a margin. The
# within/between ratio (`class_spread`, one number for the whole picture; small means tight classes far apart) is
# the kind of measure such features would win on, and the printed verdict compares the two losses by it. The losses
# of lectures 05–07 add *margins*, and lecture 07 repairs the softmax itself by normalising the features and putting
# the margin on the angle.
#
# ## 6. Problem settings: labels, or only tuples
#
# * **Supervised**: the training set is labelled image by image — exactly the data a classifier would be trained on.
#   The labels say which pairs should end up near each other (same class) and which far apart.
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
# Any system whose question is *"what is most similar to this?"* can run on a learned distance: a shop's "more like
# this" button, a photo library that finds near-duplicates, a phone unlocked by its owner's face, the same pedestrian
# followed from one camera to the next (re-identification), a payment flagged because it resembles nothing seen
# before. Pre-training without labels often learns an embedding too: CLIP, for one, places an image and its caption
# close together. Two small working demos here: retrieval on Fashion-MNIST, and clustering on both datasets, with
# section 3's networks.
#
# **Retrieval**: a query image and its five nearest training images, on pixels and on the learned embedding of the
# first seed (green title: same class as the query, red: another). Six queries are only an illustration; the kNN
# table of section 3 is the measurement.

# %%
xtr_f, ytr_f, xte_f, yte_f = splits["fashion-mnist"]
ztr_f, zte_f = embedded["fashion-mnist"][SEEDS[0]]
queries = torch.tensor([3, 150, 290, 420, 660, 820]) * len(yte_f) // 1000   # spread over the classes
names = data.CLASS_NAMES["fashion-mnist"]
for title, Q, R in (("raw pixels", data.to_float(xte_f).flatten(1), data.to_float(xtr_f).flatten(1)),
                    ("learned embedding", zte_f, ztr_f)):
    nn = open_set.nearest_neighbours(Q[queries], R, 5)
    open_set.retrieval_grid(xte_f[queries], xtr_f, nn, yte_f[queries], ytr_f, class_names=names,
                            title=f"retrieval on {title}")
show(open_set.nearest_neighbours, "k nearest")   # the distances, then the k smallest

# %% [markdown]
# **Clustering**: k-means with 10 clusters on the test images, scored by the NMI between clusters and classes (as in
# section 4), on the pixels and on section 3's embeddings, which were trained on these ten classes.

# %%
print(f"{'':<16}{'NMI pixels':>12}{f'NMI embedding, {len(SEEDS)} seeds':>28}")
nmi_scores = {}
for dataset in ("mnist", "fashion-mnist"):
    _, _, xte_d, yte_d = splits[dataset]
    nmi_scores[dataset] = (open_set.kmeans_nmi(data.to_float(xte_d).flatten(1), yte_d)[0],
                           metrics.mean_sd([open_set.kmeans_nmi(zte, yte_d)[0]
                                            for _, zte in embedded[dataset].values()]))
    pix, (m, sd) = nmi_scores[dataset]
    print(f"{dataset:<16}{pix:>12.3f}{f'{m:.3f} ± {sd:.3f}':>28}")
    assert metrics.clearly_above(nmi_scores[dataset][1], (pix, 0.0)), dataset  # claim: clustering

# %% [markdown]
# ### Beyond retrieval and clustering: out-of-distribution detection and few-shot classification
#
# An embedding answers two more questions, with no new training. Here we switch back to section 4's networks,
# trained with the NCA loss on the digits 0–4 only (every seed).
#
# **Out-of-distribution (OOD) detection**: is this input like anything seen in training? Score each input by its
# distance to the nearest training embedding; a large distance flags it. Two kinds of strangers: the held-out digits
# 5–9 (near: same pen strokes, new classes) and Fashion-MNIST clothes (far: another kind of image). The score is
# judged by the **AUROC**: the probability that a random stranger scores higher than a random test image of the
# digits 0–4 (1 = perfect separation, 0.5 = chance). The same scores on raw pixels are the baseline, and the
# embedding's row is compared with it by section 3's rule.

# %%
show(open_set.knn_distance_scores, docstring=False)
x_fashion_ood = splits["fashion-mnist"][2]
STRANGERS = {digits(UNSEEN): xu_te, "Fashion-MNIST": x_fashion_ood}

def ood_aurocs(f):
    '''AUROC of the nearest-training-image distance in the space f, for each set of strangers.'''
    reference = f(xs_tr)                                   # the training images of the seen digits
    s_in = open_set.knn_distance_scores(f(xs_te), reference)
    return {name: open_set.auroc(s_in, open_set.knn_distance_scores(f(imgs), reference))
            for name, imgs in STRANGERS.items()}

raw_ood = ood_aurocs(lambda imgs: data.to_float(imgs).flatten(1))
emb_ood_runs = [ood_aurocs(lambda imgs, m=m: models.embed(m, imgs, name="mnist", cache=True))
                for m in emb_seen_all.values()]
emb_ood = {k: metrics.mean_sd([r[k] for r in emb_ood_runs]) for k in STRANGERS}
print(f"AUROC of the nearest-neighbour distance ({len(xs_te)} test {digits(SEEN)} against each set of strangers)\n")
print(f"{'':<38}" + "".join(f"{k:>16}" for k in STRANGERS))
print(f"{'raw pixels':<38}" + "".join(f"{raw_ood[k]:>16.3f}" for k in STRANGERS))
print(f"{f'metric embedding, {len(SEEDS)} seeds':<38}"
      + "".join(f"{f'{emb_ood[k][0]:.3f} ± {emb_ood[k][1]:.3f}':>16}" for k in STRANGERS))
ood_verdict = {k: verdict(emb_ood[k], (raw_ood[k], 0.0), ("embedding ahead", "raw pixels ahead")) for k in STRANGERS}
print("\nembedding against raw pixels:", ood_verdict)
near = digits(UNSEEN)
assert raw_ood["Fashion-MNIST"] > raw_ood[near] + 0.05  # claim: far-strangers-easier
assert raw_ood["Fashion-MNIST"] > 0.95  # claim: clothes-flagged
assert ood_verdict[near] == "embedding ahead"  # claim: near-strangers

# %% [markdown]
# Clothes are easy to flag on raw pixels (AUROC above 0.95, asserted): a shirt is far from every digit. The embedding
# was trained on digits only, and nothing in its loss asks it to keep clothes far away; its row shows how it does,
# seed by seed in the spread, and whether it flags them better than the pixels is the printed verdict (a gap smaller
# than the seed spread ranks nothing). The held-out digits are the hard case, and there the embedding flags
# them better than raw pixels do, by more than its seed spread: it was trained to pull the digits 0–4 into tight
# groups, so a 7 lands away from all of them, while in pixel space a 7 and a 1 share most of their ink.

# %% [markdown]
# **Few-shot classification**: the digits 5–9 were never trained on; now a user labels 1, 5 or 10 images of each and
# asks the system to recognise the rest. With an embedding this needs no training at all: average the labelled
# embeddings of each class and give every other image the class of the nearest mean. Each accuracy is a mean over 20
# random draws of the labelled examples; both spaces get the same 20 draws, so the luck of the draw is shared, and
# what is left to compare is, for the embedding, the spread over its seeds.

# %%
show(open_set.nearest_class_mean, docstring=False)
SHOTS = (1, 5, 10)
few_shot_runs = {"raw pixels": [data.to_float(xu_te).flatten(1)],
                 "metric embedding (NCA, digits 0-4)": [models.embed(m, xu_te, name="mnist", cache=True)
                                                        for m in emb_seen_all.values()]}
few_shot = {space: {k: metrics.mean_sd([open_set.few_shot_accuracy(z, yu_te, k, episodes=20, seed=0)[0] for z in zs])
                    for k in SHOTS}
            for space, zs in few_shot_runs.items()}
chance = 1 / len(UNSEEN)
print(f"nearest-class-mean accuracy on the unseen {digits(UNSEEN)} ({len(yu_te)} test images, chance {chance:.2f}); "
      f"the embedding: mean ± sd over {len(SEEDS)} seeds\n")
print(f"{'':<38}" + "".join(f"{f'{k}-shot':>16}" for k in SHOTS))
for space, v in few_shot.items():
    print(f"{space:<38}" + "".join(f"{f'{m:.3f} ± {sd:.3f}':>16}" for m, sd in v.values()))
emb_fs, raw_fs = few_shot["metric embedding (NCA, digits 0-4)"], few_shot["raw pixels"]
for v in (emb_fs, raw_fs):
    assert v[1][0] < v[5][0] < v[10][0] and v[1][0] > 2 * chance  # claim: few-shot
few_shot_verdict = {k: verdict(emb_fs[k], raw_fs[k], ("embedding ahead", "raw pixels ahead")) for k in SHOTS}
for k in SHOTS:
    print(f"{k:>2}-shot: embedding minus raw pixels {emb_fs[k][0] - raw_fs[k][0]:+.3f}: {few_shot_verdict[k]}")
assert "embedding ahead" not in (few_shot_verdict[5], few_shot_verdict[10])  # claim: few-shot-pixels

# %% [markdown]
# Both spaces recognise the new digits from a handful of examples, at more than twice the chance level from a
# single labelled image per digit, and both improve with every extra labelled example (asserted). With 5 or 10
# labelled images per digit the embedding is not ahead of the raw pixels (asserted); the printed verdicts say, shot
# by shot, whether either space leads by more than the seed spread. This embedding saw only five digits, briefly,
# and MNIST digits are close in raw pixels already, the same caveat as in section 4. The rule itself is the
# one behind prototypical networks (Snell, Swersky and Zemel, 2017): nearest class mean on an embedding trained for
# it, across many classes.
#
# %% [markdown]
# ## Summary
#
# - A **metric** satisfies identity, positivity, symmetry and the triangle inequality. Squared Euclidean and cosine
#   distances break the triangle inequality (the checker finds counterexamples); a Mahalanobis distance with a
#   singular $W$ is a **pseudo-metric** (distinct points at distance 0). <!-- claim: axioms --> For *ranking*
#   neighbours the squared Euclidean distance is exactly as good as the Euclidean one. <!-- claim: squared-ranks -->
# - kNN on raw pixels depends on the distance: the Chebyshev distance, which judges two images by one pixel, is far
#   behind the other four. <!-- claim: chebyshev-far-behind --> A **learned** embedding beats the best fixed
#   distance by more than its seed spread: on MNIST, and on Fashion-MNIST when it trains on every training image
#   (not quick mode's subset). <!-- claim: learned-beats-raw -->
# - **Closed-set**: the test classes were seen in training; **open-set**: they may be new. A softmax classifier is
#   accurate on its own classes and confidently wrong on new ones. <!-- claim: closed-set -->
#   <!-- claim: confidently-wrong --> An embedding trained on other classes retrieves and clusters the new ones far
#   better than the classifier's outputs <!-- claim: open-set-embedding -->, though on MNIST raw pixels retrieve them
#   better still. <!-- claim: pixels-retrieve-new-digits -->
# - Softmax features are **separable**: the class lives in a feature's direction, and its length is noise (over
#   seeds, MAP@R rises when the 2-D softmax features are cut to unit length; it does not for the NCA features, which
#   use distances). <!-- claim: direction-decides -->
# - Retrieval asks for more than separable features: **discriminative** ones, with compact classes and margins
#   between them, which the losses of lectures 05–07 train for. <!-- recap -->
# - **Supervised** metric learning uses labels; **weakly supervised** uses pairs, triplets or quadruplets — and labels
#   can always be turned into tuples. <!-- recap -->
# - Applications: retrieval, clustering, verification, re-identification, self-supervised pre-training. With no new
#   training, section 3's embeddings cluster the test images of their ten classes closer to those classes than raw
#   pixels do. <!-- claim: clustering --> Section 4's embeddings, trained on the digits 0–4, flag the new digits as
#   unlike the training data better than raw pixels do <!-- claim: near-strangers -->, and recognise them from a few
#   labelled examples by nearest class mean, as raw pixels do <!-- claim: few-shot -->; with 5 or 10 examples per
#   digit they are not ahead of the pixels. <!-- claim: few-shot-pixels -->
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
# 4. **Predict, then explain: one pixel decides.** Section 3 said that under the Chebyshev distance many training
#    images tie. How many? Take 200 MNIST test images spread over the classes (`Q`, given) and, for each, the
#    distance of its $K$-th nearest training image under the Chebyshev distance. First guess, without computing
#    anything, how many training images are at that distance or closer, on average over the queries
#    (`my_prediction`; without ties it would be exactly $K$). Then compute it (`my_tied`). The check then tells you
#    what the ties do to the vote.
# 5. **Explore (no check).** Section 4 with `SEEN = [0, 1, 2, 3, 4, 5, 6, 7]` (it retrains section 4's networks for
#    every seed): with eight training digits instead of five, does the embedding catch up with the raw pixels on
#    the two held-out digits? Compare the embedding's P@1 with the raw-pixel row, not with the P@1 printed before:
#    with two held-out digits instead of five, even a random gallery image is the right digit about half of the
#    time instead of a fifth, so P@1 rises whatever the features. (The asserts of section 4 state what the default
#    `SEEN` shows; one that fails with yours tells you which claim your run no longer supports.)

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
xtr_m, ytr_m, xte_m, yte_m = splits["mnist"]
spread_out = torch.linspace(0, len(xte_m) - 1, 200).long()     # the test set is sorted by class: take every k-th
# training and test pixels as their stored values 0-255: every distance is then a whole number, so ties are exact
P, Q = xtr_m.flatten(1).float(), xte_m[spread_out].flatten(1).float()
yP, yQ = ytr_m, yte_m[spread_out]                              # their labels (the check uses them to explain)
my_prediction = None   # your guess, BEFORE computing: mean count of training images at or within the K-th distance
my_tied = None         # mean over the queries Q of: training images at or within their K-th Chebyshev distance
### BEGIN SOLUTION
my_prediction = 50
d = torch.cdist(Q, P, p=float("inf"))                    # (200, N): max_k |q_k - p_k|
kth = d.topk(K, dim=1, largest=False).values[:, -1:]       # each query's K-th smallest distance
my_tied = (d <= kth).sum(1).float().mean().item()
### END SOLUTION

check("01.4", my_prediction, my_tied, knn, Q, P, K, yQ, yP)
