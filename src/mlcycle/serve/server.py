"""Run the prediction server with uvicorn: one process, or several workers on one port.

uvicorn's ``auto`` loop and HTTP parser pick uvloop and httptools (installed with
``uvicorn[standard]``); with the plain asyncio loop, uvicorn's worker processes leave
``TCP_NODELAY`` unset and every keep-alive response waits for a delayed ACK (~40 ms).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from mlcycle.serve.model import ServedModel
from mlcycle.serve.settings import ENV_VAR, ServeSettings

__all__ = ["APP_FACTORY", "serve"]

#: Import path of the app factory every worker process calls.
APP_FACTORY = "mlcycle.serve.app:app_from_env"


def serve(settings: ServeSettings) -> None:
    """Load the bundle, then serve it until interrupted.

    The bundle is loaded once here first, so a bad bundle fails with a clear error
    before any worker starts. With ``workers > 1`` every worker loads it again and
    prometheus-client's multiprocess mode merges their metrics.

    Parameters
    ----------
    settings
        Host, port, workers, the bundle and every serving option.

    Raises
    ------
    mlcycle.exceptions.BundleError
        The bundle cannot be loaded.
    """
    import uvicorn

    model = ServedModel.load(settings)
    os.environ[ENV_VAR] = settings.to_json()
    metrics_dir = _metrics_dir(settings.metrics_dir) if settings.workers > 1 else None
    if metrics_dir is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    print(
        f"serving {model.name} version {model.version} from {settings.bundle} on "
        f"http://{settings.host}:{settings.port} with {settings.workers} worker(s); "
        f"loaded in {model.load_seconds * 1000:.0f} ms",
        file=sys.stderr,
        flush=True,
    )
    if settings.monitor.enabled:
        from mlcycle.monitor.store import check_store

        check_store(settings.monitor.store)
        print(
            f"monitoring: predictions, window metrics and alarms go to "
            f"{settings.monitor.store} (--no-monitor to turn off)",
            file=sys.stderr,
            flush=True,
        )
    options = {
        "host": settings.host,
        "port": settings.port,
        "loop": settings.loop,
        "http": settings.http,
        "log_level": settings.log_level,
        "access_log": False,
        "server_header": False,
        # No X-Forwarded-* rewriting (a middleware on every request); the server answers
        # on its own address, and the request id, not the client address, is logged.
        "proxy_headers": False,
        "lifespan": "on",
    }
    try:
        if settings.workers > 1:
            uvicorn.run(APP_FACTORY, factory=True, workers=settings.workers, **options)  # type: ignore[arg-type]
        else:
            from mlcycle.serve.app import create_app

            uvicorn.run(create_app(settings, model), **options)  # type: ignore[arg-type]
    finally:
        if metrics_dir is not None and not settings.metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_dir(configured: str) -> str:
    """A folder for multiprocess metric files, emptied of a previous run's files."""
    folder = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="mlcycle-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    return str(folder)
