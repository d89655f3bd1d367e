"""Retraining: feedback data in, a gated challenger out, the configured rollout started.

- :mod:`~mlcycle.retrain.config`: the ``retrain`` config section (data, gate, rollout);
- :mod:`~mlcycle.retrain.tables`: the ``retrains`` table (one running per model, the
  alarms that asked for it, the gate's verdict).
"""
