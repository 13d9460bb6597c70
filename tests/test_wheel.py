"""The built wheel, installed in a fresh virtual environment without torch, scores the bundled example.

This is what a vendor ships to a scanner console: no checkout, no training
extra. The wheel is built from this tree with `pip wheel`; its runtime
dependencies come from the package index (as on any installation).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the tracked tree: setuptools keeps a build/ folder in the source tree, and a
    # module moved or removed since an earlier build would otherwise ride along in the wheel.
    source = folder / "src"
    listed = _run(["git", "ls-files", "-z"], cwd=ROOT)
    files = [f for f in listed.stdout.split("\0") if f] if listed.returncode == 0 else []
    if files:
        for name in files:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    else:  # not a git checkout: everything but the local environment and data
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", "data", "runs", "build", "*.egg-info", ".git"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", folder / "dist", source])
    if built.returncode != 0:
        pytest.fail(f"the wheel did not build:\n{built.stdout[-2000:]}{built.stderr[-2000:]}")
    (wheel,) = (folder / "dist").glob("tfkt_edge-*.whl")
    venv = folder / "venv"
    made = _run([sys.executable, "-m", "venv", venv])
    assert made.returncode == 0, made.stderr
    install = _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel])
    if install.returncode != 0:
        if "Could not find a version" in install.stderr or "NewConnectionError" in install.stderr:
            pytest.skip(f"the runtime dependencies cannot be fetched here: {install.stderr.strip().splitlines()[-1]}")
        pytest.fail(f"the wheel did not install:\n{install.stderr[-3000:]}")
    return venv


def test_the_wheel_holds_the_model_examples_and_no_top_level_train_or_export(installed):
    (wheel,) = (installed.parent / "dist").glob("tfkt_edge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tfkt_edge/assets/tfkt_edge_s.onnx" in names
    assert any(n.startswith("tfkt_edge/examples/clinical/") and n.endswith(".dcm") for n in names)
    assert any(n.startswith("tfkt_edge/train/") for n in names) and any(n.startswith("tfkt_edge/export/") for n in names)
    assert not [n for n in names if n.split("/")[0] in ("train", "export", "tests", "benchmarks")]


def test_the_installed_wheel_scores_without_torch(installed, tmp_path):
    python = installed / "bin" / "python"
    no_torch = _run([python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)"])
    assert no_torch.returncode == 0, "torch is installed in the fresh environment"
    example = _run([python, "-c", "from tfkt_edge.examples import EXAMPLES; print(EXAMPLES)"], cwd=tmp_path)
    assert example.returncode == 0, example.stderr
    examples = Path(example.stdout.strip())
    assert ROOT not in examples.parents  # the installed copy, not the checkout's
    scored = _run([installed / "bin" / "tfkt-edge", "score", examples / "clinical", examples / "degraded", "--format", "json"],
                  cwd=tmp_path)
    assert scored.returncode == 1, scored.stderr  # the degraded copy alerts
    document = json.loads(scored.stdout)
    statuses = sorted(s["status"] for s in document["series"])
    assert statuses == ["alert", "pass"]
    assert "Traceback" not in scored.stderr
