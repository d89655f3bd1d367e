"""MLflow runs: where they are stored, and what a run logs.

By default runs and the registry live in SQLite inside the project (``<root>/mlflow.db``)
and artifacts under ``<root>/mlartifacts``; ``mlflow ui --backend-store-uri
sqlite:///<root>/mlflow.db`` shows them. Artifacts may go to S3 (or any S3-compatible
store): the experiment is created with ``artifact_location`` (an existing experiment keeps
its own location, with a warning when it differs) and ``MLFLOW_S3_ENDPOINT_URL`` is
exported for the endpoint.

Clients are built with explicit URIs (:attr:`TrackingContext.client`); the only
process-global MLflow state set here is the tracking and registry URI, by
:func:`start_run`, because ``mlflow.start_run`` and the fluent logging functions read it.

A run logs the flattened config as params (secrets redacted, values cut to MLflow's
limit), the full redacted config as ``config.yaml``, metrics flattened to dotted keys
(``test.f1_macro``), and folders of artifacts (the bundle under ``bundle/``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle._optional import require
from mlcycle.config.project import Project
from mlcycle.config.structured import TrackingConfig
from mlcycle.exceptions import TrackingError

if TYPE_CHECKING:
    from mlflow import ActiveRun, MlflowClient

__all__ = [
    "MAX_PARAM_VALUE_LENGTH",
    "REDACT_WORDS",
    "TAG_DATA_MD5",
    "TAG_GIT_COMMIT",
    "TAG_GIT_DIRTY",
    "TrackingContext",
    "configure_tracking",
    "flatten_config",
    "flatten_metrics",
    "lineage_tags",
    "log_artifacts",
    "log_config",
    "log_metrics",
    "redact_config",
    "start_run",
]

_log = logging.getLogger(__name__)

# MLflow 3 rejects (or silently cuts) param values longer than this (mlflow.utils.validation).
MAX_PARAM_VALUE_LENGTH = 6000
# Config keys containing one of these words (case-insensitive) are logged as "***".
REDACT_WORDS = ("secret", "access_key", "password", "token")
# Run tags (and model-version tags) that record where a model came from.
TAG_GIT_COMMIT = "mlcycle.git_commit"
TAG_GIT_DIRTY = "mlcycle.git_dirty"
TAG_DATA_MD5 = "mlcycle.data_md5"

_REDACTED = "***"
_TRUNCATED = "..."
_BAD_KEY_CHARS = re.compile(r"[^\w.\- /:]")
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
        URI where the experiment's run artifacts go (``file:///...``, ``s3://...``).
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
    artifact_location: str
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
        if _same_location(exp.artifact_location, location) is False:
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


def _artifact_uri(location: str | None, project: Project) -> str:
    if not location:
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
        artifact_location=_artifact_uri(cfg.artifact_location, project),
        experiment=str(cfg.experiment),
        registered_model=str(cfg.registered_model),
        cache_dir=project.state_dir / "models",
        s3_endpoint_url=endpoint,
    )


# -- config and metrics as params -----------------------------------------------------------


def _plain(cfg: Any) -> Any:
    """OmegaConf containers and dataclasses as plain dicts and lists."""
    if type(cfg).__module__.startswith("omegaconf"):
        omegaconf = require("omegaconf", "train")
        return omegaconf.OmegaConf.to_container(cfg, resolve=True)
    if is_dataclass(cfg) and not isinstance(cfg, type):
        return asdict(cfg)
    return cfg


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _is_secret(key: str, redact: Sequence[str]) -> bool:
    low = key.lower()
    return any(word.lower() in low for word in redact)


def _mlflow_key(key: str) -> str:
    return _BAD_KEY_CHARS.sub("_", key)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping) or _is_list(value):
        return json.dumps(_plain_tree(value), separators=(",", ":"), default=str)
    return str(value)


def _plain_tree(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_tree(v) for k, v in value.items()}
    if _is_list(value):
        return [_plain_tree(v) for v in value]
    return value


def _truncate(text: str, limit: int = MAX_PARAM_VALUE_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def flatten_config(
    cfg: Mapping[str, Any], *, redact: Sequence[str] = REDACT_WORDS
) -> dict[str, str]:
    """Flatten a nested config to MLflow params: dotted keys, string values.

    Parameters
    ----------
    cfg
        Nested mapping (plain dicts, an OmegaConf ``DictConfig`` or a dataclass).
    redact
        Words that mark a secret: a key containing one of them (case-insensitive, at any
        level) is logged as ``"***"``, as is everything below it. ``None`` stays
        ``"null"``, so an unset secret is visibly unset.

    Returns
    -------
    dict[str, str]
        Mappings become dotted keys; lists of scalars become compact JSON
        (``"[64,32]"``); lists holding mappings or lists are flattened by index
        (``evaluate.baselines.0.name``). ``None`` is ``"null"``, booleans are
        ``"true"``/``"false"``. Values are cut to :data:`MAX_PARAM_VALUE_LENGTH`
        characters, ending in ``"..."``.

    Examples
    --------
    >>> flatten_config({"model": {"name": "mlp", "hidden": [64, 32]},
    ...                 "remote": {"secret_access_key": "abc", "region": None}})
    {'model.name': 'mlp', 'model.hidden': '[64,32]', 'remote.secret_access_key': '***', \
'remote.region': 'null'}
    """
    out: dict[str, str] = {}

    def walk(value: Any, key: str, secret: bool) -> None:
        if isinstance(value, Mapping):
            if not value and key:
                out[_mlflow_key(key)] = "{}"
            for k, v in value.items():
                child = f"{key}.{k}" if key else str(k)
                walk(v, child, secret or _is_secret(str(k), redact))
        elif _is_list(value) and any(isinstance(v, Mapping) or _is_list(v) for v in value):
            for i, v in enumerate(value):
                walk(v, f"{key}.{i}", secret)
        elif value is None:
            out[_mlflow_key(key)] = "null"
        else:
            out[_mlflow_key(key)] = _REDACTED if secret else _truncate(_scalar(value))

    walk(_plain(cfg), "", False)
    return out


def redact_config(cfg: Any, *, redact: Sequence[str] = REDACT_WORDS) -> Any:
    """A plain copy of ``cfg`` with every secret value replaced by ``"***"``.

    Keys are matched as in :func:`flatten_config`; ``None`` values stay ``None``.

    Examples
    --------
    >>> redact_config({"remote": {"access_key_id": "AKIA", "url": "s3://b"}})
    {'remote': {'access_key_id': '***', 'url': 's3://b'}}
    """

    def walk(value: Any, secret: bool) -> Any:
        if isinstance(value, Mapping):
            return {str(k): walk(v, secret or _is_secret(str(k), redact)) for k, v in value.items()}
        if _is_list(value):
            return [walk(v, secret) for v in value]
        if value is None:
            return None
        return _REDACTED if secret else value

    return walk(_plain(cfg), False)


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested metrics under dotted keys, e.g. ``test.f1_macro``.

    ``None``, NaN, booleans, strings and lists (confusion matrices, notes) are skipped;
    characters MLflow does not allow in a key become ``_``.

    Examples
    --------
    >>> flatten_metrics({"f1_macro": 0.9, "roc_auc": None, "per_class": {"a": {"f1": 1}},
    ...                  "notes": ["x"]}, "test")
    {'test.f1_macro': 0.9, 'test.per_class.a.f1': 1.0}
    """
    out: dict[str, float] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            f = float(value)
            if f == f:  # not NaN
                out[_mlflow_key(key)] = f

    walk(_plain(metrics), prefix.strip("."))
    return out


