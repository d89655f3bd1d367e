"""A small client of a server's admin API (``/admin/rollout``, ``/admin/automation``),
standard library only.

Every call sends ``Authorization: Bearer TOKEN`` and ``X-Admin-User`` (who acts, recorded
with each transition), takes and returns JSON, and turns every failure into a
:class:`RolloutClientError` whose message says what to do: no server at the URL, a token
the server refused, an admin API that is disabled, or the server's own error message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from mlcycle.exceptions import MlcycleError

__all__ = ["DEFAULT_TIMEOUT", "AdminClient", "RolloutClientError"]

#: Seconds a call may take (starting a rollout loads and warms up the challenger).
DEFAULT_TIMEOUT = 30.0


class RolloutClientError(MlcycleError):
    """A call to the admin API failed: no server, a refused token, or the server's error.

    Parameters
    ----------
    message
        What went wrong and what to do.
    status
        The HTTP status the server answered with; ``None`` when it did not answer.
    code
        The server's error code (``conflict``, ``no_rollout``, ...), when it sent one.
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AdminClient:
    """Calls the admin API of the server at ``url``.

    Parameters
    ----------
    url
        The server's base URL, e.g. ``http://127.0.0.1:8080``.
    token
        The admin token (the server's ``MLCYCLE_ADMIN_TOKEN``).
    user
        Who acts, sent as ``X-Admin-User``.
    timeout
        Seconds each call may take.

    Raises
    ------
    RolloutClientError
        ``url`` is not an ``http://`` or ``https://`` URL, or ``token`` is empty.
    """

    def __init__(
        self, url: str, token: str, user: str, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        parsed = urllib.parse.urlsplit(url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise RolloutClientError(
                f"--url {url!r} is not a server URL; give http://HOST:PORT, e.g. "
                "http://127.0.0.1:8080"
            )
        if not token.strip():
            raise RolloutClientError("the admin token is empty")
        self.url = url.strip().rstrip("/")
        self.token = token.strip()
        self.user = user
        self.timeout = timeout

    def get(self, path: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
        """``GET path`` (``query``: parameters; ``None`` values are left out).

        Returns
        -------
        dict
            The JSON document the server answered with.

        Raises
        ------
        RolloutClientError
            The call failed (see the module docstring).
        """
        if query:
            pairs = {k: str(v) for k, v in query.items() if v is not None}
            if pairs:
                path = f"{path}?{urllib.parse.urlencode(pairs)}"
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST path`` with ``body`` as JSON.

        Returns
        -------
        dict
            The JSON document the server answered with.

        Raises
        ------
        RolloutClientError
            The call failed (see the module docstring).
        """
        return self._call("POST", path, body)

    def automation(self) -> dict[str, Any]:
        """The server's live automation mode (``GET /admin/automation``).

        Returns
        -------
        dict
            ``mode``, ``threshold``, ``source`` (``config`` or ``store``), ``revision``,
            ``updated_at``, ``updated_by``, and ``worker`` (the mode the answering worker
            uses).

        Raises
        ------
        RolloutClientError
            The call failed (see the module docstring).
        """
        return self.get("/admin/automation")

    def set_automation(self, mode: str, threshold: float | None = None) -> dict[str, Any]:
        """Set the automation mode, and partial mode's threshold (``None``: keep it).

        Returns
        -------
        dict
            The mode as :meth:`automation` shows it, after the change.

        Raises
        ------
        RolloutClientError
            The call failed: e.g. 422 for an unknown mode or a threshold outside [0, 1],
            409 when the server has no monitoring store.
        """
        body: dict[str, Any] = {"mode": mode}
        if threshold is not None:
            body["threshold"] = threshold
        return self.post("/admin/automation", body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("X-Admin-User", self.user)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                raise self._http_error(exc.code, exc.read()) from None
        except TimeoutError:
            raise RolloutClientError(
                f"the mlcycle server at {self.url} did not answer within {self.timeout:g} s"
            ) from None
        except (urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise RolloutClientError(
                    f"the mlcycle server at {self.url} did not answer within {self.timeout:g} s"
                ) from None
            raise RolloutClientError(
                f"no mlcycle server at {self.url} ({reason}): start one with `mlcycle serve` "
                "or pass --url"
            ) from None
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise RolloutClientError(
                f"{self.url}{path} did not answer with a JSON object; is it an mlcycle server?"
            )
        return doc

    def _http_error(self, status: int, raw: bytes) -> RolloutClientError:
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        message = doc.get("error") if isinstance(doc, dict) else None
        code = doc.get("code") if isinstance(doc, dict) else None
        code = str(code) if code is not None else None
        if status == 401:
            return RolloutClientError(
                f"the server at {self.url} refused the admin token: set MLCYCLE_ADMIN_TOKEN to "
                "the server's token or pass --token-file",
                status,
                code,
            )
        if status == 403 and code != "admin_disabled" and message:
            return RolloutClientError(f"{message} (HTTP 403)", status, code)
        if status == 403:
            return RolloutClientError(
                f"the admin API of the server at {self.url} is disabled: restart it with "
                "MLCYCLE_ADMIN_TOKEN set (or serve.admin.token_file naming a file that holds "
                "the token) to enable it",
                status,
                code,
            )
        if not message:
            text = raw.decode(errors="replace").strip()[:200]
            hint = " (is it an mlcycle server of this version?)" if status == 404 else ""
            return RolloutClientError(
                f"the server at {self.url} answered HTTP {status}{hint}: {text or 'no body'}",
                status,
                code,
            )
        return RolloutClientError(f"{message} (HTTP {status})", status, code)
