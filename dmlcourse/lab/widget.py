"""The Embedding Lab widget: change the loss, miner and margin, train, and watch the embedding move.

Taught in 05_siamese_triplet (losses), 06_mining_sampling (miners) and 07_angular_margins (heads).

``EmbeddingLab(...)`` is an ipywidgets box. Pick a configuration with the controls and press
**Train**: a network is trained (:func:`dmlcourse.lab.runner.run_lab`) and, after every epoch,
a fixed class-balanced *probe set* of test images is embedded and laid out in 2-D
(:mod:`dmlcourse.lab.layouts`). The epoch slider (and its play button) moves the points from
one epoch's layout to the next. Beside the picture: the loss curve, Precision@1 and MAP@R of
the probe set per epoch and the fraction of active triplets (pairs) per epoch.

"Keep this run" pins a result; kept runs are shown side by side with a metrics table. A
finished run is stored in the package's cache and the same configuration is shown from there
at once.
"""

from __future__ import annotations

import html
import threading
import time
from dataclasses import replace

import numpy as np
import torch

from .. import site
from ..core.paths import DATASETS, SIZES, default_size
from ..core.validate import check_choice, check_float, check_int
from ..data import CLASS_NAMES
from ..plots import PALETTE, image_to_data_uri
from ..runtime import get_device
from . import runner
from . import seeds as seedlib
from .config import (
    EMBEDDING_DIMS,
    LOSSES,
    MARGINS,
    MINERS,
    NETWORKS,
    LabConfig,
    uses_margin,
    uses_miner,
)
from .layouts import interpolate, warm_up_umap
from .runner import LabRun, lab_cache_dir

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: IPython, ipywidgets, plotly.


P1_COLOR, P1_FILL = "#636efa", "rgba(99,110,250,0.2)"
MAP_COLOR, MAP_FILL = "#ef553b", "rgba(239,85,59,0.2)"


def _wrap(label: str, per_line: int = 4) -> str:
    """A run's label on lines of ``per_line`` parts, so that it fits a 420-px kept panel."""
    parts = label.split(" · ")
    return "<br>".join(" · ".join(parts[i : i + per_line]) for i in range(0, len(parts), per_line))


def _fmt(v, digits=3) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


