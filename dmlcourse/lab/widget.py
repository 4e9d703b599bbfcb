"""The Embedding Lab widget: change the loss, the miner and the margin, train, and watch the
embedding move.

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

import numpy as np
import torch

from ..core.paths import DATASETS, SIZES, default_size
from ..core.validate import check_choice, check_float, check_int
from ..data import CLASS_NAMES
from ..plots import PALETTE, image_to_data_uri
from ..runtime import get_device
from . import runner
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
    from the
        previous layout), "procrustes" (independent UMAPs, rotated onto each other) or "pca"
        (instant).
    background : train in a background thread (default) so the notebook stays responsive; False
    trains
        inside ``train_button.click()`` (headless tests, quick-mode notebooks).
    warm_up : compile UMAP's numba code in a background thread when the lab opens.

    While a run trains on the CPU, torch in this Python process uses one thread (a small network on
    a shared
    CPU trains faster that way); the previous thread count is restored when the run ends.

    Attributes for scripts and tests: the controls (``dataset``, ``size``, ``loss``, ``miner``,
    ``margin``,
    ``embedding_dim``, ``epochs``, ``lr``, ``seed``, ``network``), ``train_button``,
    ``stop_button``,
    ``keep_button``, ``progress``, ``status``, ``figure`` (the scatter), ``curves``, ``epoch``
    (slider),
    ``play``, ``run`` (the run shown), ``kept`` (pinned runs), ``table`` (their metrics),
    ``wait()``.
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
        self.device = torch.device(device) if device is not None else get_device(verbose=False)
        gpu = self.device.type != "cpu"
        size = size or default_size(self.device, download=False)
        network = network or ("cnn" if gpu else "mlp")
        # everything else is checked by LabConfig, the one place a run's settings are validated
        # (the margin is not checked here: its slider clamps it to the range of the loss shown)
        preselected = (
            "batch_semi_hard" if "batch_semi_hard" in miner_names else (miner_names or [None])[0]
        )
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
        self.kept: list[LabRun] = []
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
        self._on_loss({"new": self.loss.value})
        if margin is not None:
            self.margin.value = margin

        row = lambda ws: W.HBox(ws, layout=W.Layout(flex_flow="row wrap"))  # noqa: E731
        self.widget = W.VBox(
            [
                W.HTML("<h3 style='margin:0'>Embedding Lab</h3>"),
                row([self.dataset, self.size, self.network, self.loss, self.miner]),
                row([self.margin, self.embedding_dim, self.epochs, self.lr, self.seed]),
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
        if warm_up:
            warm_up_umap(background=True)

    # ---- display
    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs):
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
            # widen first so that no intermediate state is invalid, then set the range, then the
            # value
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

    def _set_status(self, text: str, kind: str = "info"):
        color = {"info": "#333", "ok": "#1a7f37", "warn": "#9a6700", "error": "#cf222e"}[kind]
        self.status.value = f"<span style='color:{color}'>{text}</span>"

    # ---- training
    def train(self):
        """What the Train button does. A second press while a run trains is ignored (with a
        note)."""
        if not self._lock.acquire(blocking=False):
            running = self._running_config  # read once: the training thread may reset it meanwhile
            what = html.escape(running.label()) if running is not None else "a run"
            self._set_status(
                "Already training " + what + ": press <b>Stop</b> first, or wait.", "warn"
            )
            return None
        try:
            cfg = self.config()
        except (TypeError, ValueError) as exc:
            self._lock.release()
            self._set_status(f"Cannot train this configuration: {html.escape(str(exc))}", "error")
            return None
        self._running_config = cfg
        self._stop.clear()
        self.runs_started += 1
        self.train_button.disabled = True
        self.stop_button.disabled = False
        self.progress.value, self.progress.bar_style = 0, ""
        if self.background:
            self._thread = threading.Thread(
                target=self._job, args=(cfg,), daemon=True, name="dmlcourse-lab"
            )
            self._thread.start()
            return self._thread
        self._job(cfg)
        return None

    def stop(self):
        """What the Stop button does: training ends after the current step and keeps what was
        trained."""
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

    def _job(self, cfg: LabConfig):
        t0 = time.perf_counter()
        try:
            self._set_status(f"Training <b>{html.escape(cfg.label())}</b> …", "info")
            first = {"shown": False}

            def on_step(step, total):
                if step == 1 or step % 5 == 0 or step == total:
                    self.progress.max, self.progress.value = max(total, 1), min(step, total)

            def on_epoch(partial):
                self._show(partial, follow=True, rebuild=not first["shown"])
                first["shown"] = True

            run = runner.run_lab(
                cfg,
                device=self.device,
                should_stop=self._stop.is_set,
                on_step=on_step,
                on_epoch=on_epoch,
            )
            self._show(run)
            self._report(cfg, run, time.perf_counter() - t0)
        except (
            Exception
        ) as exc:  # the widget must stay usable: report, never raise into the event loop
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
        """An empty scatter with one trace per class; hovering shows the image of ``run_of()``'s
        probe point."""
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
                    "active triplets / pairs per epoch",
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
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="Precision@1"), 1, 2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="MAP@R"), 1, 2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="active fraction"), 1, 3)
        fig.update_layout(
            height=280, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25)
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
            lo, hi = run.layouts.reshape(-1, 2).min(0), run.layouts.reshape(-1, 2).max(0)
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
        self._update_curves(run)
        self.keep_button.disabled = False

    def show_epoch(self, t: float):
        """Draw every figure at (fractional) epoch ``t`` (what the slider and the play button
        do)."""
        if self.run is None:
            return
        t = float(t)
        run = self.run
        m = run.probe_metrics[min(int(round(t)), run.epochs_done)]
        self._fill(
            self.figure,
            run,
            interpolate(run.layouts, t),
            f"epoch {t:.1f} of {run.epochs_done} · P@1 {_fmt(m.get('precision_at_1'))} · "
            f"MAP@R {_fmt(m.get('map_at_r'))}",
        )
        for fig, kept in zip(self.kept_box.children, self.kept):
            tk = min(t, kept.epochs_done)
            fig_title = f"{LabConfig(**kept.config).label()}<br>epoch {tk:.1f}"
            self._fill(fig, kept, interpolate(kept.layouts, tk), fig_title)

    def _on_play(self, change):
        self.epoch.value = min(change["new"] / 10, self.epoch.max)

    def _update_curves(self, run: LabRun):
        loss = np.asarray(run.step_loss, dtype=float)
        steps = np.arange(1, len(loss) + 1)
        smooth = np.convolve(loss, np.ones(10) / 10, mode="valid") if len(loss) >= 10 else loss
        ep = list(range(len(run.probe_metrics)))
        act = run.active_fraction()
        with self.curves.batch_update():
            d = self.curves.data
            d[0].x, d[0].y = steps, loss
            d[1].x, d[1].y = steps[len(steps) - len(smooth) :], smooth
            d[2].x, d[2].y = ep, run.metric("precision_at_1")
            d[3].x, d[3].y = ep, run.metric("map_at_r")
            d[4].x, d[4].y = list(range(1, len(act) + 1)), act

    def show_probe(self, i: int, run: LabRun | None = None):
        """Show probe image ``i`` of ``run`` (default: the run shown) beside the scatter (what
        hovering
        or clicking a point does)."""
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
        self.kept.append(kept)
        fig = self._scatter_figure(height=340, width=420, showlegend=False, run_of=lambda: kept)
        children = list(self.kept_box.children) + [fig]
        self.kept_box.children = tuple(children)
        self.clear_button.disabled = False
        self.show_epoch(self.epoch.value)
        self.table.value = self.metrics_table()

    def clear_kept(self):
        self.kept = []
        self.kept_box.children = ()
        self.table.value = ""
        self.clear_button.disabled = True

    def metrics_rows(self) -> list:
        """One dict per kept run: its configuration and its final metrics."""
        rows = []
        for r in self.kept:
            c = r.config
            act = r.active_fraction()
            rows.append(
                {
                    "loss": c["loss"],
                    "miner": c["miner"] or "–",
                    "margin": "–" if c["margin"] is None else f"{c['margin']:g}",
                    "dim": c["embedding_dim"],
                    "lr": f"{c['lr']:g}",
                    "seed": c["seed"],
                    "epochs": r.epochs_done,
                    "P@1": r.metric("precision_at_1")[-1],
                    "MAP@R": r.metric("map_at_r")[-1],
                    "active (last epoch)": act[-1] if act else None,
                    "note": "stopped early"
                    if r.interrupted
                    else ("cached" if r.from_cache else ""),
                }
            )
        return rows

    def metrics_table(self) -> str:
        rows = self.metrics_rows()
        if not rows:
            return ""
        head = "".join(f"<th style='padding:2px 8px'>{html.escape(k)}</th>" for k in rows[0])
        body = ""
        for r in rows:
            cells = "".join(
                f"<td style='padding:2px 8px'>{_fmt(v) if isinstance(v, float) or v is None else html.escape(str(v))}</td>"  # noqa: E501
                for v in r.values()
            )
            body += f"<tr>{cells}</tr>"
        return f"<table><tr>{head}</tr>{body}</table>"
