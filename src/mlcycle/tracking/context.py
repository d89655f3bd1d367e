"""Where MLflow stores runs, the registry and artifacts: :class:`TrackingContext`.

:func:`configure_tracking` resolves the store from the ``tracking`` config (default:
SQLite in the project, artifacts under ``<root>/mlartifacts``) and probes it, so a bad
URI fails fast. A new SQLite store gets MLflow's tables under an inter-process lock, so
parallel jobs do not race to create them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from mlcycle._optional import require
from mlcycle.config.project import Project
from mlcycle.config.structured import TrackingConfig
from mlcycle.exceptions import TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["TrackingContext", "configure_tracking"]

# Named after the package, so records keep the logger name they had before the split.
_log = logging.getLogger("mlcycle.tracking")

_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class TrackingContext:
    """Where runs, the registry and artifacts live, resolved once from the config.

    Build it with :func:`configure_tracking`.

    Parameters
    ----------
    tracking_uri
        MLflow tracking store (``sqlite:///...``, ``http://...``).
    registry_uri
        MLflow model registry store; the tracking store unless configured apart.
    artifact_location
        URI where new experiments put run artifacts (``file:///...``, ``s3://...``);
        None for a tracking server without one configured: the server decides.
    experiment
        Default experiment name.
    registered_model
        Default registered model name.
    cache_dir
        Local folder where registered bundles are downloaded.
    s3_endpoint_url
        S3-compatible endpoint, exported as ``MLFLOW_S3_ENDPOINT_URL``.
    """

    tracking_uri: str
    registry_uri: str
    artifact_location: str | None
    experiment: str
    registered_model: str
    cache_dir: Path
    s3_endpoint_url: str | None = None

    @cached_property
    def client(self) -> MlflowClient:
        """An MLflow client bound to this context's URIs (not to global state)."""
        mlflow = require("mlflow", "train")
        client: MlflowClient = mlflow.MlflowClient(
            tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
        )
        return client

    def ensure_experiment(
        self, name: str | None = None, artifact_location: str | None = None
    ) -> str:
        """Return the id of experiment ``name``, creating it when missing.

        Parameters
        ----------
        name
            Experiment name; default :attr:`experiment`.
        artifact_location
            Where the experiment's run artifacts go when it is created; default
            :attr:`artifact_location`. An existing experiment keeps its location (MLflow
            cannot move it); a different one is logged as a warning.

        Returns
        -------
        str
            The experiment id.

        Raises
        ------
        TrackingError
            The store cannot be read or written, or the experiment was deleted.
        """
        exceptions = require("mlflow.exceptions", "train")
        name = name or self.experiment
        location = artifact_location or self.artifact_location
        try:
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                try:
                    return str(self.client.create_experiment(name, artifact_location=location))
                except exceptions.MlflowException as exc:
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    exp = self.client.get_experiment_by_name(name)  # created concurrently
                    if exp is None:
                        raise
        except exceptions.MlflowException as exc:
            raise TrackingError(
                f"cannot read or write experiment {name!r} in the MLflow store "
                f"{self.tracking_uri}: {exc.message}. Check tracking.uri"
            ) from exc
        if exp.lifecycle_stage == "deleted":
            raise TrackingError(
                f"experiment {name!r} (id {exp.experiment_id}) is deleted in "
                f"{self.tracking_uri}; restore it with `mlflow experiments restore "
                f"--experiment-id {exp.experiment_id}` or set tracking.experiment to a new name"
            )
        if location is not None and not _same_location(exp.artifact_location, location):
            _log.warning(
                "experiment %r keeps its artifact location %s, not the configured %s: MLflow "
                "cannot move an experiment's artifacts. Use a new tracking.experiment name "
                "to store runs at the configured location.",
                name,
                exp.artifact_location,
                location,
            )
        return str(exp.experiment_id)


def _same_location(a: str, b: str) -> bool:
    def norm(uri: str) -> str:
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme in ("", "file"):
            return str(Path(urllib.parse.unquote(parsed.path)).resolve())
        return uri.rstrip("/")

    return norm(a) == norm(b)


def _artifact_uri(location: str | None, project: Project, tracking_uri: str) -> str | None:
    """The artifact location new experiments get.

    Unset: ``<root>/mlartifacts`` for a local store; for a tracking server, None, so the
    server's own artifact store (``--artifacts-destination``) holds them.
    """
    if not location:
        if urllib.parse.urlparse(tracking_uri).scheme in ("http", "https"):
            return None
        return project.artifacts_dir.as_uri()
    scheme = urllib.parse.urlparse(location).scheme
    if len(scheme) > 1:  # s3://, file://, gs://, ...; a one-letter scheme is a Windows drive
        return location
    return project.path(location).resolve().as_uri()


def _sqlite_ready(db: Path) -> bool:
    """Whether MLflow's tables exist in ``db`` (a cheap read, no MLflow import)."""
    if not db.is_file() or db.stat().st_size == 0:
        return False
    with closing(sqlite3.connect(db, timeout=_PROBE_TIMEOUT_S)) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"alembic_version", "experiments", "registered_models"} <= names:
            return False
        return bool(conn.execute("SELECT COUNT(*) FROM alembic_version").fetchone()[0] > 0)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock (POSIX ``flock``; a no-op elsewhere)."""
    if sys.platform == "win32":
        yield
        return
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_sqlite(uri: str, lock_dir: Path) -> None:
    """Probe a SQLite store and create MLflow's tables in it once, under a lock.

    MLflow creates its tables on first use; two processes doing that at once (a parallel
    Hydra sweep on a new project) collide in the schema migration, so the first one
    creates them while the others wait.
    """
    path = uri.split(":///", 1)[1].split("?", 1)[0] if ":///" in uri else ""
    if path in ("", ":memory:"):
        return
    db = Path(path)
    fix = "set tracking.uri to a writable location, or null for SQLite in the project"
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        if db.exists() and not db.is_file():
            raise TrackingError(f"MLflow store {uri}: {db} is not a file; {fix}")
        if db.exists() and not os.access(db, os.W_OK):
            raise TrackingError(f"MLflow store {uri}: {db} is read-only; {fix}")
        with closing(sqlite3.connect(db, timeout=_PROBE_TIMEOUT_S)) as conn:
            conn.execute("PRAGMA schema_version").fetchone()
        if _sqlite_ready(db):
            return
        digest = hashlib.sha256(str(db.resolve()).encode()).hexdigest()[:12]
        with _file_lock(lock_dir / f"mlflow-{digest}.lock"):
            if not _sqlite_ready(db):
                mlflow = require("mlflow", "train")
                mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except (OSError, sqlite3.Error) as exc:
        raise TrackingError(f"cannot open the MLflow store {uri} ({exc}); {fix}") from exc


def _check_http(uri: str) -> None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=_PROBE_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        pass  # the server answered: it is reachable
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(
            f"the MLflow tracking server at {uri} is unreachable ({exc}); start it "
            "(e.g. `mlflow server --host 127.0.0.1 --port 5000`), fix tracking.uri, or set "
            "tracking.uri=null to use SQLite in the project"
        ) from exc


def _check_store(uri: str, lock_dir: Path) -> None:
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme == "sqlite":
        _check_sqlite(uri, lock_dir)
    elif scheme in ("http", "https"):
        _check_http(uri)


def configure_tracking(
    cfg: TrackingConfig, project: Project, *, check: bool = True
) -> TrackingContext:
    """Resolve where MLflow stores runs, the registry and artifacts for ``project``.

    Parameters
    ----------
    cfg
        ``tracking`` config: ``uri`` (null: SQLite in the project), ``artifact_location``
        (null: ``<root>/mlartifacts``; a relative path is under the project root),
        ``s3_endpoint_url``, experiment and registered model names.
    project
        The project whose store and folders are used.
    check
        Probe the store now (a SQLite file can be opened, a server answers) so a bad
        URI fails fast instead of in MLflow's long retry loop. A new SQLite store gets
        MLflow's tables here, under a lock in ``<root>/.mlcycle/locks``, so parallel
        jobs (``--multirun`` with the joblib launcher) do not race to create them.

    Returns
    -------
    TrackingContext

    Raises
    ------
    TrackingError
        The tracking server is unreachable or the SQLite store cannot be written.
    """
    uri = cfg.uri or project.tracking_uri
    endpoint = cfg.s3_endpoint_url or None
    if endpoint:
        # boto3, which MLflow's S3 artifact store uses, reads it from the environment.
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = endpoint
    if check:
        _check_store(uri, project.state_dir / "locks")
    return TrackingContext(
        tracking_uri=uri,
        registry_uri=uri,
        artifact_location=_artifact_uri(cfg.artifact_location, project, uri),
        experiment=str(cfg.experiment),
        registered_model=str(cfg.registered_model),
        cache_dir=project.state_dir / "models",
        s3_endpoint_url=endpoint,
    )
