"""The value an ipywidgets slider sends back to the kernel when it first renders.

ipywidgets draws its sliders with noUiSlider, which snaps the kernel's value to its step grid in
percent of the range and back, in floating point; the view then sends the snapped value to the
kernel (``continuous_update``), overwriting what a cell set. These functions repeat that
arithmetic (noUiSlider 15: ``toStepping``, ``getStep``, ``fromStepping``) so that a headless test
can check that a widget's values are fixed points of the round trip; the browser suite checks the
real thing.
"""

from __future__ import annotations

import math


def _js_round(x: float) -> float:
    return math.floor(x + 0.5)


def round_trip(value: float, min: float, max: float, step: float) -> float:
    """What a FloatSlider(value, min, max, step) holds after noUiSlider has drawn it."""
    if value >= max:
        p = 100.0
    else:
        p = 100 * ((value + abs(min)) if min < 0 else (value - min)) / (max - min)
    n = 100 * step / (max - min)
    if p != 100:
        p = _js_round(p / n) * n
    if p >= 100:
        return max
    return p * 1.0 * (max - min) / 100 + min


def slider_round_trip(slider) -> float:
    """The value an ipywidgets FloatSlider / FloatLogSlider / IntSlider holds after its first render."""
    name = type(slider).__name__
    if name == "FloatLogSlider":
        base = slider.base
        return base ** round_trip(
            math.log(slider.value) / math.log(base), slider.min, slider.max, slider.step
        )
    if name in ("IntSlider", "Play"):
        return int(_js_round(round_trip(slider.value, slider.min, slider.max, slider.step)))
    return round_trip(slider.value, slider.min, slider.max, slider.step)


def snapped(box) -> dict:
    """{description: (value, value after rendering)} for the sliders of a widget box whose value
    the browser would change."""
    import ipywidgets as W

    out, todo = {}, [box]
    while todo:
        w = todo.pop()
        todo.extend(getattr(w, "children", ()))
        if isinstance(w, (W.FloatSlider, W.FloatLogSlider, W.IntSlider)):
            after = slider_round_trip(w)
            if after != w.value:
                out[w.description] = (w.value, after)
    return out
