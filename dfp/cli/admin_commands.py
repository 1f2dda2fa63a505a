"""`dfp admin ...`: administration with object store credentials (DFP_S3_*), not over the API."""

from __future__ import annotations

import pathlib

import click

from dfp.cli.output import emit, note


@click.group()
def admin() -> None:
    """Administer the platform: API tokens, team quotas, the audit log."""


@admin.group()
def token() -> None:
    """Create, list and revoke API tokens (each belongs to one team)."""


def _tokens():
    from dfp.cli.offline_commands import store_from_env
    from dfp.tokens import TokenStore

    return TokenStore(store_from_env())


@token.command("create")
@click.option("--team", required=True, help="Team the token acts for (lowercase letters, digits, '-').")
@click.option("--name", required=True, help="Who or what uses it, for the audit trail.")
@click.option("--json", "as_json", is_flag=True)
def create_command(team, name, as_json):
    """Create a token; it is printed once and cannot be shown again.

    \b
    Example:
      export DFP_TOKEN=$(dfp admin token create --team research --name "batch jobs")
    """
    token_id, secret = _tokens().create(team, name)
    emit({"id": token_id, "team": team, "name": name, "token": secret}, as_json, secret)
    note(f"token {token_id} for team {team}: keep it now, it cannot be shown again")


@token.command("list")
@click.option("--team", default=None, help="Only this team's tokens.")
@click.option("--json", "as_json", is_flag=True)
def list_command(team, as_json):
    """List tokens (ids, teams, names, times; never the secrets)."""
    records = _tokens().list(team)
    if as_json:
        emit(records, True)
        return
    for record in records:
        state = f"revoked {record['revoked']}" if record["revoked"] else "active"
        click.echo(f"{record['id']}  {record['team']:<20} {state:<40} {record['name']}")


@token.command("revoke")
@click.argument("token_id")
@click.option("--json", "as_json", is_flag=True)
def revoke_command(token_id, as_json):
    """Revoke a token by id; calls with it are refused within the gateway's cache time (DFP_AUTH_CACHE_S)."""
    record = _tokens().revoke(token_id)
    emit({k: v for k, v in record.items() if k != "sha256"}, as_json, f"{token_id} revoked at {record['revoked']}")


@admin.group()
def quota() -> None:
    """Show and set a team's quotas (defaults: DFP_QUOTA_* on the gateway)."""


def _quotas():
    from dfp.cli.offline_commands import store_from_env
    from dfp.quotas import QuotaStore

    return QuotaStore(store_from_env())


@quota.command("get")
@click.option("--team", required=True)
def quota_get_command(team):
    """Print a team's quotas as JSON (its overrides over the defaults of this machine's DFP_QUOTA_*)."""
    import dataclasses

    emit(dataclasses.asdict(_quotas().get(team)), True)


@quota.command("set")
@click.option("--team", required=True)
@click.option("--requests-per-minute", type=click.FloatRange(0), default=None, help="Calls per minute, per gateway.")
@click.option("--concurrent-jobs", type=click.IntRange(0), default=None, help="Jobs queued or running at once.")
@click.option("--stored-gb", type=click.FloatRange(0), default=None, help="Media the team may keep, in GiB.")
def quota_set_command(team, requests_per_minute, concurrent_jobs, stored_gb):
    """Override some of a team's quotas; gateways apply them within DFP_AUTH_CACHE_S.

    \b
    Example:
      dfp admin quota set --team research --concurrent-jobs 20 --stored-gb 500
    """
    import dataclasses

    stored = None if stored_gb is None else int(stored_gb * 1024**3)
    updated = _quotas().set(team, requests_per_minute=requests_per_minute, concurrent_jobs=concurrent_jobs,
                            stored_bytes=stored)
    emit(dataclasses.asdict(updated), True)


@admin.command("audit")
@click.option("--team", required=True, help="Whose events.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day (UTC), YYYY-MM-DD.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day (UTC), YYYY-MM-DD.")
@click.option("--action", default="", help="Only this RPC, for example DownloadMedia.")
@click.option("--resource", default="", help="Only events naming this resource, for example media/abc...")
@click.option("--json", "as_json", is_flag=True)
def audit_command(team, since, until, action, resource, as_json):
    """Who did what to which media, job or model, and when (one line per event, oldest first).

    \b
    Examples:
      dfp admin audit --team research --since 2026-11-01 --action DownloadMedia
      dfp admin audit --team research --resource media/abc... --json
    """
    from dfp.audit import AuditLog
    from dfp.cli.offline_commands import store_from_env

    events = AuditLog(store_from_env()).events(team, since.date() if since else None, until.date() if until else None,
                                               action, resource)
    for event in events:
        if as_json:
            emit(event, True)
        else:
            click.echo(f"{event['time']}  {event['token_name']} ({event['token_id']})  {event['action']}  "
                       f"{event['outcome']}  {' '.join(event['resources'])}")


@admin.command("c2pa-identity")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=pathlib.Path),
              help="Folder for ca.pem, signer-chain.pem and signer-key.pem.")
@click.option("--organisation", default="dfp", show_default=True, help="Organisation named in the certificates.")
@click.option("--days", type=click.IntRange(1, 3650), default=730, show_default=True)
def c2pa_identity_command(out, organisation, days):
    """Make a private CA and a C2PA signer (ES256) for the gateway's Content Credentials.

    Give the gateway DFP_C2PA_CERT=signer-chain.pem and DFP_C2PA_KEY=signer-key.pem (in the chart: the
    Secret named by gateway.contentCredentials.secretName), and readers DFP_C2PA_TRUST_ANCHORS=ca.pem.
    A certificate from a C2PA-trusted authority replaces this where outside readers must trust it.

    \b
    Example:
      dfp admin c2pa-identity --out secrets/c2pa --organisation "Example Research"
    """
    from dfp.content_credentials import create_identity

    for role, path in create_identity(out, organisation, days).items():
        click.echo(f"{role}: {path}")


@admin.command("mtls")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=pathlib.Path),
              help="Folder for ca.crt, tls.crt and tls.key.")
@click.option("--name", "names", multiple=True, required=True,
              help="A DNS name (or IP address) the services are called by; repeatable.")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
def mtls_command(out, names, days):
    """Make a CA and a certificate for mutual TLS between the platform's services.

    The one certificate serves every name given and is also the gateway's client certificate. In the
    chart: `kubectl create secret generic dfp-mtls --from-file=OUT/ca.crt --from-file=OUT/tls.crt
    --from-file=OUT/tls.key` and `--set internalTls.secretName=dfp-mtls`. Elsewhere: DFP_MTLS_CA,
    DFP_MTLS_CERT, DFP_MTLS_KEY.

    \b
    Example:
      dfp admin mtls --out secrets/mtls --name dfp-detector --name dfp-enhancer
    """
    from dfp.pki import create_mtls

    for role, path in create_mtls(out, list(names), days=days).items():
        click.echo(f"{role}: {path}")


def register(cli: click.Group) -> None:
    cli.add_command(admin)
