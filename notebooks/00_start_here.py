# %% [markdown]
# # 00 · Start here: deep metric learning, end to end
#
# Welcome to **dmlcourse**, a hands-on course on *deep metric learning*: learning a function $f_\theta$ that maps an
# image $x$ to a vector $f_\theta(x) \in \mathbb{R}^p$, the **embedding**, so that a plain distance between embeddings
# says how similar two images are. Images of the same kind land close together, different kinds far apart — and
# that stays true for kinds the network never saw in training, which is what makes the idea useful for face
# recognition, image search, de-duplication and clustering.
#
# **How the course works.** Each lecture is a notebook. The notebooks call a small helper package, `dmlcourse`, whose
# modules follow the lectures (`losses.py` is lecture 05, `miners.py` lecture 06, ...). Whenever a notebook introduces
# a formula it also shows the few lines of the package that implement it — `show(losses.nca_loss)` prints a whole
# function, `show(miners.batch_semi_hard, "band")` a named part of one — so you can always open the file and read
# the same code. (Where an exercise asks you to write a function, its package version is shown only after the
# exercise, by `show_solution`.) Run the cells top to bottom; change the numbers; break things.
#
# **The three source lectures.** The course is built from three documents, which the notebooks cite by these names:
#
# | name in the notebooks | what it is | its material is taught in |
# |---|---|---|
# | *the fundamentals article* | a short blog post introducing metric spaces, classification against verification, supervised and weakly supervised settings | 01 |
# | *the Guelph slides* | a graduate lecture on deep metric learning (Mahalanobis distance, autoencoders, supervised losses, Siamese networks, mining and sampling), whose equations are numbered: "eq. 11" is always theirs | 02–06 |
# | *the face-recognition slides* | slides that go from open-set recognition and triplet mining to angular margins (SphereFace, CosFace, ArcFace) and probabilistic embeddings (PFE, and the motivation for DUL) | 01, 05–08 |
#
# The notebooks explain everything in their own words and test it. Where a source is wrong or loose, the notebook
# says so, marked ⚠️, and gives the correct statement.
#
# | notebook | lecture |
# |---|---|
# | 00_start_here | this set-up check, the datasets, a first embedding end to end |
# | 01_metric_spaces | metric axioms, why learn a metric, closed- vs open-set |
# | 02_mahalanobis | the generalised Mahalanobis distance, learning it with NCA |
# | 03_autoencoders | reconstruction and denoising autoencoders, linear AE = PCA |
# | 04_supervised_losses | MSE/MAE/Huber/KL/hinge/cross-entropy; the penultimate layer as embedding |
# | 05_siamese_triplet | Siamese networks; contrastive, triplet and NCA losses |
# | 06_mining_sampling | batch-all/hard/semi-hard, easy-positive and distance-weighted mining |
# | 07_angular_margins | SphereFace, CosFace, ArcFace on the hypersphere |
# | 08_uncertainty_pfe | probabilistic embeddings (PFE) and data-uncertainty learning (DUL) |
#
# **Quick mode.** If the environment variable `DMLCOURSE_QUICK=1` is set (the course's CI sets it), every notebook
# shrinks its data and epochs so that it runs in a couple of minutes on a laptop CPU. Without it, notebooks train at
# full strength. On a GPU, notebooks use it automatically and switch to the full datasets.

# %% [markdown]
# ## 1. Set-up check
#
# Every notebook starts with the same cell: imports, the device, the data size, quick mode and a seed.

# %%
# Setup: imports, seed, device, data size, quick mode
import torch
from dmlcourse import data, metrics, models, plots, runtime, train
QUICK = runtime.is_quick()            # DMLCOURSE_QUICK=1 (CI): small and fast
device = runtime.get_device()         # CUDA, then Apple MPS, then CPU
SIZE = data.default_size(device)      # "mini" on CPU or in quick mode, "full" on a GPU
runtime.seed_everything(0)

# %%
import platform, importlib
print(f"python {platform.python_version()}, torch {torch.__version__}, quick mode: {QUICK}, data size: {SIZE}")
for pkg in ["numpy", "sklearn", "matplotlib", "plotly", "ipywidgets", "umap", "tqdm"]:
    try:
        mod = importlib.import_module(pkg)
        print(f"  {pkg:<11} {getattr(mod, '__version__', '?')}")
    except ImportError as exc:
        print(f"  {pkg:<11} MISSING ({exc}) -- run `make lab` again to install it")

print("\nbundled mini data:", data.MINI_DIR)
print("full data folder  :", data.data_dir(), "(set DMLCOURSE_DATA_DIR to change it)")
for name in data.DATASETS:
    have = all((data.data_dir() / name / f).exists() for split in data.SPLITS for f in data.FILES[split])
    print(f"  {name:<14} full files present: {have}" + ("" if have else "  (downloaded on first use of size='full')"))