class EmbeddingLab:
    """The Embedding Lab widget (display it, or ``display(lab.widget)``).

    Parameters
    ----------
    losses, miners : the choices offered (default: all of them); the first is preselected.
    dataset, size, margin, embedding_dim, epochs, lr, seed, network : initial control values
        (size and network default to "mini"/"mlp" on a CPU and "full"/"cnn" on a GPU).
    train_per_class : None (default) trains on every image of the size; an int takes a
        class-balanced subset.
    probe_per_class : probe images per class (100: 1,000 points).
    layout : how the epochs' 2-D pictures are aligned: "chain" (default; each epoch's UMAP starts
        from the previous layout), "procrustes" (independent UMAPs, rotated onto each other) or
        "pca" (instant).
    background : train in a background thread (default) so the notebook stays responsive; False
        trains inside ``train_button.click()`` (headless tests, quick-mode notebooks).
    warm_up : compile UMAP's numba code (and pay torch's first-optimizer import) in background
        threads when the lab opens.
    seeds : how many seeds a configuration is trained with (1-5): ``seed, seed + 1, …``; each seed
        is cached on its own; ``shown_seed`` picks the one animated.

    While a run trains on the CPU, torch in this Python process uses one thread (a small network on
    a shared CPU trains faster that way); the previous thread count is restored when the run ends.

    Attributes for scripts and tests: the controls (``dataset``, ``size``, ``loss``, ``miner``,
    ``margin``, ``embedding_dim``, ``epochs``, ``lr``, ``seed``, ``network``), ``train_button``,
    ``stop_button``, ``keep_button``, ``progress``, ``status``, ``figure`` (the scatter),
    ``curves``, ``epoch`` (slider), ``play``, ``run`` (the run shown), ``kept`` (pinned runs),
    ``table`` (their metrics), ``wait()``; for seeds: ``seeds`` (slider), ``shown_seed``
    (dropdown), ``notes`` (seeds left out of the mean), ``group`` (the
    :class:`~dmlcourse.lab.seeds.SeedGroup` shown), ``kept_groups``, ``comparisons()``,
    ``timings`` (seconds after the click); for the static website: ``static_figure()`` and
    ``static_html()`` (shown instead of the widget when ``dmlcourse.site.is_enabled()``).
    """

    def __init__(
        self,
        losses=None,
        miners=None,
        *,
        dataset: str = "mnist",
        size: str | None = None,
        margin: float | None = None,
        embedding_dim: int = 32,
        epochs: int = 5,
        lr: float = 2e-3,
        seed: int = 0,
        seeds: int = 1,
        network: str | None = None,
        train_per_class: int | None = None,
        probe_per_class: int = 100,
        layout: str = "chain",
        background: bool = True,
        warm_up: bool = True,
        device=None,
    ):
        import ipywidgets as W

        losses = list(LOSSES if losses is None else losses)
        miner_names = list(MINERS if miners is None else miners)
        if not losses:
            raise ValueError(f"losses is empty; give at least one of {list(LOSSES)}.")
        for name in losses:
            check_choice("losses[i]", name, LOSSES)
        for name in miner_names:
            check_choice("miners[i]", name, MINERS)
        if "triplet" in losses and not miner_names:
            raise ValueError(
                "miners is empty but losses contains 'triplet'; give at least one miner."
            )
        # the ranges of the controls (a dropdown, sliders) on top of what a run accepts
        check_choice("embedding_dim", embedding_dim, EMBEDDING_DIMS)
        check_int("epochs", epochs, min_value=1, max_value=30)
        check_float("lr", lr, min_value=1e-5, max_value=100.0)
        check_int("probe_per_class", probe_per_class, min_value=1, max_value=1000)
        check_int("seeds", seeds, min_value=1, max_value=seedlib.MAX_SEEDS)
        self.device = torch.device(device) if device is not None else get_device(verbose=False)
        gpu = self.device.type != "cpu"
        size = size or default_size(self.device, download=False)
        network = network or ("cnn" if gpu else "mlp")
        # everything else is checked by LabConfig, the one place a run's settings are validated
        # (the margin is not checked here: its slider clamps it to the range of the loss shown)
        preselected = (
            "batch_semi_hard" if "batch_semi_hard" in miner_names else (miner_names or [None])[0]
        )
        # a keyword list (one a line, as ruff formats long calls): alike in shape, not in logic
        first = LabConfig(
            dataset=dataset,
            size=size,
            loss=losses[0],
            miner=preselected,
            embedding_dim=embedding_dim,
            epochs=epochs,
            lr=lr,
            seed=seed,
            network=network,
            train_per_class=train_per_class,
            probe_per_class=probe_per_class,
            layout=layout,
        ).normalized()
        self._fixed = dict(
            train_per_class=first.train_per_class,
            probe_per_class=first.probe_per_class,
            layout=first.layout,
        )
        self.background = bool(background)
        self.run: LabRun | None = None
        self.group: seedlib.SeedGroup | None = None  # the seeds of the configuration shown
        self.kept: list[LabRun] = []
        self.kept_groups: list[seedlib.SeedGroup] = []  # kept[i] is a seed of kept_groups[i]
        self.timings: dict = {}  # seconds after the Train click (what bench_lab.py reports)
        self._t_click = time.perf_counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running_config: LabConfig | None = None
        self.runs_started = 0

        style = dict(description_width="initial")
        self.dataset = W.Dropdown(
            options=list(DATASETS), value=dataset, description="dataset", style=style
        )
        self.size = W.Dropdown(options=list(SIZES), value=size, description="size", style=style)
        self.network = W.Dropdown(
            options=list(NETWORKS), value=network, description="network", style=style
        )
        self.loss = W.Dropdown(options=losses, value=losses[0], description="loss", style=style)
        self.miner = W.Dropdown(
            options=miner_names or ["batch_semi_hard"],
            value=preselected or "batch_semi_hard",
            description="miner",
            style=style,
        )
        # the controls: keyword lists, alike in shape to one another, not in logic
        self.margin = W.FloatSlider(
            value=0.2,
            min=0.0,
            max=1.0,
            step=0.01,
            description="margin",
            continuous_update=False,
            style=style,
        )
        self.embedding_dim = W.Dropdown(
            options=list(EMBEDDING_DIMS),
            value=embedding_dim,
            description="embedding size",
            style=style,
        )
        self.epochs = W.IntSlider(
            value=epochs, min=1, max=30, description="epochs", continuous_update=False, style=style
        )
        self.lr = W.FloatLogSlider(
            value=lr,
            base=10,
            min=-5,
            max=2,
            step=0.1,
            description="learning rate",
            readout_format=".1e",
            continuous_update=False,
            style=style,
        )
        self.seed = W.BoundedIntText(
            value=seed,
            min=0,
            max=2**31 - 1,
            description="seed",
            style=style,
            layout=W.Layout(width="150px"),
        )
        self.seeds = W.IntSlider(
            value=seeds,
            min=1,
            max=seedlib.MAX_SEEDS,
            description="seeds",
            continuous_update=False,
            style=style,
            layout=W.Layout(width="220px"),
        )
        self.shown_seed = W.Dropdown(
            options=seedlib.seed_list(seed, seeds),
            value=seed,
            description="animate seed",
            style=style,
            layout=W.Layout(width="170px"),
        )
        self.notes = W.HTML("")
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True)
        self.keep_button = W.Button(description="Keep this run", icon="thumb-tack", disabled=True)
        self.clear_button = W.Button(description="Clear kept runs", disabled=True)
        self.progress = W.IntProgress(
            value=0, min=0, max=1, description="", layout=W.Layout(width="260px")
        )
        self.status = W.HTML("Choose a configuration and press <b>Train</b>.")
        self.where = W.HTML(
            f"<small>Runs are cached in <code>{html.escape(str(lab_cache_dir()))}</code> "
            "(safe to delete).</small>"
        )

        self.figure = self._scatter_figure(height=460)
        self.preview = W.HTML("<i>hover over a point</i>", layout=W.Layout(width="130px"))
        self.epoch = W.FloatSlider(
            value=0,
            min=0,
            max=1,
            step=0.1,
            description="epoch",
            readout_format=".1f",
            layout=W.Layout(width="420px"),
        )
        self.play = W.Play(value=0, min=0, max=10, step=1, interval=80, description="play")
        self.curves = self._curves_figure()
        self.kept_box = W.HBox([], layout=W.Layout(flex_flow="row wrap"))
        self.table = W.HTML("")

        self._controls = [
            self.dataset,
            self.size,
            self.network,
            self.loss,
            self.miner,
            self.margin,
            self.embedding_dim,
            self.epochs,
            self.lr,
            self.seed,
            self.seeds,
        ]
        self.loss.observe(self._on_loss, names="value")
        self.miner.observe(self._sync_enabled, names="value")
        for w in self._controls:
            w.observe(self._on_control, names="value")
        self.train_button.on_click(lambda _b: self.train())
        self.stop_button.on_click(lambda _b: self.stop())
        self.keep_button.on_click(lambda _b: self.keep())
        self.clear_button.on_click(lambda _b: self.clear_kept())
        self.epoch.observe(lambda ch: self.show_epoch(ch["new"]), names="value")
        self.play.observe(self._on_play, names="value")
        self.seed.observe(self._sync_seed_options, names="value")
        self.seeds.observe(self._sync_seed_options, names="value")
        self.shown_seed.observe(self._on_shown_seed, names="value")
        self._on_loss({"new": self.loss.value})
        if margin is not None:
            self.margin.value = margin

        row = lambda ws: W.HBox(ws, layout=W.Layout(flex_flow="row wrap"))  # noqa: E731
        self.widget = W.VBox(
            [
                W.HTML("<h3 style='margin:0'>Embedding Lab</h3>"),
                row([self.dataset, self.size, self.network, self.loss, self.miner]),
                row([self.margin, self.embedding_dim, self.epochs, self.lr]),
                row([self.seed, self.seeds, self.shown_seed]),
                row(
                    [
                        self.train_button,
                        self.stop_button,
                        self.progress,
                        self.keep_button,
                        self.clear_button,
                    ]
                ),
                self.status,
                self.notes,
                self.where,
                W.HBox([self.figure, self.preview]),
                W.HBox([self.play, self.epoch]),
                self.curves,
                W.HTML(
                    "<b>Kept runs</b> (same probe set; press <i>Keep this run</i> to add the run "
                    "shown)"
                ),
                self.kept_box,
                self.table,
            ]
        )
        if warm_up:  # numba's UMAP compile and torch's first optimizer, before Train is pressed
            warm_up_umap(background=True)
            runner.warm_up_training(background=True)

    # ---- display
    def _ipython_display_(self):
        from IPython.display import display

        if site.is_enabled():  # the static website: an animation of the run, not dead controls
            display(self._static_bundle(), raw=True)
        else:
            display(self.widget)

    def _repr_mimebundle_(self, **kwargs):
        if site.is_enabled():
            return self._static_bundle()
        return self.widget._repr_mimebundle_(**kwargs)

    # ---- controls
    def config(self) -> LabConfig:
        """The configuration the controls describe now."""
        return LabConfig(
            dataset=self.dataset.value,
            size=self.size.value,
            loss=self.loss.value,
            miner=self.miner.value,
            margin=float(self.margin.value),
            embedding_dim=int(self.embedding_dim.value),
            epochs=int(self.epochs.value),
            lr=float(self.lr.value),
            seed=int(self.seed.value),
            network=self.network.value,
            **self._fixed,
        ).normalized()

    def _on_loss(self, change):
        loss = change["new"]
        if loss in MARGINS:
            lo, hi, step, default = MARGINS[loss]
            m = self.margin
            # widen first (no intermediate state is invalid), then set the range, then the value
            m.min, m.max = min(m.min, lo), max(m.max, hi)
            m.value = default
            m.min, m.max, m.step = lo, hi, step
            m.value = default
        self._sync_enabled()

    def _sync_enabled(self, _change=None):
        loss = self.loss.value
        self.miner.disabled = not uses_miner(loss)
        self.margin.disabled = not uses_margin(loss, self.miner.value)

    def _on_control(self, _change):
        running = self._running_config  # read once: the training thread may reset it meanwhile
        if self._lock.locked() and running is not None and self.config() != running:
            self._set_status(
                "Training <b>" + html.escape(running.label()) + "</b>; the changed "
                "settings apply to the next run.",
                "info",
            )

    def seed_list(self) -> list:
        """The seeds the controls describe: ``seed, seed + 1, …`` (``seeds`` of them)."""
        return seedlib.seed_list(int(self.seed.value), int(self.seeds.value))

    def _sync_seed_options(self, _change=None):
        """The 'animate seed' choices follow the seed and seeds controls (and the group shown)."""
        options = sorted(set(self.seed_list()) | set(self.group.seeds if self.group else ()))
        if list(self.shown_seed.options) != options:
            keep = self.shown_seed.value
            self._syncing = True
            try:
                self.shown_seed.options = options
                self.shown_seed.value = keep if keep in options else options[0]
            finally:
                self._syncing = False

    def _on_shown_seed(self, change):
        """Animate another seed of the group shown (its run, if it has been trained)."""
        if getattr(self, "_syncing", False) or self.group is None:
            return
        seed = change["new"]
        run = dict(self.group.runs).get(seed)
        if run is not None:
            self._show(run, follow=False)
            note = seedlib.failure_note(seed, run)
            if note:  # a seed left out of the mean says why, where it is drawn
                why = run.message[:1].upper() + run.message[1:]
                self._set_status(
                    f"<b>{html.escape(LabConfig(**run.config).label())}</b>, left out of the "
                    f"mean: {html.escape(why)}",
                    "error" if run.failed else "warn",
                )
            elif getattr(self, "_group_status", None):  # back to a finished seed: its report
                self.status.value = self._group_status
        elif seed in self.group.seeds:
            self._set_status(f"Seed {seed} is not trained yet; it is shown when it is.", "info")
        else:
            self._set_status(
                f"Seed {seed} is not in the run shown: press <b>Train</b> to train (or load) it.",
                "info",
            )

    def _set_status(self, text: str, kind: str = "info"):
        color = {"info": "#333", "ok": "#1a7f37", "warn": "#9a6700", "error": "#cf222e"}[kind]
        self.status.value = f"<span style='color:{color}'>{text}</span>"

    # ---- training
    def train(self):
        """What the Train button does; a second press while a run trains is ignored, with a note."""
        if not self._lock.acquire(blocking=False):
            running = self._running_config  # read once: the training thread may reset it meanwhile
            what = html.escape(running.label()) if running is not None else "a run"
            self._set_status(
                "Already training " + what + ": press <b>Stop</b> first, or wait.", "warn"
            )
            return None
        try:
            cfg = self.config()
            seeds = self.seed_list()
        except (TypeError, ValueError) as exc:
            self._lock.release()
            self._set_status(f"Cannot train this configuration: {html.escape(str(exc))}", "error")
            return None
        self._t_click = time.perf_counter()
        self._cpu_click = time.process_time()  # CPU seconds: what a busy machine does not inflate
        self._sync_seed_options()
        shown = self.shown_seed.value if self.shown_seed.value in seeds else seeds[0]
        cfg = replace(cfg, seed=shown)  # the seed animated is trained first
        self._running_config = cfg
        self._stop.clear()
        self.runs_started += 1
        self.train_button.disabled = True
        self.stop_button.disabled = False
        self.progress.value, self.progress.bar_style = 0, ""
        if self.background:
            self._thread = threading.Thread(
                target=self._job, args=(cfg, seeds), daemon=True, name="dmlcourse-lab"
            )
            self._thread.start()
            return self._thread
        self._job(cfg, seeds)
        return None

    def stop(self):
        """What the Stop button does: training ends after the current step, keeping what it did."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background run to finish; True if none is running any more."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return not self._lock.locked()

    @property
    def training(self) -> bool:
        return self._lock.locked()

    def _job(self, cfg: LabConfig, seeds: list):
        """Train ``cfg`` once per seed: ``cfg.seed`` (the one animated) first, then the others.

        The group (:class:`seeds.SeedGroup`) is made here, for this click only: the controls may
        change meanwhile, and every seed of it is ``cfg`` with another seed (the group refuses a
        run of another configuration), so two configurations are never mixed.
        """
        t0 = self._t_click
        shown = cfg.seed
        order = [shown] + [s for s in seeds if s != shown]
        group = seedlib.SeedGroup(cfg, seeds)
        self.timings = {"first_epoch": None, "seeds": {}, "done": None}
        try:
            self.group = group
            self.notes.value = ""
            n = len(seeds)
            what = f" ({n} seeds: {', '.join(map(str, seeds))})" if n > 1 else ""
            self._set_status(f"Training <b>{html.escape(cfg.label())}</b>{what} …", "info")
            first = {"shown": False}

            def on_step(seed, step, total):
                if step == 1 or step % 5 == 0 or step == total:
                    done = len(group.runs)
                    self.progress.max = max(total, 1) * n
                    self.progress.value = min(done * total + step, total * n)

            def on_epoch(seed, partial):
                if seed != shown:  # only the seed animated is drawn epoch by epoch
                    return
                self._show(partial, follow=True, rebuild=not first["shown"])
                first["shown"] = True
                if partial.epochs_done >= 1 and self.timings["first_epoch"] is None:
                    self.timings["first_epoch"] = time.perf_counter() - t0
                    self.timings["first_epoch_cpu"] = time.process_time() - self._cpu_click

            def on_seed(seed, run, grp):
                if seed == shown:
                    self._show(run)
                    if self.timings["first_epoch"] is None:  # from the cache: no epoch callbacks
                        self.timings["first_epoch"] = time.perf_counter() - t0
                else:
                    self._update_curves(self.run, grp)
                self.timings["seeds"][seed] = time.perf_counter() - t0
                if n > 1:
                    finished = len(grp.finished())
                    diverged = len(grp.runs) - finished
                    progress = f"{finished} of {n} seeds finished" + (
                        f", {diverged} left out (see below)" if diverged else ""
                    )
                    band = "; the band covers the seeds finished so far" if finished else ""
                    self._set_status(
                        f"Training <b>{html.escape(cfg.label())}</b>: {progress}{band} …", "info"
                    )
                    self._show_notes(grp)
                if any(g is grp for g in self.kept_groups):
                    self.table.value = self.metrics_table()

            seedlib.run_seeds(
                cfg,
                order,
                device=self.device,
                should_stop=self._stop.is_set,
                on_step=on_step,
                on_epoch=on_epoch,
                on_seed=on_seed,
                group=group,
            )
            self.timings["done"] = time.perf_counter() - t0
            self.timings["done_cpu"] = time.process_time() - self._cpu_click
            run = group.runs[shown]
            # the seed animated; the group's line (several seeds) follows
            self._report(cfg, run, self.timings["seeds"].get(shown, self.timings["done"]))
            if n > 1:
                self._report_group(group)
            self._group_status = self.status.value  # shown again when a finished seed is drawn
        except Exception as exc:  # the widget must stay usable: report, never raise into the loop
            self._set_status(
                f"<b>{html.escape(cfg.label())}</b> failed: {html.escape(type(exc).__name__)}: "
                f"{html.escape(str(exc))}",
                "error",
            )
            self.progress.bar_style = "danger"
        finally:
            self.train_button.disabled = False
            self.stop_button.disabled = True
            self._running_config = None
            self._lock.release()

    def _show_notes(self, group: seedlib.SeedGroup):
        notes = group.notes()
        self.notes.value = (
            "<span style='color:#9a6700'>⚠ "
            + "<br>⚠ ".join(html.escape(t) for t in notes)
            + "</span>"
            if notes
            else ""
        )

    def _report_group(self, group: seedlib.SeedGroup):
        """After a multi-seed run: the mean ± sd over the finished seeds, and who is left out."""
        done = group.finished()
        parts = []
        for metric in seedlib.METRICS:
            st = group.stats(metric)
            parts.append(f"{seedlib.METRIC_NAMES[metric]} {_fmt(st['mean'])} ± {_fmt(st['sd'])}")
        if len(done) > 1:
            summary = f"{', '.join(parts)} (mean ± sd over seeds {', '.join(map(str, done))})"
        elif done:
            summary = f"{', '.join(parts)} (seed {done[0]} alone: one seed has no sd)"
        else:
            summary = "no seed finished, so there is no mean"
        runs = dict(group.runs)
        cached = sum(r.from_cache for r in runs.values())
        took = (
            f"{len(runs)} seeds in {self.timings.get('done', 0.0):.1f} s ({cached} from the cache)"
        )
        left_out = len(group.seeds) - len(done)
        if left_out:  # said where the eye is, not only in the notes below
            took += f"; {left_out} of {len(group.seeds)} seeds left out of the mean (see below)"
            # amber when some seeds make a mean, red when none does
            self.progress.value = self.progress.max
            self.progress.bar_style = "warning" if done else "danger"
        style = (" style='color:#9a6700'" if done else " style='color:#cf222e'") if left_out else ""
        self.status.value += (
            f"<br><span{style}>Over the seeds: {html.escape(summary)}; {took}.</span>"
        )
        self._show_notes(group)
        self._update_curves(self.run, group)

    def _report(self, cfg: LabConfig, run: LabRun, seconds: float):
        """The status line and the progress bar's colour for a finished (or stopped) run."""
        label = html.escape(cfg.label())
        if run.from_cache:
            self._set_status(f"<b>{label}</b>: loaded from the cache in {seconds:.2f} s.", "ok")
            self.progress.max, self.progress.value = 1, 1
        elif run.interrupted:
            bad = run.failed
            self._set_status(
                f"<b>{label}</b>: {html.escape(run.message)}", "error" if bad else "warn"
            )
            self.progress.bar_style = "danger" if bad else "warning"
        else:
            s = run.seconds
            self._set_status(
                f"<b>{label}</b>: trained in {seconds:.1f} s (training {s.get('train', 0):.1f} s, "
                f"UMAP layouts {s.get('layout', 0):.1f} s); saved in the cache.",
                "ok",
            )
            self.progress.bar_style = "success"

    # ---- figures
    def _scatter_figure(self, height=460, width=None, title="", showlegend=True, run_of=None):
        """An empty scatter, a trace per class; hovering shows the image of ``run_of()``'s point."""
        import plotly.graph_objects as go

        run_of = run_of or (lambda: self.run)

        def hover(trace, points, _state=None):
            if points.point_inds and run_of() is not None:
                self.show_probe(int(trace.customdata[points.point_inds[0]]), run_of())

        fig = go.FigureWidget()
        for c in range(10):
            fig.add_trace(
                go.Scattergl(
                    x=[],
                    y=[],
                    mode="markers",
                    name=str(c),
                    customdata=[],
                    marker=dict(size=5, color=PALETTE[c], opacity=0.8),
                    hovertemplate="%{text}<extra></extra>",
                    text=[],
                )
            )
            fig.data[-1].on_hover(hover)
            fig.data[-1].on_click(hover)
        fig.update_layout(
            height=height,
            width=width,
            title=title,
            showlegend=showlegend,
            margin=dict(l=10, r=10, t=40, b=10),
            legend=dict(itemsizing="constant"),
            xaxis=dict(showticklabels=False, zeroline=False),
            yaxis=dict(showticklabels=False, zeroline=False, scaleanchor="x"),
        )
        return fig

    def _curves_figure(self):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = go.FigureWidget(
            make_subplots(
                rows=1,
                cols=3,
                subplot_titles=(
                    "training loss per step",
                    "probe-set retrieval per epoch",
                    "active triplets / pairs",
                ),
            )
        )
        fig.add_trace(
            go.Scatter(x=[], y=[], mode="lines", name="loss", line=dict(width=1, color="#999")),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(x=[], y=[], mode="lines", name="loss (mean of 10)", line=dict(color="#000")),
            1,
            1,
        )
        for name, color in (("Precision@1", P1_COLOR), ("MAP@R", MAP_COLOR)):
            fig.add_trace(
                go.Scatter(x=[], y=[], mode="lines+markers", name=name, line=dict(color=color)),
                1,
                2,
            )
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="active fraction"), 1, 3)
        # traces 5-8: the min-max band over the finished seeds (low, then high filled down to it)
        for name, color, fill in (
            ("Precision@1", P1_COLOR, P1_FILL),
            ("MAP@R", MAP_COLOR, MAP_FILL),
        ):
            for side in ("min", "max"):
                fig.add_trace(
                    go.Scatter(
                        x=[],
                        y=[],
                        mode="lines",
                        name=f"{name} {side} over seeds",
                        line=dict(width=0, color=color),
                        fill="tonexty" if side == "max" else None,
                        fillcolor=fill,
                        showlegend=False,
                        hoverinfo="skip",
                    ),
                    1,
                    2,
                )
        fig.update_layout(
            height=280,
            width=1120,  # the box's width: plotly's default 700 px cut the third subplot's title
            margin=dict(l=10, r=10, t=40, b=10),
            legend=dict(orientation="h", y=-0.25),
        )
        fig.update_xaxes(title_text="step", row=1, col=1)
        fig.update_xaxes(title_text="epoch", row=1, col=2)
        fig.update_xaxes(title_text="epoch", row=1, col=3)
        fig.update_yaxes(range=[0, 1.02], row=1, col=2)
        fig.update_yaxes(range=[0, 1.02], row=1, col=3)
        return fig

    def _class_names(self, run):
        return CLASS_NAMES[run.config["dataset"]]

    def _fill(self, fig, run, xy, title):
        labels = run.probe_labels.numpy()
        names = self._class_names(run)
        with fig.batch_update():
            for c, trace in enumerate(fig.data):
                idx = np.flatnonzero(labels == c)
                trace.x, trace.y = xy[idx, 0], xy[idx, 1]
                trace.customdata = idx
                trace.name = f"{c}: {names[c]}"
                trace.text = [f"{names[c]} · probe {i}" for i in idx]
            fig.layout.title = title
            # chained/Procrustes layouts share one frame: fixed axes over all epochs keep the motion
            # readable; PCA re-fits every epoch, so its axes follow the epoch shown (else the
            # trained embedding ends as a small blob in the middle)
            pts = np.asarray(xy) if run.config.get("layout") == "pca" else run.layouts
            lo, hi = pts.reshape(-1, 2).min(0), pts.reshape(-1, 2).max(0)
            pad = 0.05 * (hi - lo + 1e-6)
            fig.layout.xaxis.range = [float(lo[0] - pad[0]), float(hi[0] + pad[0])]
            fig.layout.yaxis.range = [float(lo[1] - pad[1]), float(hi[1] + pad[1])]

    def _show(self, run: LabRun, *, follow: bool = False, rebuild: bool = True):
        """Show a (possibly partial) run: scatter, slider range, curves."""
        self.run = run
        n = run.epochs_done
        self.epoch.max = max(n, 0.1 if n == 0 else n)
        self.play.max = max(10 * n, 1)
        target = float(n) if (follow or rebuild) else min(self.epoch.value, n)
        if self.epoch.value != target:
            self.epoch.value = target  # triggers show_epoch
        else:
            self.show_epoch(target)
        self._update_curves(run, self.group)
        self.keep_button.disabled = False

    def show_epoch(self, t: float):
        """Draw every figure at (fractional) epoch ``t``: what the slider and the play button do."""
        if self.run is None:
            return
        t = float(t)
        run = self.run
        m = run.probe_metrics[min(int(round(t)), run.epochs_done)]
        self._fill(
            self.figure,
            run,
            interpolate(run.layouts, t),
            f"epoch {t:.1f} of {run.config.get('epochs', run.epochs_done)} · "
            f"P@1 {_fmt(m.get('precision_at_1'))} · MAP@R {_fmt(m.get('map_at_r'))}",
        )
        for fig, kept in zip(self.kept_box.children, self.kept):
            tk = min(t, kept.epochs_done)
            fig_title = f"{_wrap(LabConfig(**kept.config).label())}<br>epoch {tk:.1f}"
            self._fill(fig, kept, interpolate(kept.layouts, tk), fig_title)

    def _on_play(self, change):
        self.epoch.value = min(change["new"] / 10, self.epoch.max)

    def _update_curves(self, run: LabRun, group: seedlib.SeedGroup | None = None):
        """Loss and active fraction of ``run`` (the seed animated); Precision@1 and MAP@R: the
        mean over ``group``'s finished seeds with their min-max band (``run``'s own values while
        no seed has finished)."""
        if run is None:
            return
        loss = np.asarray(run.step_loss, dtype=float)
        steps = np.arange(1, len(loss) + 1)
        smooth = np.convolve(loss, np.ones(10) / 10, mode="valid") if len(loss) >= 10 else loss
        act = run.active_fraction()
        done = group.finished() if group is not None else []
        with self.curves.batch_update():
            d = self.curves.data
            d[0].x, d[0].y = steps, loss
            d[1].x, d[1].y = steps[len(steps) - len(smooth) :], smooth
            d[4].x, d[4].y = list(range(1, len(act) + 1)), act
            for i, metric in enumerate(seedlib.METRICS):
                name = seedlib.METRIC_NAMES[metric].replace("P@1", "Precision@1")
                band = group.band(metric) if done else None
                low, high = d[5 + 2 * i], d[6 + 2 * i]
                if band is None:
                    values = run.metric(metric)
                    d[2 + i].x, d[2 + i].y = list(range(len(values))), values
                    d[2 + i].name = name
                    low.x, low.y, high.x, high.y = [], [], [], []
                    continue
                ep, mean, lo, hi, _sd = band
                d[2 + i].x, d[2 + i].y = ep, mean
                d[2 + i].name = (
                    f"{name} (mean of {len(done)} seed{'s' if len(done) != 1 else ''})"
                    if len(group.seeds) > 1
                    else name
                )
                low.x, low.y, high.x, high.y = ep, lo, ep, hi

    def show_probe(self, i: int, run: LabRun | None = None):
        """Show probe image ``i`` of ``run`` (default: the run shown) beside the scatter (what
        hovering over or clicking a point does)."""
        run = run or self.run
        te = runner.load_split(run.config["dataset"], "test", run.config["size"])
        j = int(run.probe_index[i])
        lab = int(run.probe_labels[i])
        self.preview.value = (
            f"<img src='{image_to_data_uri(te.images[j])}' width='112'/><br>"
            f"<b>{html.escape(self._class_names(run)[lab])}</b><br>test image {j}"
        )

    # ---- comparing runs
    def keep(self):
        """Pin the run shown (what "Keep this run" does)."""
        if self.run is None:
            return
        if any(k is self.run for k in self.kept):
            self._set_status("This run is kept already.", "info")
            return
        kept = self.run
        group = self.group
        if group is None or dict(group.runs).get(kept.config["seed"]) is not kept:
            group = seedlib.SeedGroup(LabConfig(**kept.config), (kept.config["seed"],))
            group.add(kept.config["seed"], kept)
        self.kept.append(kept)
        self.kept_groups.append(group)  # the live group: seeds still training fill it in
        fig = self._scatter_figure(height=360, width=420, showlegend=False, run_of=lambda: kept)
        fig.update_layout(margin=dict(t=80), title_font_size=12)  # a 3-line title fits the panel
        children = list(self.kept_box.children) + [fig]
        self.kept_box.children = tuple(children)
        self.clear_button.disabled = False
        self.show_epoch(self.epoch.value)
        self.table.value = self.metrics_table()

    def clear_kept(self):
        self.kept = []
        self.kept_groups = []
        self.kept_box.children = ()
        self.table.value = ""
        self.clear_button.disabled = True

    def metrics_rows(self) -> list:
        """One dict per kept run: its configuration and its final metrics.

        ``P@1`` and ``MAP@R`` are the means over the run's finished seeds (the value itself for
        one seed), ``P@1 sd`` and ``MAP@R sd`` their standard deviations (NaN for one seed);
        ``seed`` is the seed animated, ``seeds`` the finished ones.
        """
        rows = []
        for r, g in zip(self.kept, self.kept_groups):
            c = r.config
            act = r.active_fraction()
            p1, mapr = g.stats("precision_at_1"), g.stats("map_at_r")
            notes = g.notes()
            note = "; ".join(notes) if notes else ("stopped early" if r.interrupted else "")
            if not note and all(x.from_cache for x in dict(g.runs).values()):
                note = "cached"
            rows.append(
                {
                    "loss": c["loss"],
                    "miner": c["miner"] or "–",
                    "margin": "–" if c["margin"] is None else f"{c['margin']:g}",
                    "dim": c["embedding_dim"],
                    "lr": f"{c['lr']:g}",
                    "seed": c["seed"],
                    "seeds": g.finished(),
                    "epochs": r.epochs_done,
                    "P@1": p1["mean"] if p1["n"] else r.metric("precision_at_1")[-1],
                    "P@1 sd": p1["sd"],
                    "MAP@R": mapr["mean"] if mapr["n"] else r.metric("map_at_r")[-1],
                    "MAP@R sd": mapr["sd"],
                    "active (last epoch)": act[-1] if act else None,
                    "note": note,
                }
            )
        return rows

    def comparisons(self) -> list:
        """Each kept run after the first against the first: the difference of the means of P@1
        and MAP@R and whether it exceeds the spread over seeds (:func:`seeds.compare_seeds`)."""
        out = []
        if not self.kept_groups:
            return out
        base = self.kept_groups[0]
        for i, g in enumerate(self.kept_groups[1:], start=2):
            row = {"runs": f"run {i} − run 1"}
            for metric in seedlib.METRICS:
                row[seedlib.METRIC_NAMES[metric]] = seedlib.compare_seeds(
                    base.final(metric), g.final(metric)
                )
            out.append(row)
        return out

    def metrics_table(self) -> str:
        """The kept runs as HTML: mean ± sd over seeds, then the differences to run 1."""
        rows = self.metrics_rows()
        if not rows:
            return ""
        td = "<td style='padding:2px 8px'>{}</td>"
        shown = [
            "loss",
            "miner",
            "margin",
            "dim",
            "lr",
            "seeds",
            "epochs",
            "P@1",
            "MAP@R",
            "active (last epoch)",
            "note",
        ]
        head = "".join(
            f"<th style='padding:2px 8px'>{html.escape(k)}</th>" for k in ["run"] + shown
        )
        body = ""
        for i, r in enumerate(rows, start=1):
            cells = [td.format(i)]
            for k in shown:
                v = r[k]
                if k in ("P@1", "MAP@R"):
                    n = len(r["seeds"])
                    text = _fmt(v) + (f" ± {_fmt(r[k + ' sd'])}" if n >= 2 else "")
                    text += f" (n={n})"
                elif k == "seeds":
                    text = ", ".join(map(str, v)) or "–"
                elif isinstance(v, float) or v is None:
                    text = _fmt(v)
                else:
                    text = html.escape(str(v))
                cells.append(td.format(text))
            body += f"<tr>{''.join(cells)}</tr>"
        out = (
            f"<table><tr>{head}</tr>{body}</table>"
            "<small>P@1, MAP@R: mean ± sd over the finished seeds (a seed that diverged or "
            "stopped is left out).</small>"
        )
        comps = self.comparisons()
        if comps:
            head = "".join(
                f"<th style='padding:2px 8px'>{k}</th>" for k in ("", "Δ P@1", "Δ MAP@R")
            )
            body = "".join(
                "<tr>"
                + td.format(html.escape(c["runs"]))
                + td.format(html.escape(c["P@1"]["text"]))
                + td.format(html.escape(c["MAP@R"]["text"]))
                + "</tr>"
                for c in comps
            )
            out += (
                f"<table><tr>{head}</tr>{body}</table>"
                "<small>Δ: difference of the means with its 95% confidence interval; paired over "
                "seeds when both runs have the same seeds, Welch two-sample otherwise. It "
                "<i>exceeds the spread</i> when the interval excludes 0; with fewer than 2 seeds "
                "in a run the Lab cannot tell.</small>"
            )
        return out

    # ---- the static website
    def _animated_figure(self, run: LabRun, *, height=460, width=None, title="", legend=True):
        """A plotly ``go.Figure`` of ``run``'s probe points, one animation frame per recorded
        epoch, with a play button and an epoch slider; the axes cover every frame."""
        import plotly.graph_objects as go

        if not isinstance(run, LabRun):
            raise TypeError(f"run must be a LabRun, got {type(run).__name__}.")
        labels = run.probe_labels.numpy()
        names = self._class_names(run)
        layouts = np.asarray(run.layouts, dtype=float)
        classes = [c for c in range(len(names)) if (labels == c).any()]
        groups = {c: np.flatnonzero(labels == c) for c in classes}
        metrics = run.probe_metrics

        def traces(e):
            return [
                go.Scatter(
                    x=layouts[e, groups[c], 0].astype(np.float32),  # half the page of float64
                    y=layouts[e, groups[c], 1].astype(np.float32),
                    mode="markers",
                    name=f"{c}: {names[c]}",
                    marker=dict(size=5, color=PALETTE[c % len(PALETTE)], opacity=0.8),
                    hoverinfo="name",
                )
                for c in classes
            ]

        def frame_title(e):
            m = metrics[e]
            return (
                f"{title}{'<br>' if title else ''}epoch {e} of {run.epochs_done} · P@1 "
                f"{_fmt(m.get('precision_at_1'))} · MAP@R {_fmt(m.get('map_at_r'))}"
            )

        frames = [
            go.Frame(data=traces(e), name=str(e), layout=dict(title=dict(text=frame_title(e))))
            for e in range(len(layouts))
        ]
        fig = go.Figure(data=traces(0), frames=frames)
        flat = layouts.reshape(-1, 2)
        lo, hi = flat.min(0), flat.max(0)
        pad = 0.05 * (hi - lo + 1e-6)
        animate = dict(mode="immediate", frame=dict(duration=0, redraw=True))  # redraw: titles too
        fig.update_layout(
            title=dict(text=frame_title(0)),
            height=height,
            width=width,
            showlegend=legend,
            legend=dict(itemsizing="constant"),
            margin=dict(l=10, r=10, t=60, b=10),
            xaxis=dict(
                range=[float(lo[0] - pad[0]), float(hi[0] + pad[0])],
                autorange=False,
                showticklabels=False,
                zeroline=False,
            ),
            yaxis=dict(
                range=[float(lo[1] - pad[1]), float(hi[1] + pad[1])],
                autorange=False,
                showticklabels=False,
                zeroline=False,
            ),
            updatemenus=[
                dict(
                    type="buttons",
                    direction="left",
                    x=0,
                    y=-0.02,
                    xanchor="left",
                    yanchor="top",
                    pad=dict(t=10),
                    showactive=False,
                    buttons=[
                        dict(
                            label="▶ play",
                            method="animate",
                            args=[
                                None,
                                dict(
                                    frame=dict(duration=700, redraw=True),
                                    transition=dict(duration=500),
                                    fromcurrent=True,
                                    mode="immediate",
                                ),
                            ],
                        ),
                        dict(
                            label="❚❚ pause",
                            method="animate",
                            args=[[None], dict(animate, transition=dict(duration=0))],
                        ),
                    ],
                )
            ],
            sliders=[
                dict(
                    active=0,
                    x=0.26,  # right of the play and pause buttons
                    len=0.74,
                    y=-0.02,
                    yanchor="top",
                    currentvalue=dict(prefix="epoch "),
                    steps=[
                        dict(
                            label=str(e),
                            method="animate",
                            args=[[str(e)], dict(animate, transition=dict(duration=300))],
                        )
                        for e in range(len(layouts))
                    ],
                )
            ],
        )
        fig.layout.yaxis.scaleanchor = "x"
        fig.layout.margin.b = 90
        fig.layout.height = height + 80
        return fig

    def static_figure(self, run: LabRun | None = None):
        """The run shown (or ``run``) as an animated plotly ``go.Figure`` (what the static website
        shows instead of the live widget); ``None`` before any run."""
        run = self.run if run is None else run
        if run is None:
            return None
        return self._animated_figure(run, title=html.escape(LabConfig(**run.config).label()))

    def static_html(self) -> str:
        """The Lab on the static website: the animated run, its curves, the kept runs (each a
        small animation) and their table, and a note that training needs JupyterLab."""
        import plotly.graph_objects as go

        note = (
            "<p class='dmlcourse-static-note'><i>Static stand-in of the Embedding Lab: the "
            "animation replays the run trained when this page was built (press ▶ play or move "
            "the epoch slider). Choosing a loss, a miner or seeds and training needs JupyterLab "
            "(<code>make lab</code>).</i></p>"
        )
        fig = self.static_figure()
        if fig is None:
            return (
                "<p><b>Embedding Lab</b>: no run was trained when this page was built.</p>" + note
            )
        parts = ["<p><b>Embedding Lab</b></p>", site.figure_html(fig)]
        if self.notes.value:
            parts.append(self.notes.value)
        curves = go.Figure(self.curves.to_dict())
        curves.update_layout(width=None, autosize=True)  # the page's width, not the widget box's
        parts.append(site.figure_html(curves))
        if self.kept:
            parts.append("<b>Kept runs</b>")
            for i, r in enumerate(self.kept, start=1):
                small = self._animated_figure(
                    r,
                    height=320,
                    width=420,
                    title=f"run {i}: {_wrap(html.escape(LabConfig(**r.config).label()))}",
                    legend=False,
                )
                parts.append(
                    "<div style='display:inline-block;vertical-align:top'>"
                    + site.figure_html(small)
                    + "</div>"
                )
            parts.append(self.metrics_table())
        return "\n".join(parts) + note

    def _static_bundle(self) -> dict:
        return {"text/html": self.static_html(), "text/plain": "Embedding Lab (static stand-in)"}
