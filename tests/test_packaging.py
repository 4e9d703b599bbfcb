"""The wheel installs and works outside the clone: every subpackage, the mini data, the cache.

Slow (builds a wheel, ~20-60 s): deselect with ``-m "not slow"``.

The wheel is built from a copy of the source tree and installed with ``pip --target`` into a
temporary folder. It is then run by this interpreter with ``-S`` (no site-packages processing,
so the editable install of the development venv and its import hook are NOT active), from a
working directory outside the clone, with ``sys.path`` = [the installed wheel, the venv's
site-packages for torch & co.]. The test asserts that ``dmlcourse`` was imported from the wheel.
"""

import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys
    sys.path[:0] = [{site!r}, {deps!r}]
    import dmlcourse
    from dmlcourse import data, exercises, lab, models, runtime, train
    from dmlcourse.core import paths
    from dmlcourse.exercises import lecture00
    from dmlcourse import metrics

    assert dmlcourse.__file__.startswith({site!r}), dmlcourse.__file__
    assert paths.repo_root() is None
    assert str(paths.cache_dir()).startswith({xdg!r}), paths.cache_dir()
    assert str(data.MINI_DIR).startswith({site!r}), data.MINI_DIR
    tr = data.load("mnist", "train", "mini")
    assert tr.images.shape == (10000, 28, 28)
    keep = data.balanced_subset(tr.labels, 2)
    runtime.seed_everything(0)
    h = train.train(models.MLP(4), lambda z, y: z.pow(2).mean(), tr.images[keep], tr.labels[keep],
                    epochs=1, batch_size=20, progress=False, device="cpu", max_steps=1)
    assert len(h.step_loss) == 1
    lecture00.check_precision_at_1(metrics.precision_at_1)
    print("WHEEL-OK", dmlcourse.__file__)
""")


def _copy_source(dest: Path) -> Path:
    keep = ["pyproject.toml", "README.md", "dmlcourse"]
    dest.mkdir()
    for name in keep:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_clone(tmp_path):
    src = _copy_source(tmp_path / "src")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "-w",
            str(wheels),
            "--no-deps",
            "--no-build-isolation",
            "-q",
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("dmlcourse-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--target",
            str(site),
            "-q",
            str(wheel),
        ],
        check=True,
        cwd=tmp_path,
    )
    for sub in ("core", "lab", "exercises", "datasets/mini/mnist", "datasets/mini/fashion-mnist"):
        assert (site / "dmlcourse" / sub).is_dir(), f"{sub} is missing from the wheel"
    xdg = tmp_path / "xdg"
    script = SCRIPT.format(site=str(site), deps=sysconfig.get_paths()["purelib"], xdg=str(xdg))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(xdg),
        "DMLCOURSE_QUICK": "1",
    }
    out = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "WHEEL-OK" in out.stdout


def _requirements(specs):
    out = {}
    for spec in specs:
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(.*)", spec)
        name = m.group(1).lower().replace("_", "-")
        out[{"pytorch": "torch"}.get(name, name)] = m.group(2).replace(" ", "")
    return out


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _requirements(project["dependencies"] + project["optional-dependencies"]["dev"])
    text = (ROOT / "environment.yml").read_text()
    section = text.split("dependencies:", 1)[1]
    deps = [
        ln.strip()[2:]
        for ln in section.splitlines()
        if re.match(r"\s+- [A-Za-z]", ln) and "-e ." not in ln
    ]
    conda = _requirements(deps)
    conda.pop("python"), conda.pop("pip")
    assert conda == wanted
