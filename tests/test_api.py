"""The Python API on real CT: `tfkt_edge.score`, `tfkt_edge.Scorer`, `tfkt_edge.__version__`."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest

import tfkt_edge
from tfkt_edge.examples import EXAMPLES


def test_score_gives_the_typed_results_the_cli_renders():
    run = tfkt_edge.score(EXAMPLES / "clinical", str(EXAMPLES / "degraded"))
    by_status = {r.verdict.status: r for r in run.results}
    assert set(by_status) == {"pass", "alert"}
    assert by_status["alert"].verdict.alert and "below" in by_status["alert"].verdict.reason
    assert by_status["pass"].physics is not None and by_status["pass"].noise is not None
    doc = tfkt_edge.document(run)
    assert json.loads(json.dumps(doc))["model"]["name"] == "tfkt_edge_s"
    assert {s["status"] for s in doc["series"]} == {"pass", "alert"}


def test_a_scorer_is_loaded_once_and_scores_alike_every_time():
    with tfkt_edge.Scorer(threshold=2.0, workers=1) as scorer:
        assert scorer.model.name == "tfkt_edge_s" and "score bound" in scorer.model.checks
        first = scorer.score([EXAMPLES / "clinical"])
        second = scorer.score(EXAMPLES / "clinical")
    assert [s.score for s in first.results[0].slices] == [s.score for s in second.results[0].slices]


@pytest.mark.parametrize("call, says", [
    (lambda: tfkt_edge.score(), "at least one"),
    (lambda: tfkt_edge.score("/nonexistent/exam"), "no such file or folder"),
    (lambda: tfkt_edge.Scorer(model="/nonexistent/model.onnx"), "model"),
    (lambda: tfkt_edge.Scorer(backend="abacus"), "abacus"),
    (lambda: tfkt_edge.Scorer(batch_size=0), "at least 1"),
])
def test_errors_a_caller_can_fix_are_one_typed_exception(call, says):
    with pytest.raises(tfkt_edge.TfktEdgeError, match=says):
        call()


def test_the_version_and_a_light_import():
    assert tfkt_edge.__version__ == version("tfkt-edge")
    probe = "import sys, tfkt_edge; print(sorted(m for m in ('onnxruntime', 'torch', 'pydicom') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
