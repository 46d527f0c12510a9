"""The `doormail` command: each subcommand a thin call into the service's parts."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from doormail import settings as model
from doormail import terminal
from doormail.accounts import ADMIN, DEFAULT_SCOPE, TokenError
from doormail.app import DEFAULT_LISTEN, Paths, Runner, Service, build_service
from doormail.applytest import TestRun
from doormail.events import TYPES
from doormail.firststart import FirstStartError
from doormail.logs import LogFormat, LogLevel, configure
from doormail.outbox import OutboxError
from doormail.sources.command_line import event_body
from doormail.sources.command_line import help_text as event_help
from doormail.store.installation import NotInstalled, describe, require_installation
from doormail.web import https
from doormail.web.https import HttpsError, ServerCertificate, is_loopback

cli = typer.Typer(
    help="E-mail notifications for door stations and IP intercoms.", no_args_is_help=True
)
config_cli = typer.Typer(help="The whole configuration as JSON (secrets left out of exports).")
token_cli = typer.Typer(
    help="API tokens (Authorization: Bearer TOKEN): scope events for door stations, admin for all."
)
cli.add_typer(config_cli, name="config")
cli.add_typer(token_cli, name="token")
users_cli = typer.Typer(
    help="The users list as CSV: id,name,email,numbers,cards,bluetooth,fingerprints."
)
cli.add_typer(users_cli, name="users")
admin_cli = typer.Typer(help="The admin account: a way back in when its password is lost.")
cli.add_typer(admin_cli, name="admin")
# A typed admin password shorter than this is refused (a generated one has 16 characters).
MIN_PASSWORD = 8

console = Console()
errors = Console(stderr=True)

DataOption = Annotated[
    str | None,
    typer.Option("--data", help="data folder (default ./doormail-data or $DOORMAIL_DATA)"),
]
LogLevelOption = Annotated[
    LogLevel,
    typer.Option(
        "--log-level", help="debug (every camera and source request), info, warning or error"
    ),
]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option("--log-format", help="text, or json (one object a line) for log collectors"),
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database", help="database URL (default SQLite in the data folder)")
]


def _service(data: str | None, database: str | None = None) -> Service:
    """The existing installation a command works on, named on stderr (stdout stays the
    command's output, e.g. CSV); a clear stop when there is none, never a new empty one."""
    return build_service(_installation(data, database))


def _installation(data: str | None, database: str | None) -> Paths:
    paths = Paths.resolve(data, database)
    try:
        require_installation(paths.data_dir, paths.database_url)
    except NotInstalled as error:
        raise _fail(escape(str(error))) from None
    where = describe(paths.data_dir, paths.database_url)
    errors.print(f"doormail: {where}", markup=False, highlight=False, soft_wrap=True)
    return paths


def _fail(message: str) -> typer.Exit:
    # Not wrapped: a path or fingerprint in the message stays whole.
    errors.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(1)


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 hosts in brackets) as a (host, port) pair."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@cli.command()
def serve(
    data: DataOption = None,
    listen: Annotated[
        str | None, typer.Option("--listen", help="HOST:PORT (default 127.0.0.1:8480)")
    ] = None,
    database: DatabaseOption = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="reverse proxies (comma-separated addresses or networks, or *) whose"
            " X-Forwarded-For and X-Forwarded-Proto are believed; without it they are ignored",
        ),
    ] = None,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="HTTPS with a self-signed certificate made on first start in the data folder"
            " (its SHA-256 fingerprint is printed); use it on any address but the loopback",
        ),
    ] = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="HTTPS with this PEM certificate (chain) instead"),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="the unencrypted private key of --tls-cert")
    ] = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Run the HTTP API, the web UI and the delivery worker in one process."""
    import uvicorn

    from doormail.web.app import create_app

    configure(log_level, log_format)
    try:
        host, port = parse_listen(listen or os.environ.get("DOORMAIL_LISTEN") or DEFAULT_LISTEN)
    except ValueError as error:
        raise _fail(str(error)) from None
    try:
        service = build_service(Paths.resolve(data, database), first_start_apart=True)
    except FirstStartError as error:
        raise _fail(str(error)) from None
    try:
        certificate = _server_certificate(service.paths.data_dir, host, tls, tls_cert, tls_key)
    except HttpsError as error:
        raise _fail(escape(str(error))) from None
    _admin_account(service, os.environ.get("DOORMAIL_ADMIN_PASSWORD"))
    scheme = "https" if certificate else "http"
    where = f"[{host}]" if ":" in host else host
    console.print(
        f"doormail listening on {scheme}://{where}:{port}/"
        f" ({describe(service.paths.data_dir, service.paths.database_url)})",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    if certificate is not None:
        made = "made a self-signed HTTPS certificate; its" if certificate.made else "HTTPS"
        # Plain text: browsers show the fingerprint in this form for comparing.
        print(f"{made} SHA-256 fingerprint: {certificate.fingerprint}")
    elif not is_loopback(host):
        logging.getLogger("doormail").warning(
            "listening on %s without TLS: the admin password, tokens and the session cookie "
            "cross the network readable by anyone on the way; start with --tls (or "
            "--tls-cert/--tls-key), or listen on 127.0.0.1 behind a proxy that speaks HTTPS",
            host,
        )
    sys.stdout.flush()
    _freeze_what_startup_made()
    # Failed logins are counted per client address: a forwarded address is taken only from a
    # proxy the installer named, or anyone could reset their count by sending the header.
    uvicorn.run(
        create_app(service),
        host=host,
        port=port,
        # uvicorn's lines go through the log configured above (its format, JSON too).
        log_config=None,
        log_level="debug" if log_level == "debug" else "warning",
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        ssl_certfile=certificate.certificate if certificate else None,
        ssl_keyfile=certificate.key if certificate else None,
    )


def _admin_account(service: Service, given: str | None) -> None:
    """Create the admin account at first start; a $DOORMAIL_ADMIN_PASSWORD that no longer
    matches (it counts at first start only) is reported, never silently ignored."""
    generated = service.accounts.ensure_admin(given)
    if generated:
        # A line of its own, not wrapped, so that it can be copied whole.
        print("Created the admin account 'admin'. Its password, shown only this once:")
        print(generated)
    elif given and not service.accounts.check_password(ADMIN, given):
        logging.getLogger("doormail").warning(
            "$DOORMAIL_ADMIN_PASSWORD differs from the admin password stored in %s and is not"
            " used (it counts at the first start only); set a new password with"
            " `doormail admin password`",
            service.paths.data_dir.resolve(),
        )


@admin_cli.command("password")
def admin_password(
    generate: Annotated[
        bool, typer.Option("--generate", help="generate a password and print it instead")
    ] = False,
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    """Set a new admin password (typed twice, or generated and printed): the way back in for
    whoever has the data folder. Every session of the admin ends."""
    service = _service(data, database)
    typed = None
    if not generate:
        typed = typer.prompt(
            "New admin password (empty: generate one)",
            default="",
            show_default=False,
            hide_input=True,
            confirmation_prompt=True,
        )
        if typed and len(typed) < MIN_PASSWORD:
            raise _fail(f"the password must have at least {MIN_PASSWORD} characters")
    generated = service.accounts.reset_admin(typed or None)
    if generated:
        print("The admin's new password, shown only this once:")
        print(generated)
    else:
        console.print("The admin password was changed.")
    console.print("Every session of the admin has ended; log in again as 'admin'.")


@cli.command()
def worker(
    data: DataOption = None,
    database: DatabaseOption = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Run the delivery worker alone (no HTTP), beside `doormail serve` on the same database
    (on PostgreSQL, as many as you like); it stops on SIGTERM or Ctrl-C."""
    configure(log_level, log_format)
    try:
        service = build_service(_installation(data, database), first_start_apart=True)
    except FirstStartError as error:
        raise _fail(str(error)) from None
    where = service.engine.url.render_as_string(hide_password=True)
    console.print(
        f"doormail worker delivering from {where} (data: {service.paths.data_dir.resolve()})",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    sys.stdout.flush()
    _freeze_what_startup_made()
    asyncio.run(_until_stopped(service.worker.run))


def _freeze_what_startup_made() -> None:
    """Take what starting up made (modules, the app, the parts) out of the garbage collector's
    full collections: it lives as long as the process, and scanning its ~150,000 objects paused
    the whole service for 60 to 100 ms each time, every ten seconds or so at 50 events/s
    (`gc.freeze` is the interpreter's own means; full collections then take about 1 ms)."""
    gc.collect()
    gc.freeze()


async def _until_stopped(run: Runner) -> None:
    """Run `run` until SIGTERM or SIGINT cancels it (it saves what it was doing on the way out)."""
    task = asyncio.create_task(run())
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _server_certificate(
    data_dir: Path, host: str, tls: bool, cert: Path | None, key: Path | None
) -> ServerCertificate | None:
    """The certificate `serve` uses for HTTPS, or None for plain HTTP."""
    if (cert is None) != (key is None):
        raise HttpsError("--tls-cert and --tls-key go together; give both")
    if cert is not None and key is not None:
        return https.given(cert, key)
    return https.self_signed(data_dir, host) if tls else None


@config_cli.command("export")
def config_export(data: DataOption = None, database: DatabaseOption = None) -> None:
    """Print the configuration as JSON; secrets are left out."""
    print(json.dumps(_service(data, database).settings.load().exported(), indent=2))


@config_cli.command("import")
def config_import(
    file: Annotated[Path, typer.Argument(help="a JSON file as made by config export")],
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    """Replace the configuration with FILE; secrets not in the file keep their values."""
    try:
        document: Any = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(f"cannot read {file}: {error}") from None
    service = _service(data, database)
    try:
        updated = model.apply_replace(service.settings.load(), document)
    except model.SettingsError as error:
        for field, message in error.problems[1:]:
            errors.print(f"{field}: {message}", markup=False, highlight=False, soft_wrap=True)
        raise _fail(escape(f"{error.field}: {error.message} (nothing was changed)")) from None
    service.settings.save(updated)
    console.print(f"configuration imported from {file}")


@token_cli.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="what the token is for, e.g. door-1")],
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            help="events: post events and send e-mail only (a door station); admin: everything",
        ),
    ] = DEFAULT_SCOPE,
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    """Create an API token and print it once (a token of the same name is replaced)."""
    try:
        token = _service(data, database).accounts.create_token(name, scope)
    except TokenError as error:
        raise _fail(escape(f"{_token_argument(error.field)}: {error.message}")) from None
    print(token)


