"""The course as a static website: plotly figures without a CDN, widgets as static stand-ins.

A static page has no kernel, so a widget cannot answer its sliders there. When the site is
built (``make site`` sets ``DMLCOURSE_SITE=1``; ``dmlcourse/__init__`` then calls
:func:`enable`):

* every plotly figure is written as a ``<div>`` and a call of ``Plotly.newPlot``, without
  plotly.js itself: the site includes ``plotly.min.js`` once, for every page;
* every ipywidgets box that holds a plotly ``FigureWidget`` (the course's explorers) is shown
  as a **static stand-in** made by :func:`stand_in`: the same figure, with one slider per
  control whose steps were computed by moving that control in the kernel (the other controls
  at the values the notebook set). A reader still moves a slider and watches the figure
  change; a note says that the live version needs JupyterLab.

Nothing here runs in JupyterLab: without ``DMLCOURSE_SITE=1`` the widgets are the live ones.
"""

from __future__ import annotations

import os

import numpy as np

# Heavy and needed only while building the site, so imported inside the functions that use
# them: ipywidgets, plotly.

LIVE_NOTE = (
    "Static stand-in: the slider steps were computed when this page was built. "
    "The live widget needs JupyterLab (<code>make lab</code>)."
)
STILL_NOTE = (  # a widget without value controls, e.g. the image shown under the mouse
    "Static copy of the figure: the live widget (it shows the image under the mouse) needs "
    "JupyterLab (<code>make lab</code>)."
)
MAX_STEPS = 9  # steps per slider: enough to watch a figure move, small enough for a light page
_ENABLED = False


def is_enabled() -> bool:
    """True while building the static site (``DMLCOURSE_SITE=1``)."""
    return _ENABLED or os.environ.get("DMLCOURSE_SITE") == "1"


def figure_html(fig, *, div_id: str | None = None) -> str:
    """The figure as an HTML fragment that expects ``window.Plotly`` (no plotly.js, no MathJax)."""
    import plotly.io as pio

    return pio.to_html(
        fig,
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        div_id=div_id,
        config={"responsive": True},
        auto_play=False,
    )


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def _control_values(control) -> list:
    """The values a stand-in offers for a control: every option, or up to MAX_STEPS grid points."""
    if hasattr(control, "options") and control.options:
        opts = list(control.options)
        return [o[1] if isinstance(o, tuple) else o for o in opts]
    lo, hi, step = control.min, control.max, control.step
    if type(control).__name__ in ("FloatLogSlider",):
        exps = np.linspace(lo, hi, MAX_STEPS)
        exps = np.round(exps / step) * step
        return sorted({float(control.base**e) for e in exps} | {float(control.value)})
    grid = np.arange(lo, hi + step / 2, step)
    if len(grid) > MAX_STEPS:
        grid = grid[np.linspace(0, len(grid) - 1, MAX_STEPS).round().astype(int)]
    values = sorted(
        {(int(v) if isinstance(control.value, int) else round(float(v), 10)) for v in grid}
        | {control.value}
    )
    return values


def _label(control) -> str:
    return str(getattr(control, "description", "") or type(control).__name__)


def _layout_value(v):
    if hasattr(v, "to_plotly_json"):
        return _plain(v.to_plotly_json())
    if isinstance(v, (tuple, list)):
        return [_layout_value(x) for x in v]
    return _plain(v)


def _trace_state(fig) -> list[dict]:
    return [t.to_plotly_json() for t in fig.data]


def _diff_keys(base: list[dict], other: list[dict]) -> list[str]:
    keys = set()
    for a, b in zip(base, other):
        for k in set(a) | set(b):
            if _plain(a.get(k)) != _plain(b.get(k)):
                keys.add(k)
    return sorted(keys)


