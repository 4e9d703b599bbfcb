"""make site: one lecture built in quick mode, then its pages checked as a reader needs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, DMLCOURSE_QUICK="1")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "site.py"), "--only", "00", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _pages(site):
    """The site's pages (not the theme's templates under _static)."""
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)


def _text(html: str) -> str:
    """What a reader sees: the page without its tags."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_every_page_exists(site):
    for page in (
        "index.html",
        "api.html",
        "lectures/00_start_here.html",
        "search.html",
        "genindex.html",
    ):
        assert (site / page).is_file(), page


def test_no_page_shows_a_traceback_or_an_error(site):
    for page in _pages(site):
        html = page.read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" not in html, page.name
        assert not re.search(r'class="[^"]*output (traceback|error)', html), page.name


def test_the_lecture_page_says_mode_and_machine_and_has_maths(site):
    html = (site / "lectures" / "00_start_here.html").read_text(encoding="utf-8")
    text = _text(html)
    assert "executed in quick mode on" in text and "torch" in text
    assert "make lab" in _text((site / "index.html").read_text(encoding="utf-8"))
    assert "math notranslate" in html  # MyST maths, typeset by the site's own MathJax


def test_every_plotly_figure_has_its_data(site):
    n_figures = 0
    for page in _pages(site):
        html = page.read_text(encoding="utf-8")
        divs = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', html)
        calls = re.findall(r'Plotly\.newPlot\(\s*"([^"]+)",\s*(.)(.)', html)
        assert sorted(divs) == sorted(c[0] for c in calls), page.name
        for div_id, open_bracket, first in calls:
            assert open_bracket == "[" and first == "{", (
                f"{page.name}: figure {div_id} has no traces"
            )
        n_figures += len(calls)
    assert n_figures >= 1


def test_the_site_is_self_contained_and_its_links_resolve(site):
    plotly_js = [p for p in site.rglob("plotly*.js")]
    assert len(plotly_js) == 1, "plotly.js once for the whole site"
    for page in _pages(site):
        html = page.read_text(encoding="utf-8")
        assert not re.search(r'<script[^>]+src="(https?:)?//', html), (
            f"{page.name} loads a script from the web"
        )
        assert not re.search(r'<link[^>]+href="(https?:)?//[^"]+\.css', html), (
            f"{page.name} loads CSS from the web"
        )
        assert "cdn.plot.ly" not in html and "cdnjs" not in html and "jsdelivr" not in html, (
            page.name
        )
        for ref in re.findall(r'(?:href|src)="([^"#][^"]*)"', html):
            url = urlparse(ref)
            if url.scheme or ref.startswith("mailto:"):
                continue
            target = (page.parent / unquote(url.path)).resolve()
            assert target.exists(), f"{page.relative_to(site)} links to a missing {ref}"
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_learner_pages_hold_no_solution(site):
    html = (site / "lectures" / "00_start_here.html").read_text(encoding="utf-8")
    assert "fill_diagonal_" not in html.split("Exercises")[-1]  # 00.1's solution line
    assert "not attempted yet" in html


# ---- the stand-ins themselves (no site build)


def test_a_widget_with_sliders_becomes_a_figure_whose_steps_replay_them():
    from dmlcourse import heads, site

    box = heads.margin_explorer()
    fig = site.stand_in(box)
    assert len(fig.layout.sliders) == 3  # SphereFace m, CosFace m, ArcFace m
    for slider, control in zip(fig.layout.sliders, (box.sphere, box.cos, box.arc)):
        assert len(slider.steps) >= 2
        assert slider.steps[slider.active].label in (str(control.value), f"{control.value:.3g}")
    html = site._box_mimebundle(box)["text/html"]
    assert "slider steps were computed" in html


def test_a_widget_without_controls_becomes_a_still_figure_that_says_what_is_missing():
    import torch

    from dmlcourse import plots, site

    g = torch.Generator().manual_seed(0)
    xy, labels = torch.randn(30, 2, generator=g), torch.arange(30) % 3
    box = plots.embedding_explorer(xy, labels, torch.zeros(30, 28, 28, dtype=torch.uint8))
    live = next(w for w in box.children if hasattr(w, "data"))
    fig = site.stand_in(box)
    assert not fig.layout.sliders
    assert fig.layout.height == live.layout.height  # no room kept for sliders that are not there
    html = site._box_mimebundle(box)["text/html"]
    assert "image under the mouse" in html and "slider" not in html
