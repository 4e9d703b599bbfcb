"""Driving one notebook in JupyterLab: open, Run All, read the kernel's and the browser's state."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

RUN_TIMEOUT = float(
    os.environ.get("DMLCOURSE_BROWSER_RUN_TIMEOUT", 600)
)  # s, Run All of one notebook (quick)

# Installed in the kernel before Run All: every state update that comes from the front end.
HOOK = r"""
import ipywidgets as _dml_W
_dml_frontend_updates = []
def _dml_set_state(self, sync_data, _orig=_dml_W.Widget.set_state):
    keys = set(sync_data) & {"value", "index"}
    if keys:
        _dml_frontend_updates.append(dict(widget=type(self).__name__, description=getattr(self, "description", ""),
                                          before=repr(getattr(self, "value", None)),
                                          sent={k: repr(sync_data[k]) for k in keys}))
    return _orig(self, sync_data)
_dml_W.Widget.set_state = _dml_set_state
"""

# The figures the kernel holds: {uid of the first trace: {...}} for every open FigureWidget.
KERNEL_FIGURES = r"""
def _dml_figures():
    import json, numpy as np, plotly.graph_objects as go
    from ipywidgets.widgets.widget import _instances
    def arr(v):
        if v is None:
            return None
        a = np.asarray(v)
        if a.dtype.kind in "fiub":
            return np.asarray(a, dtype=float).ravel().tolist()
        return [str(x) for x in a.ravel().tolist()]
    out = {}
    for w in list(_instances.values()):
        if isinstance(w, go.FigureWidget) and len(w.data):
            t = w.layout.title.text
            out[w.data[0].uid] = dict(
                title=t, traces=[dict(uid=tr.uid, type=tr.type, name=getattr(tr, "name", None),
                                      x=arr(getattr(tr, "x", None)), y=arr(getattr(tr, "y", None)),
                                      z=arr(getattr(tr, "z", None)) if tr.type == "heatmap" else None)
                                 for tr in w.data])
    print(json.dumps(out))