def lineage_tags(
    *, git_commit: str | None = None, git_dirty: bool | None = None, data_md5: str | None = None
) -> dict[str, str]:
    """Run tags recording the code and data a run used; ``None`` values are left out.

    Examples
    --------
    >>> lineage_tags(git_commit="abc123", git_dirty=False)
    {'mlcycle.git_commit': 'abc123', 'mlcycle.git_dirty': 'false'}
    """
    tags: dict[str, str] = {}
    if git_commit is not None:
        tags[TAG_GIT_COMMIT] = git_commit
    if git_dirty is not None:
        tags[TAG_GIT_DIRTY] = "true" if git_dirty else "false"
    if data_md5 is not None:
        tags[TAG_DATA_MD5] = data_md5
    return tags


# -- runs -----------------------------------------------------------------------------------


def _activate(ctx: TrackingContext) -> None:
    """Point MLflow's fluent API at ``ctx``: the one place global MLflow state is set."""
    mlflow = require("mlflow", "train")
    mlflow.set_tracking_uri(ctx.tracking_uri)
    mlflow.set_registry_uri(ctx.registry_uri)


@contextmanager
def start_run(
    ctx: TrackingContext,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    experiment: str | None = None,
    git_commit: str | None = None,
    git_dirty: bool | None = None,
    data_md5: str | None = None,
) -> Iterator[ActiveRun]:
    """Start an MLflow run in the context's experiment; end it when the block exits.

    The run ends as ``FINISHED``, or ``FAILED`` when the block raises.

    Parameters
    ----------
    ctx
        From :func:`configure_tracking`.
    run_name
        Display name of the run; default: MLflow's generated name.
    tags
        Extra run tags.
    experiment
        Experiment name; default ``ctx.experiment``. Created when missing.
    git_commit, git_dirty, data_md5
        Lineage, recorded as the tags ``mlcycle.git_commit``, ``mlcycle.git_dirty`` and
        ``mlcycle.data_md5`` when given.

    Yields
    ------
    mlflow.ActiveRun
        The run; ``run.info.run_id`` is its id.

    Raises
    ------
    TrackingError
        The store cannot be written, or another run is already active in this process.
    """
    mlflow = require("mlflow", "train")
    active = mlflow.active_run()
    if active is not None:
        raise TrackingError(
            f"an MLflow run ({active.info.run_id}) is already active in this process; "
            "end it (mlflow.end_run()) before starting another"
        )
    _activate(ctx)
    experiment_id = ctx.ensure_experiment(experiment)
    all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    all_tags.update(lineage_tags(git_commit=git_commit, git_dirty=git_dirty, data_md5=data_md5))
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=all_tags) as run:
        yield run