# %% [markdown]
# ## 2. The datasets
#
# Two datasets of 28×28 grey images in ten classes: **MNIST** (handwritten digits) and **Fashion-MNIST** (Zalando
# product photos: T-shirts, trousers, bags, ...). Fashion-MNIST was designed as a harder drop-in replacement: shirts,
# pullovers and coats are easy to confuse.
#
# `data.load(name, split, size)` returns the images as `uint8` tensors, the labels and the class names.
# `size="mini"` is a class-balanced subset (1,000 training and 200 test images per class) that ships with the course,
# so nothing needs a network; `size="full"` reads (or downloads once, with checksum verification) the official
# 60,000 + 10,000 images.

# %%
mnist = data.load("mnist", "train", "mini")
fashion = data.load("fashion-mnist", "train", "mini")
for name, split in [("mnist", mnist), ("fashion-mnist", fashion)]:
    print(f"{name:<14} images {tuple(split.images.shape)} {split.images.dtype}, labels {tuple(split.labels.shape)}, "
          f"per class {split.labels.bincount().tolist()}")
assert mnist.images.shape[1:] == (28, 28) and mnist.images.dtype == torch.uint8
assert fashion.classes[9] == "Ankle boot"


# %%
def first_of_each_class(split, per_class=3):
    idx = torch.cat([torch.nonzero(split.labels == c).flatten()[:per_class] for c in range(10)])
    return split.images[idx], split.labels[idx]

imgs, labs = first_of_each_class(mnist)
plots.image_grid(imgs, labs, ncols=15, title="MNIST (mini)");
imgs, labs = first_of_each_class(fashion)
plots.image_grid(imgs, labs, class_names=fashion.classes, ncols=15, size=1.2, title="Fashion-MNIST (mini)");

# %% [markdown]
# ## 3. A first embedding, end to end
#
# The whole pipeline of the course in five steps:
#
# 1. **data** — a training split and a test split;
# 2. **network** — a small CNN, `models.SmallCNN`, mapping an image to $p = 32$ numbers;
# 3. **loss** — a metric-learning loss on a mini-batch of embeddings and labels. Here we use
#    NCA (neighbourhood components analysis, taught in lectures 02 and 05): each image $i$ picks a neighbour $j \ne i$
#    in the batch with probability
#    $p_{ij} \propto \exp(-\lVert f(x_i) - f(x_j)\rVert^2)$, and the loss is $-\log$ of the probability that it picks
#    one of its own class;
# 4. **training loop** — `train.train`, with a progress bar, a history, and Kernel ▸ Interrupt keeping what was
#    trained so far. Its batches are *class-balanced* (`samples_per_class=16`: 8 classes × 16 images in a batch of
#    128), so every image has images of its own class in its batch to pick, which NCA needs;
# 5. **evaluation** — retrieval metrics on the *test* images: **Precision@1** (is the nearest other test image of
#    the same class?) and **MAP@R** (mean average precision over the $R$ nearest, where $R$ is the number of
#    other same-class images: it rewards putting *all* of a class close, not just one neighbour).
#
# Training takes under a minute on a laptop CPU, with a progress bar. The notebook saves the trained network, so a
# second Run All (after a kernel restart, say) loads it in a fraction of a second instead; section 4 shows how. Set
# `RETRAIN = True` in the cell below to watch it train again.

# %%
from dmlcourse import cache, losses
from dmlcourse.listing import show
show(losses.nca_loss)

# %%
DATASET = "mnist"   # exercise 4: "fashion-mnist"
train_split = data.load(DATASET, "train", SIZE)
test_split = data.load(DATASET, "test", SIZE)
# every class as often as the rarest one has images (full MNIST's classes hold 5,421 to 6,742)
keep = data.balanced_subset(train_split.labels, runtime.quick(int(train_split.labels.bincount().min()), 400))
x_train, y_train = train_split.images[keep], train_split.labels[keep]
test_keep = data.balanced_subset(test_split.labels, runtime.quick(200, 100))
x_test, y_test = test_split.images[test_keep], test_split.labels[test_keep]
print(f"training on {len(x_train)} images, evaluating on {len(x_test)} test images, device {device}")

RETRAIN = False   # True: train again even where a saved result exists (section 4 explains the saving)
EPOCHS = runtime.quick(5, 3)

# everything that changes the result is in the key of the saved result
config = {"dataset": DATASET, "size": SIZE, "n": len(x_train), "model": "SmallCNN-32", "loss": "nca",
          "epochs": EPOCHS, "batch_size": 128, "samples_per_class": 16, "lr": 2e-3, "seed": 0}

