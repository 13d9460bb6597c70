"""Training uses the runtime's metric (numpy, checked against scipy in the tests)."""

from tfkt_edge.metrics import correlation_report

__all__ = ["correlation_report"]