@token_cli.command("list")
def token_list(data: DataOption = None, database: DatabaseOption = None) -> None:
    """The tokens: name, scope, when made and when last used (never the tokens themselves)."""
    tokens = _service(data, database).accounts.tokens()
    if not tokens:
        console.print("no tokens (doormail token create NAME makes one)")
        return
    table = Table("name", "scope", "created", "last used")
    for token in tokens:
        used = _local_time(token.last_used_at) if token.last_used_at else "never"
        scope = Text(token.scope, style="yellow" if token.scope == "admin" else "")
        table.add_row(Text(token.name), scope, _local_time(token.created_at), used)
    console.print(table)


@token_cli.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="the token's name, as token list shows it")],
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    """Revoke a token: requests with it are refused from now on."""
    if not _service(data, database).accounts.revoke_token(name):
        raise _fail(escape(f"no token named {name!r} (doormail token list shows them)"))
    console.print(f"token {escape(name)} revoked")


def _token_argument(field: str) -> str:
    return "--scope" if field == "scope" else "NAME"


def _local_time(at: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


@users_cli.command("import")
def users_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header line; lists separated by ;")],
    replace: Annotated[
        bool, typer.Option("--replace", help="delete the users that are not in FILE")
    ] = False,
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    """Create or replace the users in FILE: all or nothing, every bad line reported."""
    from doormail.users.csv import CsvError

    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise _fail(f"cannot read {file}: {error}") from None
    users = _service(data, database).users
    try:
        imported = users.import_csv(text, replace_all=replace)
    except CsvError as error:
        for problem in error.problems:
            line = f"{file}:{problem.line}: {problem.column}: {problem.message}"
            errors.print(line, markup=False, highlight=False, soft_wrap=True)
        raise _fail(f"{len(error.problems)} bad line(s); nothing was imported") from None
    console.print(f"{len(imported)} user(s) imported from {file}", markup=False, highlight=False)
    for warning in users.shared_numbers(imported):
        errors.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)


