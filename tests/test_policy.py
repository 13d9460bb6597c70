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