_dml_figures()
"""

BROWSER_FIGURES = r"""() => [...document.querySelectorAll('.js-plotly-plot')].map((g, i) => {
  const arr = v => (v === undefined || v === null) ? null
      : Array.from(v, e => (e !== null && typeof e === 'object' && e.length !== undefined) ? Array.from(e) : e).flat();
  const num = v => { const a = arr(v); return a === null ? null : a.map(e => (typeof e === 'number') ? e : String(e)); };
  const fl = g._fullLayout || {};
  const axes = {};
  for (const k of Object.keys(fl)) if (/^[xy]axis\d*$/.test(k)) axes[k] = fl[k].range;
  return {i, title: fl.title && fl.title.text, axes,
          traces: (g.data || []).map(t => ({uid: t.uid, type: t.type || 'scatter', name: t.name,
                                            x: num(t.x), y: num(t.y), z: t.type === 'heatmap' ? num(t.z) : null})),
          full: (g._fullData || []).map(t => ({uid: t.uid, x: num(t.x), y: num(t.y), len: t._length}))};
})"""

# For every marker trace and legend entry: is it drawn with a visible stroke or fill?
VISIBILITY = r"""(i) => {
  const g = document.querySelectorAll('.js-plotly-plot')[i];
  const rgba = s => { const m = (s || '').match(/rgba?\(([^)]+)\)/); if (!m) return null;
                      const p = m[1].split(',').map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const paint = (el, bg) => {
    const cs = getComputedStyle(el);
    const op = Number(cs.opacity);
    const fill = rgba(cs.fill), stroke = rgba(cs.stroke);
    const differs = c => !bg || Math.abs(c[0] - bg[0]) + Math.abs(c[1] - bg[1]) + Math.abs(c[2] - bg[2]) > 60;
    const fillOk = fill && fill[3] * Number(cs.fillOpacity) > 0.05 && differs(fill);
    const strokeOk = stroke && cs.stroke !== 'none' && stroke[3] * Number(cs.strokeOpacity) > 0.05
                     && parseFloat(cs.strokeWidth) > 0 && differs(stroke);
    return {ok: op > 0.05 && !!(fillOk || strokeOk), fill: cs.fill, stroke: cs.stroke,
            strokeWidth: cs.strokeWidth, opacity: cs.opacity};
  };
  const traces = [];
  for (const el of g.querySelectorAll('g.trace.scatter')) {
    const tr = el.__data__ && el.__data__[0] && el.__data__[0].trace;
    if (!tr || tr.visible !== true) continue;
    const pts = [...el.querySelectorAll('path.point')];
    if (!pts.length) continue;
    const s = paint(pts[0]);
    traces.push({name: tr.name, n: pts.length, ...s});
  }
  const legend = [];
  const bgEl = g.querySelector('.legend rect.bg');
  const bg = bgEl ? rgba(getComputedStyle(bgEl).fill) : null;
  for (const e of g.querySelectorAll('.legend g.traces')) {
    const marks = [...e.querySelectorAll('.legendpoints path, .legendlines path, .legendfill path, .legendundefined path, path.legendundefined')]
        .filter(p => p.getAttribute('d'));
    const paints = marks.map(p => paint(p, bg));
    legend.push({name: (e.querySelector('text.legendtext') || {}).textContent, marks: marks.length,
                 ok: paints.some(p => p.ok), paints: paints.slice(0, 3)});
  }
  return {traces, legend};
}"""

# Titles and subplot titles that stick out of their figure; widget labels cut short.
CLIPPING = r"""() => {
  const out = [];
  document.querySelectorAll('.js-plotly-plot').forEach((g, i) => {
    const svg = g.querySelector('svg.main-svg');
    if (!svg) return;
    const b = svg.getBoundingClientRect();
    for (const t of g.querySelectorAll('.g-gtitle text, .infolayer .annotation text, .g-xtitle text, .g-ytitle text')) {
      const r = t.getBoundingClientRect();
      if (!r.width) continue;
      if (r.left < b.left - 1 || r.right > b.right + 1 || r.top < b.top - 1 || r.bottom > b.bottom + 1)
        out.push({figure: i, text: t.textContent, box: [r.left - b.left, r.top - b.top, r.right - b.left, r.bottom - b.top],
                  figureSize: [b.width, b.height]});
    }
  });
  for (const l of document.querySelectorAll('.jp-OutputArea .widget-label, .jp-OutputArea .widget-label-basic')) {
    if (l.offsetParent && l.scrollWidth > l.clientWidth + 1) out.push({label: l.textContent, shown: l.clientWidth, needs: l.scrollWidth});
  }
  return out;
}"""

OUTPUT_PROBLEMS = r"""() => {
  const out = [];
  for (const e of document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
    if (e.textContent.includes('Traceback') || e.textContent.includes('Error')) out.push('stderr: ' + e.textContent.slice(0, 400));
  for (const e of document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"], .jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'))
    out.push('error output: ' + e.textContent.slice(0, 400));
  for (const e of document.querySelectorAll('.jp-OutputArea-output'))
    for (const s of ['Error displaying widget', 'Loading widget...', 'Loading widget…'])
      if (e.textContent.includes(s)) out.push(s + ': ' + e.textContent.slice(0, 200));
  return out;
}"""

KERNEL_EXEC = r"""async (code) => {
  const nb = window.jupyterapp.shell.currentWidget;
  const kernel = nb.sessionContext.session.kernel;
  const fut = kernel.requestExecute({code, silent: false, store_history: false});
  let out = '';
  fut.onIOPub = msg => {
    if (msg.header.msg_type === 'stream') out += msg.content.text;
    if (msg.header.msg_type === 'error') out += 'KERNEL ERROR ' + msg.content.ename + ': ' + msg.content.evalue;
  };
  await fut.done;
  return out;
}"""

RUNNING = r"""() => {
  const nb = window.jupyterapp.shell.currentWidget;
  const k = nb && nb.sessionContext && nb.sessionContext.session && nb.sessionContext.session.kernel;
  const status = [...document.querySelectorAll('.jp-StatusBar-TextItem')].map(e => e.textContent).join('|');
  const queued = [...document.querySelectorAll('.jp-InputArea-prompt')].filter(e => e.textContent.includes('*')).length;
  return {kernel: k ? k.status : null, idle: status.includes('| Idle'), queued};
}"""


@contextlib.contextmanager
def lab_server(nb_dir: Path, build: Path):
    """JupyterLab on nb_dir, quick mode, no token, its own port and settings; yields its URL."""
    settings = build / "settings"
    for path, value in (
        ("@jupyterlab/apputils-extension/notification.jupyterlab-settings", {"fetchNews": "false"}),
        ("@jupyterlab/notebook-extension/tracker.jupyterlab-settings", {"windowingMode": "none"}),
    ):
        (settings / path).parent.mkdir(parents=True, exist_ok=True)
        (settings / path).write_text(json.dumps(value))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ,
        DMLCOURSE_QUICK=os.environ.get("DMLCOURSE_QUICK", "1"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(build / "workspaces"),
    )
    log = open(build / "jupyter-lab.log", "w")
    # the jupyter-lab script itself (no shell in between): proc.pid is the server's process id
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter-lab"),
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            "--LabApp.expose_app_in_browser=True",
            f"--ServerApp.root_dir={nb_dir}",
        ],
        env=env,
        cwd=nb_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter-lab exited: see {build / 'jupyter-lab.log'}")
            try:
                urllib.request.urlopen(url + "/api/status", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("jupyter-lab did not start within 120 s")
        yield url
    finally:
        try:  # the server's own process group: the server and its kernels
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        log.close()


class NotebookRun:
    """One notebook open in its own page, run once with Run All (at full speed, nobody touching it)."""

    def __init__(self, browser, url: str, name: str, shots: Path):
        self.name, self.shots, self.failure = name, shots, None
        self.console: list[str] = []
        self.page = browser.new_page(viewport={"width": 1500, "height": 1000})
        self.page.on(
            "console", lambda m: self.console.append(m.text) if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.console.append(f"page error: {e}"))
        self.page.set_default_timeout(60_000)
        try:
            self._open_and_run(url)
        except Exception as e:  # noqa: BLE001  reported by each test of this notebook
            self.failure = f"{type(e).__name__}: {e}"
            self.shot("run-failed")

    def _open_and_run(self, url: str):
        pg = self.page
        pg.goto(f"{url}/lab/tree/{self.name}.ipynb?reset")
        pg.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
            "&& window.jupyterapp.shell.currentWidget.sessionContext "
            "&& document.querySelector('.jp-Notebook .jp-Cell')",
            timeout=90_000,
        )
        pg.evaluate(
            "() => { if (!window.jupyterapp.shell.leftCollapsed) "
            "window.jupyterapp.commands.execute('application:toggle-left-area'); }"
        )
        self._wait_idle(90)
        out = self.kernel(HOOK + "\nprint('hooked')")
        assert "hooked" in out, out
        t0 = time.time()
        pg.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        time.sleep(2)
        self._wait_idle(RUN_TIMEOUT)
        self.run_seconds = time.time() - t0
        time.sleep(2)  # let the last widgets render and send what they send
        self.race = json.loads(
            self.kernel("import json; print(json.dumps(_dml_frontend_updates))").strip() or "[]"
        )
        self.shot("after-run-all")

    def _wait_idle(self, timeout: float):
        end, calm = time.time() + timeout, 0
        while time.time() < end:
            s = self.page.evaluate(RUNNING)
            calm = calm + 1 if (s["kernel"] == "idle" and s["idle"] and s["queued"] == 0) else 0
            if calm >= 3:
                return
            time.sleep(0.5)
        raise TimeoutError(f"{self.name}: kernel still busy after {timeout:.0f} s")

    def kernel(self, code: str) -> str:
        return self.page.evaluate(KERNEL_EXEC, code)

    def kernel_figures(self) -> dict:
        out = self.kernel(KERNEL_FIGURES)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError) as e:
            raise AssertionError(f"kernel said: {out[:500]}") from e

    def browser_figures(self) -> list:
        return self.page.evaluate(BROWSER_FIGURES)

    def visibility(self, i: int) -> dict:
        return self.page.evaluate(VISIBILITY, i)

    def output_problems(self) -> list:
        return self.page.evaluate(OUTPUT_PROBLEMS)

    def clipping(self) -> list:
        return self.page.evaluate(CLIPPING)

    def scroll_to(self, element) -> None:
        element.evaluate("e => e.scrollIntoView({block: 'start'})")
        time.sleep(0.4)

    def shot(self, label: str, element=None) -> Path:
        """A window-sized screenshot (after scrolling ``element`` to the top of the notebook panel)."""
        if element is not None:
            self.scroll_to(element)
        path = self.shots / f"{self.name}--{label}.png"
        self.page.screenshot(path=str(path))
        return path

    def settle(self, timeout: float = 30):
        self._wait_idle(timeout)
        time.sleep(0.8)

    def close(self):
        try:
            self.page.evaluate(
                "() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()"
            )
        except Exception:  # noqa: BLE001
            pass
        self.page.close()