@users_cli.command("export")
def users_export(data: DataOption = None, database: DatabaseOption = None) -> None:
    """Print the users list as CSV."""
    sys.stdout.write(_service(data, database).users.export_csv())


@cli.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help=event_help(),
)
def event(
    context: typer.Context,
    event_type: Annotated[str, typer.Argument(metavar="TYPE", help=", ".join(TYPES))],
    url: Annotated[
        str | None,
        typer.Option("--url", help="the running service (default http://$DOORMAIL_LISTEN)"),
    ] = None,
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    import httpx

    try:
        body = event_body(event_type, context.args)
    except ValueError as error:
        raise _fail(str(error)) from None
    base = url or "http://" + (os.environ.get("DOORMAIL_LISTEN") or DEFAULT_LISTEN)
    # The command's own token can post events and nothing else, whoever finds it later.
    token = os.environ.get("DOORMAIL_TOKEN") or _service(data, database).accounts.create_token(
        "cli", scope="events"
    )
    try:
        reply = httpx.post(
            base.rstrip("/") + "/api/events",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
    except httpx.HTTPError as error:
        raise _fail(
            f"cannot reach doormail at {base}: {error} (is doormail serve running?)"
        ) from None
    if reply.status_code >= 400:
        problem = (
            reply.json().get("error", {}) if "json" in reply.headers.get("content-type", "") else {}
        )
        where = f"{problem['field']}: " if problem.get("field") else ""
        raise _fail(escape(where + str(problem.get("message", reply.text))))
    print(json.dumps(reply.json(), indent=2))


@cli.command("test-email")
def test_email(
    to: Annotated[str, typer.Option("--to", help="the address that receives the test e-mail")],
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    """Apply & Test: send a test e-mail with the saved SMTP settings, printing each stage."""
    service = _service(data, database)
    try:
        run = service.smtp_tests.prepare(to)
    except model.SettingsError as error:
        raise _fail(f"{error.field}: {error.message}") from None
    asyncio.run(_print_test_run(service, run))
    if run.state != "sent":
        console.print("[red]The test e-mail was not sent.[/red]")
    else:
        console.print("[green]The server accepted the test e-mail.[/green]")
    for warning in run.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning.message)}", soft_wrap=True)
    if run.state != "sent":
        raise typer.Exit(1)


async def _print_test_run(service: Service, run: TestRun) -> None:
    from datetime import datetime

    from rich.markup import escape

    task = asyncio.create_task(service.smtp_tests.execute(run))
    async for line in run.follow():
        when = datetime.fromtimestamp(line.at).strftime("%H:%M:%S.%f")[:-3]
        colour = "yellow" if line.stage == "hint" else "bold"
        console.print(
            f"[dim]{when}[/dim] [{colour}]{line.stage:>10}[/{colour}] {escape(line.message)}",
            soft_wrap=True,
        )
    await task


WideOption = Annotated[
    bool, typer.Option("--wide", help="every cell whole, however long the lines get")
]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON for scripts instead of a table")]
LimitOption = Annotated[int, typer.Option("--limit", help="how many, newest first")]

outbox_cli = typer.Typer(help="The outbox: what is queued, sent, failed, expired or held.")
cli.add_typer(outbox_cli, name="outbox")


@outbox_cli.callback(invoke_without_command=True)
def outbox_command(
    context: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="queued | sending | sent | failed | expired | held (default all)"
        ),
    ] = None,
    limit: LimitOption = 100,
    wide: WideOption = False,
    as_json: JsonOption = False,
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    """The outbox as a table, newest first (`doormail outbox retry --all`: send queued mail now)."""
    if context.invoked_subcommand is not None:
        return
    service = _service(data, database)
    try:
        page = service.outbox.page(status, limit)
    except OutboxError as error:
        raise _fail(f"--{error.field}: {error.message}") from None
    if as_json:
        terminal.print_json(terminal.outbox_json(page.items))
        return
    terminal.print_table(page.items, terminal.OUTBOX_COLUMNS, wide=wide)
    _more(page.next, limit)
    _print_server(service)


