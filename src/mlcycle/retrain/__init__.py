"""Retraining: feedback data in, a gated challenger out, the configured rollout started.

- :mod:`~mlcycle.retrain.config`: the ``retrain`` config section (data, gate, rollout);
- :mod:`~mlcycle.retrain.tables`: the ``retrains`` table (one running per model, the
  alarms that asked for it, the gate's verdict);
- :mod:`~mlcycle.retrain.store`: start (or join) a retraining, finish it, list them;
- :mod:`~mlcycle.retrain.data`: the feedback dataset, split by time into rows to train
  on and recent labelled traffic to judge on;
- :mod:`~mlcycle.retrain.gate`: what a candidate must show against the champion;
- :mod:`~mlcycle.retrain.run`: one retraining, end to end (:func:`retrain`);
- :mod:`~mlcycle.retrain.record`: what a judged candidate leaves in MLflow;
- :mod:`~mlcycle.retrain.rollout`: rolling the new challenger out on a server;
- :mod:`~mlcycle.retrain.command`: ``mlcycle retrain`` and ``mlcycle retrain history``.

The package imports nothing itself (a server reads the config, settings and tables
without loading MLflow); import each module where it is used.
"""
