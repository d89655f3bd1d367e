"""Checks and error messages of the AWS steps of a Lambda deployment.

:func:`validate_names` and :func:`validate_settings` reject a bad ECR repository name,
function name, region, role, image URI or setting before any AWS call, naming the value, the
rule and an example. :func:`translate` turns one botocore exception into a message that
names the step that failed, what AWS said and what to do. :class:`Progress` keeps the
record of what a deployment has done so far, so that every error also says what exists now
("done so far: ECR repository 'm' created; nothing was changed in Lambda") and nothing is
left half-deployed without saying so.

botocore is imported lazily (it comes with mlcycle's ``s3`` extra).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from mlcycle._optional import require
from mlcycle.exceptions import DeployError

__all__ = [
    "ECR_IMAGE",
    "MAX_RETRIES",
    "PLATFORMS",
    "Progress",
    "no_credentials_message",
    "translate",
    "validate_names",
    "validate_settings",
]

#: Retries (after the first attempt) of botocore's "standard" retry mode on each call.
MAX_RETRIES = 5

DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})
#: Codes that mean the credentials themselves were not accepted (``ExpiredToken*`` too).
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    }
)
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "Throttling", "RequestLimitExceeded"}
)
INVALID_CODES = frozenset({"InvalidParameterException", "InvalidParameterValueException"})

# Some endpoints (moto_server's IAM checks, proxies) answer a JSON-protocol call with an XML
# error body; botocore then reports the HTTP status as the code and the XML as the message.
_XML_CODE = re.compile(r"<Code>([^<]+)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")

#: Lambda architecture -> the Docker platform its image is built for.
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
URL_AUTH_TYPES = ("AWS_IAM", "NONE")

_REPOSITORY = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
_FUNCTION = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_FUNCTION_ARN = re.compile(
    r"arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):\d{12}:function:[a-zA-Z0-9_-]{1,64}"
)
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ROLE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_ENV_KEY = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*")
#: An image in ECR: ``<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag][@digest]``.
ECR_IMAGE = re.compile(
    r"(?P<registry>\d{12}\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?)/"
    r"(?P<repository>[a-z0-9._/-]+?)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)


def _invalid(what: str, value: object, rule: str, example: str) -> DeployError:
    return DeployError(f"{what} {value!r} is not valid: {rule}; for example {example}")


def validate_names(
    *,
    function: str,
    repository: str,
    region: str,
    role: str | None = None,
    image_uri: str | None = None,
    tag: str = "latest",
) -> None:
    """Check the names of a Lambda deployment before any AWS call.

    Parameters
    ----------
    function, repository, region, role, image_uri, tag
        As for :func:`mlcycle.deploy.aws_lambda.deploy_lambda`.

    Raises
    ------
    DeployError
        A value breaks its AWS naming rule; the message names the value, the rule and an
        example.

    Examples
    --------
    >>> validate_names(function="churn", repository="Bad_Name!", region="us-east-1")
    Traceback (most recent call last):
    ...
    mlcycle.exceptions.DeployError: ECR repository name 'Bad_Name!' is not valid: ...
    """
    if not (2 <= len(repository) <= 256 and _REPOSITORY.fullmatch(repository)):
        raise _invalid(
            "ECR repository name",
            repository,
            "2-256 characters, lowercase letters, digits and . _ - separators, "
            "optionally with /-separated namespaces",
            "'mlcycle/churn-model'",
        )
    if not _REGION.fullmatch(region):
        raise _invalid("AWS region", region, "a region code", "'us-east-1' or 'eu-central-1'")
    arn = _FUNCTION_ARN.fullmatch(function)
    if not (_FUNCTION.fullmatch(function) or arn):
        raise _invalid(
            "Lambda function name",
            function,
            "1-64 letters, digits, - and _ (or a function ARN)",
            "'churn-model'",
        )
    if arn and arn["region"] != region:
        raise DeployError(
            f"the function ARN {function!r} is in {arn['region']}, not in the region "
            f"{region!r}; use --region {arn['region']} or the function's name"
        )
    if role is not None and not _ROLE.fullmatch(role):
        raise _invalid(
            "IAM role", role, "a role ARN", "'arn:aws:iam::123456789012:role/mlcycle-lambda'"
        )
    if not _TAG.fullmatch(tag):
        raise _invalid(
            "image tag", tag, "1-128 letters, digits, _ . - (not starting with . or -)", "'v3'"
        )
    if image_uri is not None:
        ref = ECR_IMAGE.fullmatch(image_uri)
        if not ref or not (ref["tag"] or ref["digest"]):
            raise _invalid(
                "image URI",
                image_uri,
                "Lambda runs images from ECR only, given by tag or digest",
                "'123456789012.dkr.ecr.us-east-1.amazonaws.com/churn:v3'",
            )
        if ref["region"] != region:
            raise DeployError(
                f"the image {image_uri!r} is in ECR in {ref['region']}, but Lambda pulls "
                f"images only from ECR in the function's region {region!r}; push it there"
            )


def validate_settings(
    *,
    memory_mb: int,
    timeout_s: int,
    architecture: str,
    environment: Mapping[str, str] | None,
    url_auth: str,
    wait_seconds: float,
) -> None:
    """Check the function settings of a Lambda deployment before any AWS call.

    Parameters
    ----------
    memory_mb, timeout_s, architecture, environment, url_auth, wait_seconds
        As for :func:`mlcycle.deploy.aws_lambda.deploy_lambda`.

    Raises
    ------
    DeployError
        A value is out of Lambda's range; the message names it, the rule and an example.

    Examples
    --------
    >>> validate_settings(memory_mb=64, timeout_s=30, architecture="x86_64",
    ...                   environment=None, url_auth="NONE", wait_seconds=60)
    Traceback (most recent call last):
    ...
    mlcycle.exceptions.DeployError: memory (MB) 64 is not valid: an integer from 128 to 10240...
    """
    if not 128 <= memory_mb <= 10240:
        raise _invalid("memory (MB)", memory_mb, "an integer from 128 to 10240", "1024")
    if not 1 <= timeout_s <= 900:
        raise _invalid("timeout (s)", timeout_s, "an integer from 1 to 900", "30")
    if architecture not in PLATFORMS:
        raise _invalid("architecture", architecture, "x86_64 or arm64", "'x86_64'")
    if url_auth not in URL_AUTH_TYPES:
        raise _invalid("function URL auth type", url_auth, "AWS_IAM or NONE", "'AWS_IAM'")
    if not wait_seconds > 0:
        raise _invalid("wait time (s)", wait_seconds, "a positive number", "300")
    for key in environment or {}:
        if not _ENV_KEY.fullmatch(key):
            raise _invalid(
                "environment variable name", key, "a letter, then letters, digits, _", "'LOG'"
            )


def no_credentials_message(step: str, detail: str = "") -> str:
    """The message for missing (or incomplete) AWS credentials.

    Examples
    --------
    >>> no_credentials_message("creating the ECR repository").split(":")[0]
    'no AWS credentials found for creating the ECR repository'
    """
    found = f" ({detail})" if detail else ""
    return (
        f"no AWS credentials found for {step}{found}: set AWS_PROFILE, or "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure` / `aws sso login`"
    )


def _client_error_fields(exc: Any) -> tuple[str, str, int, int | None]:
    """``(code, message, http_status, retry_attempts)`` of a botocore ClientError."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    meta = response.get("ResponseMetadata", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", ""))
    status = int(meta.get("HTTPStatusCode") or (code if code.isdigit() else 0))
    retries = meta.get("RetryAttempts")
    xml_code = _XML_CODE.search(message)
    if xml_code:
        xml_message = _XML_MESSAGE.search(message)
        code, message = xml_code.group(1), xml_message.group(1) if xml_message else ""
    return code, message, status, retries if isinstance(retries, int) else None