def _print_server(service: Service) -> None:
    """The SMTP server's state under the table while it is unreachable, as the Outbox tab."""
    from zoneinfo import ZoneInfo

    server = service.server.status()
    headline = server.headline(ZoneInfo(service.settings.load().device.timezone))
    if headline is not None:
        console.print(Text(headline, style="yellow"))
        console.print(Text(f"{server.last_error or ''} — {server.hint or ''}"), soft_wrap=True)


@outbox_cli.command("retry")
def outbox_retry(
    every: Annotated[
        bool,
        typer.Option("--all", help="every queued mail, due now (as a change of SMTP settings)"),
    ] = False,
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    """Retry all now: every queued mail is due at once (its back-off starts again) and an
    unreachable SMTP server is probed at once; the running service sends within a second."""
    if not every:
        raise _fail("name what to retry: --all")
    queued = _service(data, database).server.retry_now()
    console.print(f"{queued} queued mail(s) are due now")


@cli.command("events")
def events_command(
    event_type: Annotated[
        str | None, typer.Option("--type", help="call.ended, access, ... (default all)")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address", help="the events that mailed this address, and those that did not"
        ),
    ] = None,
    outcome: Annotated[
        str | None, typer.Option("--outcome", help="mail | none (default both)")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="ISO 8601 with a UTC offset, e.g. 2026-11-29T08:00:00+01:00"),
    ] = None,
    limit: LimitOption = 100,
    wide: WideOption = False,
    as_json: JsonOption = False,
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    """The events kept, newest first, and what came of each: its mails or why there was none."""
    from doormail.eventlog import EventLogError, since_moment

    try:
        start = None if since is None else since_moment(since)
        page = _service(data, database).events.page(
            type=event_type, address=address, outcome=outcome, since=start, limit=limit
        )
    except EventLogError as error:
        raise _fail(f"--{error.field}: {error.message}") from None
    if as_json:
        terminal.print_json(terminal.events_json(page.items))
        return
    terminal.print_table(page.items, terminal.EVENT_COLUMNS, wide=wide)
    _more(page.next, limit)


