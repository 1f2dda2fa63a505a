"""`dfp`: the platform's command line.

Top-level verbs (upload, detect, jobs, media) call the gateway (DFP_GATEWAY, default
127.0.0.1:50051) with the API token in DFP_TOKEN. The groups `detector`, `creator`, `enhancer`, `swap`
and `models` work offline, without any server; `admin` talks to the object store (DFP_S3_*).

Exit status: 0 on success, 1 on errors (printed as `Error: CODE: message`), 2 on usage errors.
Set DFP_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import os
import sys

import click

from dfp.cli import (admin_commands, batch_commands, creator_commands, dev_commands, enhancer_commands,
                     gateway_commands, offline_commands, provenance_commands, redteam_commands, swap_commands)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dfp")
def cli() -> None:
    """Create, enhance and detect face deepfakes.

    \b
    Examples:
      dfp upload interview.mp4
      dfp detect portrait.jpg
      dfp detect interview.mp4 --json
      dfp jobs list
      dfp detector score --no-face-crop crop.jpg
      dfp models pull mesonet
    """


gateway_commands.register(cli)
offline_commands.register(cli)
creator_commands.register(cli)
enhancer_commands.register(cli)
swap_commands.register(cli)
admin_commands.register(cli)
batch_commands.register(cli)
provenance_commands.register(cli)
redteam_commands.register(cli)
dev_commands.register(cli)


def main() -> None:
    from dfp.client import ApiError

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except ApiError as exc:
        if os.environ.get("DFP_DEBUG") == "1":
            raise
        click.echo(f"Error: {exc.code.name}: {exc.message}", err=True)
        sys.exit(1)
    except (OSError, ValueError) as exc:
        if os.environ.get("DFP_DEBUG") == "1":
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