def translate(
    exc: BaseException, *, step: str, actions: Sequence[str] = (), done: str = ""
) -> DeployError:
    """A :class:`DeployError` for the botocore exception ``exc`` raised during ``step``.

    Parameters
    ----------
    exc
        A botocore exception (``ClientError`` or a ``BotoCoreError``).
    step
        What was being done, e.g. ``"creating the ECR repository 'm'"``.
    actions
        The IAM actions the step needs, named in an access-denied message.
    done
        What the deployment did before (see :meth:`Progress.summary`), appended.

    Returns
    -------
    DeployError
        The error to raise (``from exc``).

    Examples
    --------
    >>> from botocore.exceptions import NoCredentialsError
    >>> str(translate(NoCredentialsError(), step="reading the function")).split(":")[0]
    'no AWS credentials found for reading the function'
    """
    errors = require("botocore.exceptions", "s3")
    tail = f"; {done}" if done else ""
    if isinstance(exc, errors.NoCredentialsError):
        return DeployError(no_credentials_message(step) + tail)
    if isinstance(exc, errors.PartialCredentialsError):
        return DeployError(no_credentials_message(step, f"incomplete: {exc}") + tail)
    if isinstance(exc, errors.EndpointConnectionError | errors.ConnectTimeoutError):
        url = getattr(exc, "kwargs", {}).get("endpoint_url", "?")
        return DeployError(
            f"cannot reach the AWS endpoint {url} for {step}: check the network, the region, "
            f"and AWS_ENDPOINT_URL if it is set ({exc}){tail}"
        )
    if isinstance(exc, errors.ReadTimeoutError):
        url = getattr(exc, "kwargs", {}).get("endpoint_url", "?")
        return DeployError(
            f"the AWS endpoint {url} did not answer in time for {step}; run the command "
            f"again (it is safe to re-run: every step checks what exists){tail}"
        )
    if not isinstance(exc, errors.ClientError):
        return DeployError(f"{step} failed: {exc}{tail}")
    code, message, status, retries = _client_error_fields(exc)
    said = f"{code}: {message}" if message else code
    if code in CREDENTIAL_CODES or code.startswith("ExpiredToken"):
        return DeployError(
            f"AWS denied {step} ({said}): the credentials are invalid or expired; refresh "
            f"them (`aws sso login`, `aws configure`) or use another profile{tail}"
        )
    if code in DENIED_CODES or status == 403:
        needs = ", ".join(actions) if actions else "the permissions this step needs"
        return DeployError(
            f"AWS denied {step} ({said}): give the caller {needs} or use another profile{tail}"
        )
    if code in THROTTLING_CODES:
        count = MAX_RETRIES if retries is None else retries
        return DeployError(
            f"AWS throttled {step} after {count} retries ({said}); wait and run the command "
            f"again (it is safe to re-run: every step checks what exists){tail}"
        )
    if code in INVALID_CODES:
        return DeployError(f"AWS refused {step}: {message or code}{tail}")
    return DeployError(f"{step} failed ({said}){tail}")


