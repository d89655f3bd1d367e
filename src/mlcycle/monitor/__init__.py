"""Monitoring: drift statistics and the prediction log (more to come).

:mod:`mlcycle.monitor.drift` holds the per-feature drift tests and the dataset-level
verdict; :mod:`mlcycle.monitor.store` the buffered prediction log (SQLAlchemy);
:mod:`mlcycle.monitor.files` the two-file ``mlcycle drift`` command. Metrics, windows
over live traffic and alarms build on them.
"""
