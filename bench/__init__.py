"""`make bench`: TaskHub measured side by side with baselines in one run (docs/performance.md)."""
