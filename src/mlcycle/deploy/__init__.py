"""Deployment targets: ``mlcycle deploy docker | lambda | web``.

Each target turns one bundle (a folder, or a registry reference resolved by
:func:`mlcycle.serve_commands.resolve_model`) into something that runs elsewhere:

:mod:`mlcycle.deploy.context`
    Build contexts: a slim, non-root server image (``Dockerfile``, ``requirements.txt``
    with only the serving dependencies, the bundle, the mlcycle package) and an AWS
    Lambda container image (``awslambdaric`` as entry, the handler
    :func:`mlcycle.serve.lambda_handler.handler`).
:mod:`mlcycle.deploy.docker_cli`
    The Docker client calls (engine check, build, login, tag, push) made through the
    ``docker`` command, with clear errors when no engine runs.
:mod:`mlcycle.deploy.aws_lambda`
    The AWS steps of a Lambda deployment with boto3 (ECR repository, login, push, create
    or update the function, wait until active, function URL), each failure naming its step.
:mod:`mlcycle.deploy.web`
    A static site that runs the model in the browser with onnxruntime-web.
:mod:`mlcycle.deploy.command`
    The ``mlcycle deploy`` command line.
"""
