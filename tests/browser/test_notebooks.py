"""Every notebook in a real browser: Run All, then the interactive figures and widgets as shown.

See conftest.py for the server and the browser; screenshots land in build/browser-shots/.
"""

from __future__ import annotations

import math
import time

import pytest

from .conftest import NOTEBOOKS

LAB_NOTEBOOKS = ("05_", "06_", "07_")
IGNORED_CONSOLE = ("favicon", "Failed to load resource: the server responded with a status of 404")


def _close(a, b) -> bool:
    if (
        a is None
        or b is None
        or (isinstance(a, float) and math.isnan(a))
        or (isinstance(b, float) and math.isnan(b))
    ):
        return (a is None or (isinstance(a, float) and math.isnan(a))) == (
            b is None or (isinstance(b, float) and math.isnan(b))
        )
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-6 * (1 + abs(a))
    return str(a) == str(b)


def _same_values(k, b) -> str | None:
    """None when the kernel's array k and the browser's b agree; else what differs."""
    k, b = k or [], b or []
    if len(k) != len(b):
        return f"{len(k)} values in the kernel, {len(b)} in the browser"
    bad = [i for i, (u, v) in enumerate(zip(k, b)) if not _close(u, v)]
    if bad:
        i = bad[0]
        return f"{len(bad)} of {len(k)} values differ, first at [{i}]: kernel {k[i]!r}, browser {b[i]!r}"
    return None


def figure_differences(kfig: dict, bfig: dict) -> list[str]:
    """What the browser shows differently from what the kernel holds, for one figure."""
    out = []
    if (kfig["title"] or "") != (bfig["title"] or "").replace("Click to enter Plot title", ""):
        out.append(f"title: kernel {kfig['title']!r}, browser {bfig['title']!r}")
    if len(kfig["traces"]) != len(bfig["traces"]):
        return out + [
            f"{len(kfig['traces'])} traces in the kernel, {len(bfig['traces'])} in the browser"
        ]
    for i, (kt, bt, ft) in enumerate(zip(kfig["traces"], bfig["traces"], bfig["full"])):
        for key in ("x", "y", "z"):
            d = _same_values(kt[key], bt[key])
            if d:
                out.append(f"trace {i} ({kt['name']}) {key}: {d}")
            elif key != "z" and kt["type"] in ("scatter", "scattergl") and kt[key]:
                d = _same_values(
                    kt[key], ft[key]
                )  # what plotly draws (falls back to the index when lost)
                if d:
                    out.append(f"trace {i} ({kt['name']}) drawn {key}: {d}")
    return out


def interactive(nb) -> list[tuple[int, dict, dict]]:
    """(index on the page, kernel figure, browser figure) for every FigureWidget on the page."""
    kfigs, bfigs = nb.kernel_figures(), nb.browser_figures()
    return [
        (b["i"], kfigs[b["traces"][0]["uid"]], b)
        for b in bfigs
        if b["traces"] and b["traces"][0]["uid"] in kfigs
    ]


def _plot(nb, i):
    return nb.page.locator(".js-plotly-plot").nth(i)


def _wait_agree(nb, timeout=20.0):
    end = time.time() + timeout
    while True:
        nb.settle()
        diffs = {i: figure_differences(k, b) for i, k, b in interactive(nb)}
        diffs = {i: d for i, d in diffs.items() if d}
        if not diffs or time.time() > end:
            return diffs
        time.sleep(1)


def _margin_explorer_checks(nb, figs) -> list[str]:
    """07's margin explorer: θ runs 0-180 in both panels; the softmax boundary is the diagonal."""
    out = []
    for i, k, b in figs:
        if not any((t["name"] or "").startswith("softmax") for t in k["traces"]):
            continue
        xr = b["axes"].get("xaxis")
        if not xr or abs(xr[0]) > 1e-6 or abs(xr[1] - 180) > 1e-6:
            out.append(f"figure {i}: left panel's θ axis is {xr}, not [0, 180]")
        soft = b["full"][4]  # class 1's softmax boundary (right panel)
        if (
            not soft["x"]
            or not soft["y"]
            or len(soft["x"]) != len(soft["y"])
            or any(
                abs(x - y) > 1e-6
                for x, y in zip(soft["x"], soft["y"])
                if x is not None and y is not None
            )
        ):
            xs, ys = soft["x"] or [], soft["y"] or []
            out.append(
                f"figure {i}: the softmax boundary is not the diagonal (x[-1] = {xs[-1:]}, y[-1] = {ys[-1:]})"
            )
    return out


