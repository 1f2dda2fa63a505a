"""`dfp dev up`: the whole platform on this machine, in the foreground, until Ctrl-C."""

from __future__ import annotations

import json
import pathlib
import signal

import click

from dfp.cli.output import note

DEFAULT_WORKDIR = pathlib.Path(".run") / "dev"


@click.group()
def dev() -> None:
    """Run the platform locally for development and for other teams' clients."""


@dev.command("up")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=pathlib.Path), default=DEFAULT_WORKDIR,
              show_default=True, help="Where the servers keep their data and logs; emptied at start.")
@click.option("--port", type=int, default=50051, show_default=True,
              help="The gateway's port on 127.0.0.1 (0: any free port).")
@click.option("--no-creator", is_flag=True,
              help="Leave out TorchServe and the creator (faster start; creation jobs answer UNAVAILABLE).")
def up_command(workdir, port, no_creator):
    """Start S3, the detector model server, TorchServe, the enhancer and the gateway; stay up.

    Prints the gateway's address and an API token of team `default`, as shell exports, on stdout;
    writes the process ids to WORKDIR/stack.json. Ctrl-C (or SIGTERM) stops every process.
    The data lives in WORKDIR only while the stack is up: each start begins empty.

    \b
    Examples:
      dfp dev up
      dfp dev up --port 0 --no-creator
    """
    import shutil

    from dfp.devstack import LocalStack
    from services.creator import default_model
    from services.detector.export import export_platform_models

    workdir = workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    models = workdir / "models"
    note("exporting the detector models ...")
    export_platform_models(models)
    signal.signal(signal.SIGTERM, _interrupt)
    note("starting S3 (SeaweedFS), the model server, " + ("" if no_creator else "TorchServe, ")
         + "the enhancer and the gateway on 127.0.0.1 ...")
    animation_model = None if no_creator else (default_model.CONFIG, default_model.CHECKPOINT)
    stack = LocalStack(workdir / "stack", models, animation_model=animation_model, gateway_port=port or None)
    try:
        stack.start()
        (workdir / "stack.json").write_text(json.dumps(
            {"gateway": stack.gateway_target, "pids": stack.pids(), "logs": str(stack.workdir)}, indent=2))
        click.echo(f"export DFP_GATEWAY={stack.gateway_target}")
        click.echo(f"export DFP_TOKEN={stack.token}")
        note(f"the platform is up: gateway {stack.gateway_target} (gRPC, plaintext; send the token as "
             f"'authorization: Bearer TOKEN'); logs in {stack.workdir}; Ctrl-C stops it")
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        note("stopping ...")
        stack.stop()
    note("stopped")


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def register(cli: click.Group) -> None:
    cli.add_command(dev)