class Progress:
    """What a deployment has done so far, in order; each entry is also logged.

    Parameters
    ----------
    log
        Called with each line: what was done, and notes such as "waiting ...".

    Examples
    --------
    >>> p = Progress(log=lambda line: None)
    >>> p.summary()
    'done so far: nothing (no AWS resource was created or changed)'
    >>> p.record("ECR repository 'm' created")
    >>> p.summary()
    "done so far: ECR repository 'm' created; nothing was changed in Lambda"
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self.done: list[str] = []
        self.lambda_changed = False

    def record(self, what: str, *, lambda_change: bool = False) -> None:
        """Log ``what`` and add it to the record; ``lambda_change`` if it changed Lambda."""
        self.done.append(what)
        self.lambda_changed = self.lambda_changed or lambda_change
        self._log(what)

    def note(self, line: str) -> None:
        """Log ``line`` without adding it to the record."""
        self._log(line)

    def summary(self) -> str:
        """The "done so far: ..." part of error messages."""
        if not self.done:
            return "done so far: nothing (no AWS resource was created or changed)"
        lam = "" if self.lambda_changed else "; nothing was changed in Lambda"
        return "done so far: " + "; ".join(self.done) + lam

    def fail(self, message: str, *, then: str = "") -> DeployError:
        """A DeployError with ``message``, the summary, and ``then`` (what to do) after it."""
        return DeployError(f"{message}; {self.summary()}" + (f".\n{then}" if then else ""))

    @contextmanager
    def step(self, name: str, actions: Sequence[str] = ()) -> Iterator[None]:
        """Run AWS calls of the step ``name``; botocore errors become DeployErrors."""
        errors = require("botocore.exceptions", "s3")
        try:
            yield
        except (errors.BotoCoreError, errors.ClientError) as exc:
            raise translate(exc, step=name, actions=actions, done=self.summary()) from exc
