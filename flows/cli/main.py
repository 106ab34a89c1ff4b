"""The ``archive`` command line. Errors print one line and exit non-zero; never a traceback."""

from __future__ import annotations

import os
import sys

import click
from pydantic import ValidationError

from flows.errors import ArchiveError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="Catalogue URL (default: $ARCHIVE_DB__URL or sqlite:///./archive.db).",
)
@click.option(
    "--output", metavar="URI", help="Output store for derivatives and access copies (file://… or s3://…)."
)
@click.option("--endpoint-url", metavar="URL", help="S3 endpoint (MinIO, Ceph RGW, …).")
@click.pass_context
def cli(ctx: click.Context, db_url: str | None, output: str | None, endpoint_url: str | None) -> None:
    """Digitise and restore historical photographs, with provenance."""
    from flows.settings import Settings

    settings = Settings()
    overrides = {"db": {"url": db_url}, "store": {"output": output, "endpoint_url": endpoint_url}}
    for group, values in overrides.items():
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            setattr(settings, group, getattr(settings, group).model_copy(update=values))
    # Prefect reads its settings when first imported: set them before any flow module loads.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", settings.prefect.logging_level)
    # The in-process (ephemeral) API server migrates its own database on a first start,
    # which takes longer than Prefect's default wait on a 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if settings.prefect.api_url:
        os.environ["PREFECT_API_URL"] = settings.prefect.api_url
    if not os.environ.get("PREFECT_API_URL") and ctx.invoked_subcommand not in (
        None,
        "db",
        "models",
        "collections",
        "export-bag",
    ):
        from flows import watchdog

        watchdog.start()  # no API server given: Prefect starts one in a child process; it must die with us
    ctx.obj = settings


# The group hands itself to each command module (``models`` first: it makes the ``train`` group
# that the stage and style modules extend).
from flows.cli import catalogue, curate, export, files, models, pipeline, stages, styles, upscale  # noqa: E402

for _module in (models, catalogue, pipeline, curate, files, stages, styles, upscale, export):
    _module.register(cli)


def main(argv: list[str] | None = None) -> int:
    try:
        code = cli.main(args=argv, prog_name="archive", standalone_mode=False)
    except click.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except ArchiveError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        click.echo(f"error: invalid setting {where}: {first['msg']}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    except Exception as exc:
        if os.environ.get("ARCHIVE_DEBUG"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(
            f"error: unexpected {type(exc).__name__}: {msg} (set ARCHIVE_DEBUG=1 for a traceback)", err=True
        )
        return 1
    return code if isinstance(code, int) else 0


def run() -> None:  # pragma: no cover - console-script shim
    sys.exit(main())
