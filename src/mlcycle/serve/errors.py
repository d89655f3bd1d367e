"""The one error type of the request path, and its JSON body.

Every problem with a request raises :class:`RequestError` with an HTTP status, a short
machine-readable ``code``, a message that says what was wrong and how to fix it, and the
``field`` it concerns (a JSON path such as ``records[3].mean radius``, a header, or
``body``). The HTTP app, the Lambda handler and the batch path all turn it into the same
JSON document::

    {"error": "<message>", "code": "<code>", "field": "<field>"}

``error`` is a string so that Open Inference Protocol clients (which read ``error``)
show the message as it is.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RequestError",
    "body_too_large",
    "caller_request_id",
    "check_encoding",
    "error_body",
]


class RequestError(Exception):
    """A request the server cannot answer, and the status to answer it with.

    Parameters
    ----------
    status
        HTTP status: 400 malformed, 404 unknown model, 405, 413 too large, 415 wrong
        content type, 422 does not match the model's signature, 503 not ready.
    code
        Short identifier, e.g. ``missing_feature``.
    message
        What was wrong and how to fix it.
    field
        Where in the request, e.g. ``records[0].age``, ``body``, ``Content-Type``.
    """

    def __init__(self, status: int, code: str, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body."""
        return error_body(self.message, self.code, self.field)


def error_body(message: str, code: str, field: str | None = None) -> dict[str, Any]:
    """A JSON error document: ``{"error": message, "code": code, "field": field}``.

    Examples
    --------
    >>> error_body("body is empty", "empty_body", "body")
    {'error': 'body is empty', 'code': 'empty_body', 'field': 'body'}
    """
    body: dict[str, Any] = {"error": message, "code": code}
    if field is not None:
        body["field"] = field
    return body


def body_too_large(size: int, limit: int) -> RequestError:
    """The 413 for a body of ``size`` bytes (or more) over ``limit``."""
    return RequestError(
        413,
        "body_too_large",
        f"the body has {size} bytes or more; the limit is {limit} "
        "(serve.validation.max_body_bytes): split the batch",
        "body",
    )


def caller_request_id(value: str | None) -> str | None:
    """The caller's ``X-Request-ID`` if it is usable (printable, at most 200 characters).

    Examples
    --------
    >>> caller_request_id("order-42"), caller_request_id("x" * 201), caller_request_id(None)
    ('order-42', None, None)
    """
    if value and len(value) <= 200 and value.isprintable():
        return value
    return None


def check_encoding(value: str | None) -> None:
    """Raise a 415 unless the ``Content-Encoding`` header is absent or ``identity``.

    Compressed bodies are refused rather than inflated: a small gzip body can expand past
    any size limit.
    """
    encoding = (value or "identity").strip().lower()
    if encoding not in ("identity", ""):
        raise RequestError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding} is not supported; send the body uncompressed",
            "Content-Encoding",
        )