def train_first_embedding():
    runtime.seed_everything(config["seed"])
    net = models.SmallCNN(embedding_dim=32)
    history = train.train(
        net, losses.nca_loss, x_train, y_train,
        epochs=EPOCHS, batch_size=config["batch_size"], samples_per_class=config["samples_per_class"],
        lr=config["lr"], name=DATASET, eval_data=(x_test, y_test), device=device,
    )
    return {"state": net.cpu().state_dict(), "history": history}

first = cache.cached("start-here-cnn", config, train_first_embedding, refresh=RETRAIN)
model = models.SmallCNN(embedding_dim=32)
model.load_state_dict(first["state"])
model = model.to(device).eval()
first["history"].plot();

# %%
z_test = models.embed(model, x_test, name=DATASET)
raw = data.to_float(x_test).flatten(1)             # raw pixels: 784 numbers per image
results = {
    "raw pixels (784-d)": (metrics.precision_at_1(raw, y_test), metrics.map_at_r(raw, y_test)),
    "learned embedding (32-d)": (metrics.precision_at_1(z_test, y_test), metrics.map_at_r(z_test, y_test)),
}
print(f"{'representation':<26}{'Precision@1':>12}{'MAP@R':>8}")
for k, (p1, mapr) in results.items():
    print(f"{k:<26}{p1:>12.3f}{mapr:>8.3f}")
# The lesson of this notebook, checked on MNIST: under a minute of metric learning beats raw pixels. (Exercise 4
# runs this on Fashion-MNIST, which is harder: there you judge the table yourself.)
learned, pixels = results["learned embedding (32-d)"], results["raw pixels (784-d)"]
print(f"learned minus raw pixels: Precision@1 {learned[0] - pixels[0]:+.3f}, MAP@R {learned[1] - pixels[1]:+.3f}")
if DATASET == "mnist":
    assert learned[0] > pixels[0], "the learned embedding should retrieve better than raw pixels"  # claim: p1-gain
    assert learned[1] > pixels[1] + 0.2, "MAP@R should rise by more than 0.2"  # claim: map-r-gain
    assert learned[1] - pixels[1] > learned[0] - pixels[0]  # claim: map-r-gain

# %% [markdown]
# Precision@1 of raw pixels is already decent on MNIST — neighbours in pixel space are often the same digit — but
# MAP@R shows the difference (the line under the table): on MNIST the embedding's gain in MAP@R is larger than its
# gain in Precision@1, because in pixel space a class is scattered, while in the learned space *all* images of a
# class gather.
#
# ### Looking at the embedding
#
# UMAP squeezes the 32-dimensional embeddings into a 2-D picture that keeps each point's neighbours close. The
# scatter below is interactive: hover over (or click) a point to see its image; click a legend entry to hide a
# class. (UMAP's very first call on a machine compiles code and takes some seconds more.)

# %%
xy = plots.project_2d(z_test, method="umap", seed=0, cache=True)   # cache: a re-run loads the layout
explorer = plots.embedding_explorer(xy, y_test, x_test, class_names=test_split.classes,
                                    title="test images, learned embedding (UMAP)")
explorer

# %%
import matplotlib.pyplot as plt
fig, axes = plt.subplots(1, 2, figsize=(9, 4.3))
xy_raw = plots.project_2d(raw, method="umap", seed=0, cache=True)
plots.scatter_2d(xy_raw, y_test, class_names=test_split.classes, ax=axes[0], title="raw pixels (UMAP)")
plots.scatter_2d(xy, y_test, class_names=test_split.classes, ax=axes[1], title="learned embedding (UMAP)")
axes[1].legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
fig.tight_layout()

# %% [markdown]
# ## 4. Load the cached result if present, else train
#
# Later notebooks train models that take minutes at full strength. They store the result on disk with
# `cache.cached(name, config, compute)`: the first run computes and saves it atomically (a temporary file, then a
# rename, so an interrupted save never leaves a broken file); later runs with the same configuration load it at
# once. The cache lives in `data/cache/` of your copy of the course (`~/.cache/dmlcourse/cache` when the package is
# installed without one, `$DMLCOURSE_CACHE_DIR` when that is set; the cell below prints where) and is safe to delete. Section 3 already used
# it for the first embedding (`refresh=RETRAIN` recomputes and overwrites the saved result) and for the UMAP
# layouts (`project_2d(..., cache=True)`). Here it is on its own, with a one-epoch MLP:

# %%
import time

def train_small():
    runtime.seed_everything(1)
    net = models.MLP(embedding_dim=16)
    h = train.train(net, losses.nca_loss, x_train, y_train, epochs=1, batch_size=128, name=DATASET,
                    device=device, progress=False)
    return {"state": net.state_dict(), "history": h}

