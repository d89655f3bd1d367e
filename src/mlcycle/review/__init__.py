"""Degrees of automation and human review of uncertain predictions.

- :mod:`~mlcycle.review.settings`: the ``serve.automation`` section (mode, threshold);
- :mod:`~mlcycle.review.tables`: the review queue, its events and the live automation mode,
  kept in the monitoring store beside the prediction log.
"""