@users_cli.command("list")
def users_list(
    query: Annotated[str, typer.Option("--query", help="a part of a name, e-mail or id")] = "",
    limit: Annotated[int, typer.Option("--limit", help="how many, by id")] = 100,
    wide: WideOption = False,
    as_json: JsonOption = False,
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    """The users list as a table."""
    if not 1 <= limit <= 10_000:
        raise _fail("--limit: must be between 1 and 10000")
    page = _service(data, database).users.page(query, limit)
    if as_json:
        terminal.print_json(terminal.users_json(page.users))
        return
    terminal.print_table(page.users, terminal.USER_COLUMNS, wide=wide)
    _more(page.next, limit)


def _more(next_page: str | None, limit: int) -> None:
    if next_page is not None:
        console.print(f"[dim]only the first {limit} are shown (--limit)[/dim]")


@cli.command("backup")
def backup_command(
    file: Annotated[Path, typer.Argument(help="where the copy goes (an SQLite database file)")],
    data: DataOption = None,
    database: DatabaseOption = None,
) -> None:
    """A consistent copy of the installation's database, taken while doormail runs (SQLite's
    online backup; on PostgreSQL it shows the pg_dump command to use instead)."""
    from doormail.store.backup import BackupError, backup

    paths = Paths.resolve(data, database)
    try:
        pages = backup(paths.database_url, file)
    except BackupError as error:
        raise _fail(escape(str(error))) from None
    console.print(
        f"backed up {escape(str(paths.data_dir.resolve()))} to {escape(str(file))}"
        f" ({pages} pages); restore it with: doormail restore {escape(str(file))}"
        " --data NEW_FOLDER",
        soft_wrap=True,
    )


@cli.command("restore")
def restore_command(
    file: Annotated[Path, typer.Argument(help="a copy made by doormail backup")],
    data: DataOption = None,
) -> None:
    """Put a copy made by `doormail backup` into an empty data folder (it is never written over
    an installation's data)."""
    from doormail.store.backup import BackupError, restore

    paths = Paths.resolve(data)
    try:
        restored = restore(file, paths.data_dir)
    except BackupError as error:
        raise _fail(escape(str(error))) from None
    console.print(
        f"restored {escape(str(file))} into {escape(str(restored))}; start it with: doormail"
        f" serve --data {escape(str(paths.data_dir))}",
        soft_wrap=True,
    )


def main() -> None:
    cli()