def _move_first_slider(nb, i) -> str | None:
    """Press → on the first slider of the widget that holds figure i (← when at the end);
    returns the slider's label, or None when there is none (or it belongs to the Embedding Lab)."""
    out = _plot(nb, i).locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-output')]")
    if "Embedding Lab" in out.inner_text():
        return None
    sliders = out.locator(".widget-hslider")
    if sliders.count() == 0:
        return None
    s = sliders.first
    label = s.locator(".widget-label").inner_text()
    handle = s.locator(".noUi-handle").first
    at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    handle.focus()
    nb.page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
    return label


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_all_is_clean(notebook, name):
    """Run All ends with no error output, no broken or loading widget, no console error."""
    problems = notebook.output_problems()
    console = [c for c in notebook.console if not any(s in c for s in IGNORED_CONSOLE)]
    print(f"{name}: Run All took {notebook.run_seconds:.0f} s")
    assert not problems, "\n".join(problems)
    assert not console, "console errors:\n" + "\n".join(console[:20])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_widgets_keep_what_the_cells_set(notebook, name):
    """After Run All at full speed, no widget got a value from the front end that nobody touched
    (sliders snapping 0.25 to 0.2512 on their first render overwrite what a cell set)."""
    race = [
        f"{u['widget']} {u['description']!r}: kernel had {u['before']}, browser sent {u['sent']}"
        for u in notebook.race
    ]
    assert not race, "the browser overwrote what the cells set:\n" + "\n".join(race)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_figures_show_what_the_kernel_holds(notebook, name):
    """Each FigureWidget draws the kernel's data, after the initial draw and after a slider moves."""
    figs = interactive(notebook)
    # a FigureWidget whose state never reached the browser draws an empty plot with no trace
    problems = []
    for b in notebook.browser_figures():
        if not b["traces"]:
            path = notebook.shot(f"figure{b['i']}-empty", _plot(notebook, b["i"]))
            problems.append(f"figure {b['i']} is empty in the browser (no trace)  [{path.name}]")
    if not figs and not problems:
        pytest.skip(f"{name}: no interactive figure")
    for i, k, b in figs:
        path = notebook.shot(f"figure{i}-initial", _plot(notebook, i))
        problems += [
            f"figure {i} ({k['title']!r}) initial: {d}  [{path.name}]"
            for d in figure_differences(k, b)
        ]
    problems += _margin_explorer_checks(notebook, figs)
    moved = {}
    for i, _k, _b in figs:
        label = _move_first_slider(notebook, i)
        if label is not None:
            moved[i] = label
    if moved:
        diffs = _wait_agree(notebook)
        figs = interactive(notebook)
        for i, label in moved.items():
            path = notebook.shot(f"figure{i}-after-moving", _plot(notebook, i))
            problems += [
                f"figure {i} after moving {label!r}: {d}  [{path.name}]" for d in diffs.get(i, [])
            ]
        problems += [f"after moving a slider: {p}" for p in _margin_explorer_checks(notebook, figs)]
    print(f"{name}: {len(figs)} interactive figures; moved sliders {moved}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_trace_and_legend_entry_is_visible(notebook, name):
    """Markers have a visible stroke or fill; each legend entry shows its symbol on its background."""
    figs = interactive(notebook)
    if not figs:
        pytest.skip(f"{name}: no interactive figure")
    problems = []
    for i, k, _b in figs:
        v = notebook.visibility(i)
        bad = [
            f"markers of {t['name']!r} ({t['n']}): fill {t['fill']}, stroke {t['stroke']} {t['strokeWidth']}"
            for t in v["traces"]
            if not t["ok"]
        ]
        bad += [
            f"legend entry {e['name']!r} shows no symbol: {e['paints']}"
            for e in v["legend"]
            if not e["ok"]
        ]
        if bad:
            path = notebook.shot(f"figure{i}-visibility", _plot(notebook, i))
            problems += [f"figure {i} ({k['title']!r}): {b}  [{path.name}]" for b in bad]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_titles_and_labels_are_not_clipped(notebook, name):
    """Figure titles, subplot titles and axis titles lie inside their figure; no widget label is cut."""
    problems = notebook.clipping()
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_embedding_lab(notebook, name):
    """The Embedding Lab: change miner and margin, Train to 100 %, frames appear, Stop, Keep this run."""
    if not name.startswith(LAB_NOTEBOOKS):
        pytest.skip(f"{name}: no Embedding Lab")
    nb, page = notebook, notebook.page
    root = page.locator(".jp-OutputArea-output", has_text="Embedding Lab").last
    nb.shot("lab-before", root)
    state = lambda code: nb.kernel(f"print({code})").strip()  # noqa: E731
    kept0 = int(state("len(embedding_lab.kept_box.children)"))
    rows0 = root.locator("table tr").count()
    miner = root.locator(".widget-dropdown", has_text="miner").locator("select")
    if miner.count() and miner.is_enabled():
        options = [o for o in miner.locator("option").all_inner_texts() if o != miner.input_value()]
        miner.select_option(label=options[0])
        nb.settle()
        assert state("embedding_lab.miner.value") == options[0]
    margin = root.locator(".widget-hslider", has_text="margin")
    if margin.count() and "mod-disabled" not in (margin.get_attribute("class") or ""):
        before = float(state("embedding_lab.margin.value"))
        handle = margin.locator(".noUi-handle").first
        handle.focus()
        for _ in range(5):
            page.keyboard.press("ArrowRight")
        nb.settle()
        after = float(state("embedding_lab.margin.value"))
        assert after > before, f"margin slider: {before} -> {after}"
        assert state("repr(embedding_lab.margin.value)") == repr(round(after, 2)), (
            "margin is off the grid"
        )
    root.get_by_role("button", name="Train").click()
    end = time.time() + 240
    while time.time() < end and state("embedding_lab.training") == "True":
        time.sleep(1)
    nb.settle()
    bar = root.locator(".widget-hprogress .progress-bar").first
    width = bar.evaluate("e => e.style.width")
    nb.shot("lab-trained", root)
    assert width == "100%", f"progress bar at {width} after training"
    assert float(state("embedding_lab.epoch.max")) >= 1, "the scatter has no epoch frames"
    root.get_by_role("button", name="Keep this run").click()
    nb.settle()
    assert int(state("len(embedding_lab.kept_box.children)")) == kept0 + 1
    assert root.locator("table tr").count() > rows0, "no new row in the kept-runs table"
    nb.shot("lab-kept", root.locator(".js-plotly-plot").last)
    # a second run, stopped at once. It must outlast the browser's round trip: a quick-mode run
    # (100 images a class) of even 30 epochs ends in 3 s, before the browser, busy drawing its
    # epochs, has shown Stop enabled. So: every training image of the size, the most epochs, and a
    # seed never trained (not a cached replay) on this machine
    started = int(state("embedding_lab.runs_started"))
    nb.kernel(
        "embedding_lab._fixed['train_per_class'] = None\n"
        "embedding_lab.epochs.value = embedding_lab.epochs.max\n"
        f"embedding_lab.seed.value = {100_000 + int(time.time()) % 1_000_000}"
    )
    nb.settle()
    root.get_by_role("button", name="Train").click()
    end = time.time() + 30
    while time.time() < end and int(state("embedding_lab.runs_started")) == started:
        time.sleep(0.5)
    status = lambda: state("embedding_lab.status.value")  # noqa: E731
    assert int(state("embedding_lab.runs_started")) == started + 1, (
        f"the Train click started no run; status: {status()}"
    )
    try:
        root.get_by_role("button", name="Stop").click(timeout=30_000)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(
            f"Stop could not be clicked (training: {state('embedding_lab.training')}, "
            f"status: {status()})"
        ) from exc
    end = time.time() + 120
    while time.time() < end and state("embedding_lab.training") == "True":
        time.sleep(1)
    nb.settle()
    nb.shot("lab-stopped", root)
    assert state("embedding_lab.training") == "False"
    assert root.get_by_role("button", name="Train").is_enabled()
    stopped = state("embedding_lab.run.epochs_done"), state("embedding_lab.epochs.max")
    assert int(stopped[0]) < int(stopped[1]), (
        f"Stop did not stop the run: {stopped[0]} epochs of {stopped[1]}"
    )