config = {"dataset": DATASET, "model": "MLP-16", "epochs": 1, "n": len(x_train), "seed": 1}
for attempt in (1, 2):
    t0 = time.perf_counter()
    result = cache.cached("start-here-mlp", config, train_small)
    print(f"attempt {attempt}: {time.perf_counter() - t0:.2f} s")
print("cache file:", cache.cache_path("start-here-mlp", config))

# %% [markdown]
# ## Summary
#
# - A metric-learning pipeline is **data → network → loss on a batch of embeddings → training loop → retrieval
#   metrics**. The same five pieces return in every lecture; only the loss, the sampling of the batch or the head
#   change. <!-- recap -->
# - `dmlcourse` holds the shared pieces: `data` (offline MNIST / Fashion-MNIST, class-balanced batches), `models`,
#   `train`, `metrics`, `plots`, `cache`, and `listing.show` for the package's code. <!-- recap -->
# - On MNIST, a small CNN trained for under a minute retrieves better than raw pixels, and its MAP@R rises by more than 0.2
#   above theirs. <!-- claim: p1-gain --> <!-- claim: map-r-gain -->
# - Precision@1 only asks about the nearest neighbour; MAP@R asks about *all* same-class items and is the stricter
#   measure of an embedding: the embedding's gain shows far more in MAP@R. <!-- claim: map-r-gain -->
#
# ## Exercises
#
# Each exercise asks you to write a few lines in the cell below it; the `check(...)` at the end of the cell says
# ✓ (right), ✗ (and what looks wrong) or ○ (not attempted yet). Stuck? `hint("00.1")` gives a hint, and another
# one each time you call it. `show_solution("00.1")` prints the solution, for when you decide to look.
#
# 1. **Precision@1 by hand.** Write `my_precision_at_1(embeddings, labels)` with `torch.cdist`, without
#    `dmlcourse.metrics`.
# 2. **R-precision by hand.** MAP@R is built on R-precision: for a query of a class with $R$ other members, the
#    fraction of its $R$ nearest neighbours that share its class. Write `my_r_precision(embeddings, labels)`.
# 3. **Predict, then explain.** Before you look at section 3's table again, guess the Precision@1 and MAP@R of
#    *raw pixels* on this test set. Then explain the gap between the two with one number: for each test image,
#    rank the other test images by their raw-pixel distance to it and count the images of **other** classes among
#    its $R$ nearest ($R$: the other images of its class); `my_intruders` is the mean of that count over the test
#    images.
# 4. **Explore (no check).** Set `DATASET = "fashion-mnist"` in section 3 and run its cells again: the first run
#    trains and saves a Fashion-MNIST network (the MNIST one stays saved under its own key). Does the learned
#    embedding still beat raw pixels, in Precision@1 and in MAP@R? Which classes mix in the UMAP plot? Hover over
#    them.

# %%
from dmlcourse.exercises import check, hint, show_solution

# %% exercise="00.1"
def my_precision_at_1(embeddings, labels):
    """Return the fraction (a float) of points whose nearest OTHER point has the same label."""
    ### BEGIN SOLUTION
    d = torch.cdist(embeddings, embeddings)
    d.fill_diagonal_(float("inf"))  # a point is not its own neighbour
    return (labels[d.argmin(1)] == labels).float().mean().item()
    ### END SOLUTION


check("00.1", my_precision_at_1)

# %% exercise="00.2"
def my_r_precision(embeddings, labels):
    """Return the mean over queries of: (same-class points among the R nearest others) / R."""
    ### BEGIN SOLUTION
    d = torch.cdist(embeddings, embeddings)
    d.fill_diagonal_(float("inf"))
    order = d.argsort(1)
    scores = []
    for i in range(len(labels)):
        r = int((labels == labels[i]).sum()) - 1
        if r > 0:
            scores.append((labels[order[i, :r]] == labels[i]).float().mean())
    return torch.stack(scores).mean().item()
    ### END SOLUTION


check("00.2", my_r_precision)

# %% exercise="00.3"
my_prediction = None  # your guess for raw pixels, e.g. {"p1": 0.5, "map_r": 0.5}
my_intruders = None  # mean number of other-class images among a query's R nearest (raw pixels)
### BEGIN SOLUTION
my_prediction = {"p1": 0.9, "map_r": 0.4}
d = torch.cdist(raw, raw)
d.fill_diagonal_(float("inf"))                          # the query itself: ranked last, then dropped
order = d.argsort(1)[:, :-1]
other_ranked = y_test[order] != y_test[:, None]         # row i: True where the k-th nearest is of another class
r = (~other_ranked).sum(1)                              # R: the other images of the query's class
first_r = torch.arange(order.shape[1]) < r[:, None]     # the first R positions of each row
my_intruders = (other_ranked & first_r).sum(1).float().mean().item()
### END SOLUTION

check("00.3", my_prediction, my_intruders, results, raw, y_test)
