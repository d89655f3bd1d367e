"""A stand-in ``docker`` command that records its calls: no Docker engine runs here.

It checks only the command lines mlcycle builds (arguments, what goes on stdin, how the
output is read); behaviour is set with ``FAKE_DOCKER_*`` variables (see the script).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCRIPT = r"""#!{python}
import hashlib, json, os, sys, time

args = sys.argv[1:]
stdin = sys.stdin.read() if args[:1] == ["login"] else ""
with open({log!r}, "a") as f:
    f.write(json.dumps({{"argv": args, "stdin": stdin}}) + "\n")
fail = os.environ.get("FAKE_DOCKER_FAIL", "")
if os.environ.get("FAKE_DOCKER_SLEEP"):
    time.sleep(float(os.environ["FAKE_DOCKER_SLEEP"]))
if args[:1] == ["info"]:
    if fail == "engine":
        print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
              "Is the docker daemon running?", file=sys.stderr)
        sys.exit(1)
    print("27.3.1")
elif args[:2] == ["build", "--help"]:
    print("Usage:  docker build [OPTIONS] PATH | URL | -")
    if os.environ.get("FAKE_DOCKER_BUILDKIT"):
        print("      --provenance string   Shorthand for --attest=type=provenance")
elif args[:1] == ["build"]:
    for i in range(30):
        print(f"#{{i}} [internal] step {{i}}", flush=True)
    if fail == "build":
        print("ERROR: failed to solve: pip install did not complete successfully: exit code: 1",
              file=sys.stderr)
        sys.exit(1)
    print("naming to " + args[args.index("-t") + 1])
elif args[:1] == ["login"]:
    if fail == "login":
        print("Error response from daemon: login attempt failed with status: 401 Unauthorized",
              file=sys.stderr)
        sys.exit(1)
    print("Login Succeeded")
elif args[:1] == ["push"]:
    ref = args[1]
    print(f"The push refers to repository [{{ref.rsplit(':', 1)[0]}}]")
    print("5f70bf18a086: Pushed")
    if fail == "push":
        print("denied: not authorized to perform: ecr:InitiateLayerUpload", file=sys.stderr)
        sys.exit(1)
    if not os.environ.get("FAKE_DOCKER_NO_DIGEST"):
        digest = hashlib.sha256(ref.encode()).hexdigest()
        print(f"{{ref.rsplit(':', 1)[-1]}}: digest: sha256:{{digest}} size: 123")
elif args[:1] == ["tag"]:
    if fail == "tag":
        print(f"Error response from daemon: No such image: {{args[1]}}", file=sys.stderr)
        sys.exit(1)
else:
    print(f"fake docker: unexpected command {{args}}", file=sys.stderr)
    sys.exit(2)
"""


@dataclass(frozen=True)
class FakeDocker:
    """A stand-in ``docker`` executable and the record of its calls."""

    path: Path
    log: Path

    @property
    def exe(self) -> str:
        return str(self.path)

    def calls(self, command: str | None = None) -> list[dict[str, Any]]:
        """The recorded calls (``{"argv": [...], "stdin": "..."}``), of ``command`` only."""
        if not self.log.exists():
            return []
        calls = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [c for c in calls if command is None or c["argv"][:1] == [command]]


def fake_digest(ref: str) -> str:
    """The digest the stand-in prints when it "pushes" ``ref``."""
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()


def fake_docker(folder: Path) -> FakeDocker:
    """Write the stand-in ``docker`` into ``folder``; behaviour set by ``FAKE_DOCKER_*``."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "docker-calls.jsonl"
    path = folder / "docker"
    path.write_text(_SCRIPT.format(python=sys.executable, log=str(log)))
    path.chmod(0o755)
    return FakeDocker(path=path, log=log)