def _plain(v):
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "f":
            return (
                [float(f"{x:.4g}") for x in v.ravel()] if v.ndim == 1 else np.round(v, 4).tolist()
            )
        return v.tolist()
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def stand_in(box, *, max_controls: int = 4):
    """A plotly ``go.Figure`` that replays ``box``'s figure under each of its controls.

    ``box`` is an ipywidgets container holding one plotly ``FigureWidget`` and value controls
    (sliders, dropdowns, toggles) whose observers update the figure. Each control is moved
    through its values (:func:`_control_values`) while the others keep their current values; the
    changed trace attributes and layout title/shapes/annotations are recorded as the steps of a
    plotly slider. The controls are restored afterwards, so the box ends as it started.
    Returns ``None`` when the box holds no FigureWidget.
    """
    import ipywidgets as W
    import plotly.graph_objects as go

    figs = [w for w in _walk(box) if isinstance(w, go.FigureWidget)]
    if not figs:
        return None
    fig = figs[0]
    controls = [
        w
        for w in _walk(box)
        if isinstance(w, W.ValueWidget)
        and not isinstance(w, (W.HTML, W.Label))
        and (hasattr(w, "options") or hasattr(w, "step"))
        and not getattr(w, "disabled", False)
    ]
    controls = controls[:max_controls]
    base_traces = _trace_state(fig)
    out = go.Figure(fig.to_dict())
    sliders = []
    layout_keys = ("title", "shapes", "annotations")
    for ci, control in enumerate(controls):
        start = control.value
        values = _control_values(control)
        snaps = []
        try:
            for v in values:
                control.value = v
                snaps.append(
                    (v, _trace_state(fig), {k: _layout_value(fig.layout[k]) for k in layout_keys})
                )
        finally:
            control.value = start
        keys = sorted({k for _, t, _ in snaps for k in _diff_keys(base_traces, t)})
        moved = sorted(
            {
                i
                for _, t, _ in snaps
                for i, (a, b) in enumerate(zip(base_traces, t))
                if any(_plain(a.get(k)) != _plain(b.get(k)) for k in keys)
            }
        )
        steps = []
        for v, traces, lay in snaps:
            data_update = {k: [_plain(traces[i].get(k)) for i in moved] for k in keys}
            steps.append(
                dict(
                    method="update",
                    label=f"{v:.3g}" if isinstance(v, float) else str(v),
                    args=[data_update, lay, moved],
                )
            )
        active = next((i for i, (v, _, _) in enumerate(snaps) if v == start), 0)
        sliders.append(
            dict(
                steps=steps,
                active=active,
                currentvalue=dict(prefix=f"{_label(control)}: "),
                pad=dict(t=30 + 0 * ci),
                len=1.0 / max(1, len(controls)) - 0.02,
                x=ci / max(1, len(controls)),
                xanchor="left",
                y=0,
                yanchor="top",
            )
        )
    if sliders:  # room below the figure for them
        height = (fig.layout.height or 450) + 90
        out.update_layout(sliders=sliders, height=height, margin=dict(b=90))
    return out


def _box_mimebundle(self, **kwargs):
    fig = stand_in(self)
    if fig is None:
        return _ORIGINAL["box"](self, **kwargs)
    return {
        "text/html": figure_html(fig)
        + f"<p class='dmlcourse-static-note'><i>{LIVE_NOTE if fig.layout.sliders else STILL_NOTE}"
        "</i></p>",
        "text/plain": "static stand-in of a dmlcourse widget",
    }


def _figurewidget_mimebundle(self, **kwargs):
    import plotly.graph_objects as go

    return {"text/html": figure_html(go.Figure(self.to_dict())), "text/plain": "plotly figure"}


_ORIGINAL: dict = {}


def enable() -> None:
    """Switch this kernel to site mode: plotly without a CDN, widget boxes as static stand-ins."""
    global _ENABLED
    if _ENABLED:
        return
    import ipywidgets as W
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    class SiteRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            return {"text/html": figure_html(go.Figure(fig_dict))}

    pio.renderers["dmlcourse_site"] = SiteRenderer()
    pio.renderers.default = "dmlcourse_site"
    _ORIGINAL["box"] = W.Box._repr_mimebundle_
    W.Box._repr_mimebundle_ = _box_mimebundle
    go.FigureWidget._repr_mimebundle_ = _figurewidget_mimebundle
    _ENABLED = True
