"""The rescan alert policy."""

from tfkt_edge.verdict.policy import AlertPolicy, evaluate

LABELS = [f"instance {i}" for i in range(1, 11)]


def test_good_series_passes_and_says_why():
    verdict = evaluate([3.2] * 10, LABELS)
    assert not verdict.alert
    assert verdict.reason.startswith("median score 3.20 >= 2.00")


def test_low_median_alerts_and_names_the_worst_slice():
    scores = [1.0, 1.5, 0.4, 1.2, 3.0]
    verdict = evaluate(scores, LABELS[:5])
    assert verdict.alert
    assert "median score 1.20 < 2.00" in verdict.reason and "slice 3 (instance 3) at 0.40" in verdict.reason


def test_run_of_consecutive_low_slices_alerts_even_with_good_median():
    scores = [3.0, 3.1, 1.0, 1.2, 1.1, 3.0, 3.2, 3.3, 3.0, 2.9]
    verdict = evaluate(scores, LABELS)
    assert verdict.alert
    assert "3 consecutive slices below 2.00: slices 3-5 (instance 3 to instance 5)" in verdict.reason


def test_a_few_scattered_low_slices_do_not_alert():
    scores = [3.0, 1.0, 3.0, 3.0, 3.0, 1.0, 3.0, 3.0, 3.0, 3.0]
    verdict = evaluate(scores, LABELS)
    assert not verdict.alert and "2 of 10 slices below" in verdict.reason


def test_a_share_of_scattered_low_slices_alerts_whatever_their_order():
    scores = [3.0, 1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 3.0, 3.0, 3.0]
    verdict = evaluate(scores, LABELS)
    assert verdict.alert and "3 of 10 slices below 2.00" in verdict.reason and "slices 2, 4, 6" in verdict.reason


def test_policy_parameters_are_honoured():
    scores = [3.0, 2.4, 2.4, 3.0]
    assert evaluate(scores, LABELS[:4], AlertPolicy(threshold=2.5, min_run=2)).alert
    assert not evaluate(scores, LABELS[:4], AlertPolicy(threshold=2.5, min_run=3, max_share=1.0)).alert


def test_the_verdict_is_its_findings_and_the_reason_is_rendered_from_them(realct):
    """Real CT through `tfkt-edge score`: each series' findings name the checks that fired with their figures;
    the reason is their rendering; a phantom's learned score is a 'domain' finding, never an alert by itself."""
    import json

    from typer.testing import CliRunner

    from tfkt_edge.cli.main import app
    from tfkt_edge.examples import EXAMPLES
    from tfkt_edge.verdict.policy import Finding, render_reason

    result = CliRunner().invoke(app, ["score", str(EXAMPLES), str(realct / "rt-utils"), "--format", "json"])
    by_status = {s["status"]: s for s in json.loads(result.stdout)["series"]}
    alert, passed, outside = by_status["alert"], by_status["pass"], by_status["outside-domain"]
    fired = {f["check"] for f in alert["findings"] if f["alert"]}
    assert "scores" in fired and alert["findings"][0]["figures"]["rule"] == "median"
    assert not any(f["alert"] for f in passed["findings"]) and passed["findings"][0]["check"] == "scores"
    assert [f["check"] for f in outside["findings"]] == ["domain"] and outside["findings"][0]["figures"]["reasons"]
    for series in (alert, passed, outside):
        assert series["reason"] == render_reason([Finding(**f) for f in series["findings"]])