def _active_run_id() -> str:
    mlflow = require("mlflow", "train")
    run = mlflow.active_run()
    if run is None:
        raise TrackingError("no active MLflow run; call this inside `with start_run(ctx):`")
    return str(run.info.run_id)


def log_config(cfg: Mapping[str, Any], *, redact: Sequence[str] = REDACT_WORDS) -> dict[str, str]:
    """Log a config to the active run: flattened params and the full ``config.yaml``.

    Parameters
    ----------
    cfg
        The composed config (plain mapping, ``DictConfig`` or dataclass).
    redact
        Words that mark secrets (see :func:`flatten_config`); redacted in both forms.

    Returns
    -------
    dict[str, str]
        The params logged.
    """
    mlflow = require("mlflow", "train")
    yaml = require("yaml", "train")
    run_id = _active_run_id()
    params = flatten_config(cfg, redact=redact)
    mlflow.log_params(params, run_id=run_id)
    text = yaml.safe_dump(redact_config(cfg, redact=redact), sort_keys=False)
    mlflow.log_text(text, "config.yaml", run_id=run_id)
    return params


def log_metrics(
    nested_metrics: Mapping[str, Any], prefix: str = "", *, step: int | None = None
) -> dict[str, float]:
    """Log the numeric leaves of nested metrics to the active run.

    Parameters
    ----------
    nested_metrics
        E.g. the output of :func:`~mlcycle.evaluate.metrics.classification_metrics`.
    prefix
        Key prefix, e.g. ``"test"`` gives ``test.f1_macro``.
    step
        Optional training step.

    Returns
    -------
    dict[str, float]
        The metrics logged (see :func:`flatten_metrics`).
    """
    mlflow = require("mlflow", "train")
    run_id = _active_run_id()
    flat = flatten_metrics(nested_metrics, prefix)
    if flat:
        mlflow.log_metrics(flat, step=step, run_id=run_id)
    return flat


def log_artifacts(path: Path, artifact_path: str | None = None) -> str:
    """Upload a file or folder to the active run's artifacts.

    Parameters
    ----------
    path
        Local file or folder; a folder's content goes under ``artifact_path``.
    artifact_path
        Folder in the run's artifacts, e.g. ``"bundle"``; default: the root.

    Returns
    -------
    str
        The artifact URI of what was logged: the folder (``<run artifacts>/bundle``,
        usable as a model version's ``source``) or the file.

    Raises
    ------
    TrackingError
        ``path`` does not exist, or no run is active.
    """
    mlflow = require("mlflow", "train")
    run_id = _active_run_id()
    path = Path(path)
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path, run_id=run_id)
        return str(mlflow.get_artifact_uri(artifact_path))
    if path.is_file():
        mlflow.log_artifact(str(path), artifact_path, run_id=run_id)
        inner = f"{artifact_path.strip('/')}/{path.name}" if artifact_path else path.name
        return str(mlflow.get_artifact_uri(inner))
    raise TrackingError(f"cannot log artifacts from {path}: no such file or folder")
