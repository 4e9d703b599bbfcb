"""The static website in Chromium, opened from the file system (no server, no network).

Builds the site for 00 (a plotly figure) and 07 (the widgets' stand-ins and the Embedding Lab's
static animation) in quick mode, once per session, then opens the landing page and the two
lecture pages: no console error, every plotly figure drawn with its data, the Lab's animation
plays (its frames change the points), and a screenshot of each under build/browser-shots/site/.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import BUILD, ROOT, SHOTS

SITE = BUILD / "site"
LECTURES = ("00_start_here", "07_angular_margins")


@pytest.fixture(scope="module")
def site():
    env = dict(os.environ, DMLCOURSE_QUICK="1")
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "site.py"),
        "--only",
        "00",
        "07",
        "--out",
        str(SITE),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (SHOTS / "site").mkdir(parents=True, exist_ok=True)
    return SITE


@pytest.fixture
def page(browser):
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    pg.close()


def _open(page, path):
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(1500)


def _plots(page):
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => ({
            traces: (d.data || []).length,
            drawn: d.querySelectorAll('.main-svg').length,
            frames: (d._transitionData && d._transitionData._frames || []).length}))"""
    )


def test_landing_page(site, page):
    _open(page, site / "index.html")
    text = page.inner_text("body")
    assert "make lab" in text and "make test" in text and "The curriculum" in text
    assert "07" in text and "Mahalanobis" in text
    page.screenshot(path=str(SHOTS / "site" / "index.png"))
    assert page.errors == []


@pytest.mark.parametrize("lecture", LECTURES)
def test_lecture_page_draws_its_figures(site, page, lecture):
    _open(page, site / "lectures" / f"{lecture}.html")
    plots = _plots(page)
    assert plots, f"{lecture}: no plotly figure on the page"
    for i, p in enumerate(plots):
        assert p["traces"] > 0 and p["drawn"] > 0, f"{lecture}: figure {i} not drawn: {p}"
    first = page.locator(".js-plotly-plot").first
    first.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "site" / f"{lecture}.png"))
    assert "executed in quick mode" in page.inner_text("body")
    assert page.errors == []


def test_the_labs_static_animation_plays(site, page):
    _open(page, site / "lectures" / "07_angular_margins.html")
    plots = _plots(page)
    animated = [i for i, p in enumerate(plots) if p["frames"] > 1]
    assert animated, "no animated figure (the Embedding Lab's stand-in) on 07's page"
    i = animated[0]
    div = page.locator(".js-plotly-plot").nth(i)
    div.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "site" / "lab-before-play.png"))
    # _fullData: plotly's decoded arrays (the page's JSON may hold them as base64 typed arrays)
    xs = "(i) => document.querySelectorAll('.js-plotly-plot')[i]._fullData.map(t => Array.from(t.x || []))"
    before = page.evaluate(xs, i)
    div.locator(".updatemenu-button").first.click()  # ▶ play
    page.wait_for_timeout(3000)
    after = page.evaluate(xs, i)
    page.screenshot(path=str(SHOTS / "site" / "lab-after-play.png"))
    assert any(len(x) for x in before), "the animation's first frame has no points"
    assert before != after, "pressing play did not move the points"
    title = "(i) => document.querySelectorAll('.js-plotly-plot')[i]._fullLayout.title.text"
    assert "epoch 0 of" not in page.evaluate(title, i), "the title did not follow the frames"
    assert page.errors == []
