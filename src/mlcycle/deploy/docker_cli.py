"""The Docker client calls of a deployment, made through the ``docker`` command.

mlcycle does not talk to the Docker engine's API itself: it runs the ``docker`` client the
user already has, so contexts, ``DOCKER_HOST``, credential helpers and BuildKit settings all
work as they do on the command line. Every call has a timeout, and every failure is a
:class:`~mlcycle.exceptions.DeployError` that names the step ("building the image",
"logging in to <registry>", "pushing <ref>") and quotes docker's last output lines.

Registry passwords go to ``docker login --password-stdin``, never into the argument list,
where other users could read them in the process table.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import threading
from pathlib import Path

from mlcycle.exceptions import DeployError

__all__ = ["build", "build_command", "engine_version", "login", "push", "require_engine", "tag"]

#: Seconds to wait for ``docker info`` (a running engine answers in well under a second).
ENGINE_TIMEOUT_S = 15.0
#: Seconds for ``docker login`` and ``docker tag``.
SHORT_TIMEOUT_S = 120.0
#: Seconds for ``docker build`` and ``docker push`` (a cold build installs Python packages).
LONG_TIMEOUT_S = 3600.0
#: How many of docker's last output lines an error message quotes.
TAIL_LINES = 12

_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def _not_installed(docker: str, step: str) -> DeployError:
    return DeployError(
        f"the Docker client {docker!r} is not installed (not found on PATH); {step} needs it. "
        "Install Docker (https://docs.docker.com/get-docker/) and run the command again"
    )


def _probe(docker: str) -> tuple[str | None, str]:
    """``(version, "")`` when an engine answers, else ``(None, why)``; raises FileNotFoundError."""
    try:
        proc = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=ENGINE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"no answer within {ENGINE_TIMEOUT_S:g} s"
    version = proc.stdout.strip()
    if proc.returncode == 0 and version:
        return version, ""
    lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    return None, lines[0] if lines else f"exit status {proc.returncode}"


def engine_version(docker: str = "docker") -> str | None:
    """The version of the Docker engine the client talks to, or None.

    Parameters
    ----------
    docker
        The docker client to run (a name on ``PATH`` or a path).

    Returns
    -------
    str or None
        The engine's version (``docker info``'s ``ServerVersion``), or None when the client
        is not installed or no engine answers within :data:`ENGINE_TIMEOUT_S`.

    Examples
    --------
    >>> engine_version("no-such-docker-client") is None
    True
    """
    try:
        return _probe(docker)[0]
    except OSError:
        return None


def require_engine(step: str, docker: str = "docker") -> str:
    """The Docker engine's version; raise when there is no client or no engine.

    Parameters
    ----------
    step
        What needs the engine, for the message, e.g. ``"building the image"``.
    docker
        The docker client to run.

    Returns
    -------
    str
        The engine's version.

    Raises
    ------
    DeployError
        The client is not installed, or no engine answers; the message quotes the first
        line of ``docker info``'s error and says how to start one.

    Examples
    --------
    >>> require_engine("building the image", "no-such-docker-client")
    Traceback (most recent call last):
    ...
    mlcycle.exceptions.DeployError: the Docker client 'no-such-docker-client' is not installed...
    """
    try:
        version, why = _probe(docker)
    except OSError as exc:
        raise _not_installed(docker, step) from exc
    if version is None:
        raise DeployError(
            f"no Docker engine is running (docker info: {why}); {step} needs one. Start "
            "Docker (or set DOCKER_HOST) and run the command again"
        )
    return version


def _tail(lines: collections.deque[str] | list[str]) -> str:
    kept = [line.rstrip() for line in lines if line.strip()]
    if not kept:
        return "docker printed nothing"
    return "docker's last output lines:\n  " + "\n  ".join(kept[-TAIL_LINES:])


def _run(
    argv: list[str], *, step: str, timeout: float, stdin: str | None = None, stream: bool
) -> list[str]:
    """Run docker, return its output lines (stdout and stderr merged); DeployError on failure.

    With ``stream`` the lines are also written to stderr as they come.
    """
    tail: collections.deque[str] = collections.deque(maxlen=200 if not stream else TAIL_LINES)
    lines: list[str] = []
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        raise _not_installed(argv[0], step) from exc
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    watchdog = threading.Timer(timeout, kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        if stdin is not None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass  # docker exited early; its output and status say why
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line)
            if stream:
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                lines.append(line)
        returncode = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if timed_out.is_set():
        raise DeployError(f"{step} did not finish within {timeout:g} s; {_tail(tail)}")
    if returncode != 0:
        raise DeployError(f"{step} failed (docker exit status {returncode}); {_tail(tail)}")
    return lines if not stream else list(tail)


def _supports_provenance(docker: str) -> bool:
    """Whether ``docker build`` is BuildKit's (buildx), which takes ``--provenance``."""
    try:
        proc = subprocess.run(
            [docker, "build", "--help"],
            capture_output=True,
            text=True,
            timeout=ENGINE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--provenance" in proc.stdout + proc.stderr


def build_command(
    context: Path,
    tag: str,
    *,
    platform: str | None = "linux/amd64",
    single_manifest: bool = False,
    docker: str = "docker",
) -> list[str]:
    """The ``docker build`` argument list :func:`build` runs.

    Parameters
    ----------
    context
        The build context folder (with its ``Dockerfile``).
    tag
        The image reference to tag the result with, e.g. ``repo:latest``.
    platform
        The target platform (``linux/amd64``, ``linux/arm64``); None builds for the engine's.
    single_manifest
        Ask BuildKit not to attach provenance attestations (``--provenance=false``), so a
        push stores a single image manifest rather than an image index. AWS Lambda rejects
        image indexes. Only added when this client's ``docker build`` knows the flag.
    docker
        The docker client to run.

    Returns
    -------
    list of str
        The command line.

    Examples
    --------
    >>> build_command(Path("ctx"), "model:1", docker="no-such-docker-client")
    ['no-such-docker-client', 'build', '--platform', 'linux/amd64', '-t', 'model:1', 'ctx']
    """
    argv = [docker, "build"]
    if platform:
        argv += ["--platform", platform]
    if single_manifest and _supports_provenance(docker):
        argv.append("--provenance=false")
    return [*argv, "-t", tag, str(context)]


def build(
    context: Path,
    tag: str,
    *,
    platform: str | None = "linux/amd64",
    single_manifest: bool = False,
    docker: str = "docker",
) -> None:
    """Build the image in ``context`` and tag it, streaming docker's output to stderr.

    Parameters
    ----------
    context
        The build context folder (with its ``Dockerfile``).
    tag
        The image reference to tag the result with.
    platform
        The target platform; None builds for the engine's own.
    single_manifest
        See :func:`build_command`.
    docker
        The docker client to run.

    Raises
    ------
    DeployError
        The client is missing, the build failed or took longer than
        :data:`LONG_TIMEOUT_S`; the message quotes docker's last output lines.
    """
    argv = build_command(
        context, tag, platform=platform, single_manifest=single_manifest, docker=docker
    )
    _run(argv, step=f"building the image {tag} from {context}", timeout=LONG_TIMEOUT_S, stream=True)


def login(registry: str, username: str, password: str, *, docker: str = "docker") -> None:
    """Log the docker client in to ``registry``.

    The password goes to ``docker login --password-stdin``, never into the argument list.

    Parameters
    ----------
    registry
        The registry host, e.g. ``123456789012.dkr.ecr.us-east-1.amazonaws.com``.
    username, password
        The registry credentials (for ECR: ``AWS`` and a token from GetAuthorizationToken).
    docker
        The docker client to run.

    Raises
    ------
    DeployError
        The client is missing or the registry refused the login.
    """
    argv = [docker, "login", "--username", username, "--password-stdin", registry]
    _run(
        argv,
        step=f"logging in to {registry}",
        timeout=SHORT_TIMEOUT_S,
        stdin=password + "\n",
        stream=False,
    )


def push(ref: str, *, docker: str = "docker") -> str:
    """Push ``ref`` to its registry, streaming docker's output to stderr.

    Parameters
    ----------
    ref
        The image reference, e.g. ``123456789012.dkr.ecr.us-east-1.amazonaws.com/model:v1``.
    docker
        The docker client to run.

    Returns
    -------
    str
        The pushed manifest's digest (``sha256:...``) as docker printed it, or ``""`` when
        docker did not print one.

    Raises
    ------
    DeployError
        The client is missing, the push failed or timed out.
    """
    lines = _run([docker, "push", ref], step=f"pushing {ref}", timeout=LONG_TIMEOUT_S, stream=True)
    for line in reversed(lines):
        match = _DIGEST.search(line)
        if match:
            return match.group(1)
    return ""


def tag(source: str, target: str, *, docker: str = "docker") -> None:
    """Tag the local image ``source`` as ``target``.

    Parameters
    ----------
    source, target
        Image references.
    docker
        The docker client to run.

    Raises
    ------
    DeployError
        The client is missing or docker refused (e.g. ``source`` does not exist).
    """
    _run(
        [docker, "tag", source, target],
        step=f"tagging {source} as {target}",
        timeout=SHORT_TIMEOUT_S,
        stream=False,
    )
