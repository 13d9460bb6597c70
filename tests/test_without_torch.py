"""The scanner-side runtime imports and scores without torch: every runtime module but the torch-only ones
(the network code and checkpoint loading), in a process where importing torch fails."""

from __future__ import annotations

import json
import subprocess
import sys

from tfkt_edge.examples import EXAMPLES

TORCH_ONLY = ("tfkt_edge.model.network", "tfkt_edge.model.checkpoint")
PROBE = r"""
import importlib, json, pkgutil, sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")

sys.meta_path.insert(0, NoTorch())
import tfkt_edge
skip = ("tfkt_edge.train", "tfkt_edge.export", "tfkt_edge.__main__") + tuple(sys.argv[2].split(","))
imported, refused = [], {}
for info in pkgutil.walk_packages(tfkt_edge.__path__, "tfkt_edge."):
    if info.name.startswith(skip):
        continue
    importlib.import_module(info.name)
    imported.append(info.name)
for name in sys.argv[2].split(","):
    try:
        importlib.import_module(name)
    except ImportError as exc:
        refused[name] = str(exc)
run = tfkt_edge.score(sys.argv[1])
print(json.dumps({"imported": imported, "refused": refused, "statuses": [r.verdict.status for r in run.results],
                  "torch": "torch" in sys.modules}))
"""


def test_every_runtime_module_imports_and_a_real_series_scores_without_torch():
    done = subprocess.run([sys.executable, "-c", PROBE, str(EXAMPLES), ",".join(TORCH_ONLY)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"tfkt_edge.pipeline.run", "tfkt_edge.backends.pytorch", "tfkt_edge.cli.main", "tfkt_edge.service.runner",
            "tfkt_edge.render.html", "tfkt_edge.api"} <= set(found["imported"])
    assert sorted(found["statuses"]) == ["alert", "pass"] and found["torch"] is False
    # The torch-only modules say what they need, in one line, instead of a bare ModuleNotFoundError.
    assert set(found["refused"]) == set(TORCH_ONLY)
    assert all("needs PyTorch" in message for message in found["refused"].values())
