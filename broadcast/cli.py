"""The `broadcast` command: serve, worker, beat, db, users, demo, audit."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from broadcast.settings import Environment, get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from broadcast.authority import Actor
    from broadcast.intake.cap_documents import ImportResult

app = typer.Typer(help="Layanan peringatan bencana / disaster broadcast service", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic)", no_args_is_help=True)
users_app = typer.Typer(help="Users", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data", no_args_is_help=True)
audit_app = typer.Typer(help="Audit log", no_args_is_help=True)
cap_app = typer.Typer(help="CAP 1.1/1.2 documents", no_args_is_help=True)
bmkg_app = typer.Typer(help="BMKG intake (nowcast CAP/RSS, earthquake JSON)", no_args_is_help=True)
alerts_app = typer.Typer(help="Peringatan / alerts", no_args_is_help=True)
subscribers_app = typer.Typer(help="Pelanggan / subscribers", no_args_is_help=True)
telegram_app = typer.Typer(help="Bot Telegram: webhook / Telegram bot: webhook", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(demo_app, name="demo")
app.add_typer(audit_app, name="audit")
app.add_typer(cap_app, name="cap")
app.add_typer(bmkg_app, name="bmkg")
app.add_typer(alerts_app, name="alerts")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(telegram_app, name="telegram")
console = Console(soft_wrap=True)


def _engine() -> Engine:
    from broadcast.db import get_engine

    return get_engine(get_settings().resolved_database_url)


def _prepare_data_dir() -> None:
    settings = get_settings()
    if not settings.database_url or settings.embedded_broker:
        settings.data_dir.mkdir(parents=True, exist_ok=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Bring the database schema up to date."""
    from broadcast import migrate

    _prepare_data_dir()
    migrate.upgrade(get_settings().resolved_database_url, revision)
    console.print(f"[green]database at {revision}[/green]")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Take the database schema down to REVISION (e.g. base)."""
    from broadcast import migrate

    migrate.downgrade(get_settings().resolved_database_url, revision)
    console.print(f"[yellow]database at {revision}[/yellow]")


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[str, typer.Option(help="operator, approver, admin or analyst")],
    full_name: Annotated[str, typer.Option(help="Full name")] = "",
    jurisdiction: Annotated[str, typer.Option(help="PP or PP.KK; empty for national")] = "",
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """Add a user."""
    from pydantic import ValidationError

    from broadcast.db import session_scope
    from broadcast.errors import BroadcastError
    from broadcast.users import service
    from broadcast.users.schemas import UserCreate

    try:
        data = UserCreate.model_validate(
            {
                "username": username,
                "full_name": full_name or username,
                "password": password,
                "role": role,
                "jurisdiction": jurisdiction or None,
            }
        )
        with session_scope(_engine()) as session:
            user = service.create_user(
                session,
                username=data.username,
                full_name=data.full_name,
                password=data.password,
                role=data.role,
                jurisdiction=data.jurisdiction,
                actor_id=None,
            )
            console.print(f"[green]user {user.username} ({user.role}) created, id {user.id}[/green]")
    except ValidationError as exc:
        console.print(f"[red]invalid: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}[/red]")
        raise typer.Exit(2) from exc
    except BroadcastError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


@users_app.command("set-password")
def users_set_password(
    username: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """Set a user's password (12+ characters, not a common one); the user's existing sessions end."""
    from broadcast.db import session_scope
    from broadcast.errors import BroadcastError
    from broadcast.users import service

    try:
        with session_scope(_engine()) as session:
            user = service.find_user_by_username(session, username=username)
            if user is None:
                console.print(f"[red]no such user: {username}[/red]")
                raise typer.Exit(2)
            service.change_password(session, user=user, new_password=password, current_password=None, actor_id=None)
    except BroadcastError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"[green]password of {username} changed; its sessions have ended[/green]")


def _print_demo_logins() -> None:
    """The demo logins and their generated password, while demo users still have it."""
    from broadcast.db import session_scope
    from broadcast.demo import DEMO_USERS, stored_demo_password, users_with_password

    password = stored_demo_password(get_settings().data_dir)
    if password is None:
        return
    with session_scope(_engine()) as session:
        still = users_with_password(session, password)
    shown = [u for u in DEMO_USERS if u in still]
    if not shown:
        return
    table = Table(title=f"Akun demo / demo logins (kata sandi / password: {password})")
    for col in ("username", "role", "jurisdiction", "name"):
        table.add_column(col)
    for u in shown:
        table.add_row(u.username, u.role.value, u.jurisdiction or "nasional", u.full_name)
    console.print(table)
    console.print(
        "[yellow]Akun demo memakai kata sandi di atas (juga di "
        f"{get_settings().data_dir / 'demo-password'}); ganti sebelum dipakai sungguhan / the demo accounts use the "
        "password above: change it before real use ('broadcast users set-password NAME')[/yellow]"
    )


def _load_demo() -> int:
    from broadcast.db import session_scope
    from broadcast.demo import demo_password, load_demo

    settings = get_settings()
    if settings.environment is Environment.PRODUCTION:
        console.print("[red]demo data is never loaded in production[/red]")
        raise typer.Exit(2)
    password = demo_password(settings.data_dir)
    with session_scope(_engine()) as session:
        return len(load_demo(session, password=password))


@demo_app.command("load")
def demo_load() -> None:
    """Load demo users (one per role, with a generated password that is printed) and subscribers in Palu, Sleman
    and Grobogan."""
    n = _load_demo()
    console.print(f"[green]{n} demo users created[/green]")
    _print_demo_logins()


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit hash chain and report the first broken entry."""
    from broadcast.audit.service import verify_chain
    from broadcast.db import session_scope

    with session_scope(_engine()) as session:
        check = verify_chain(session)
    if check.ok:
        console.print(f"[green]audit chain intact: {check.entries} entries[/green]")
        return
    where = f"position {check.entries}"
    if check.first_bad_id is not None:
        where = f"entry {check.first_bad_id} ({where})"
    console.print(f"[red]audit chain broken at {where}: {check.reason}[/red]")
    raise typer.Exit(1)


SYSTEM_USER = "sistem"


@cap_app.command("validate")
def cap_validate(paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Check CAP files (or Atom/RSS feeds of CAP); exit 1 if any is not valid CAP 1.1 or 1.2."""
    from broadcast.cap.validation import validate_document

    bad = 0
    for path in paths:
        report = validate_document(path.read_bytes(), name=str(path))
        if report.valid:
            versions = sorted({i.version for i in report.items if i.version})
            notes = sum(len(i.warnings) for i in report.items)
            extra = f", {len(report.items)} entries" if len(report.items) > 1 else ""
            console.print(
                f"[green]VALID[/green]   {path} (CAP {'/'.join(versions) or '-'}{extra}"
                f"{f', {notes} notes' if notes else ''})"
            )
            continue
        bad += 1
        first = next(i for i in report.items if not i.valid)
        console.print(
            f"[red]INVALID[/red] {escape(str(path))}: {escape(first.reasons[0] if first.reasons else 'invalid')}"
        )
    raise typer.Exit(1 if bad else 0)


@cap_app.command("verify")
def cap_verify(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a CAP file")],
    cert: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="PEM certificate the signature must match")
    ] = None,
    at_sent_time: Annotated[
        bool,
        typer.Option(
            help="judge embedded certificates at the CAP <sent> time (archived messages); never with --cert, which "
            "is judged now"
        ),
    ] = False,
) -> None:
    """Check the XML-DSig signatures of a CAP file; exit 0 only when at least one signature is valid, 1 otherwise.
    With --cert the file must carry exactly one enveloped SHA-256+ signature over the whole <alert> made with that
    certificate, valid now. Without --cert a valid signature proves integrity, not who signed."""
    from broadcast.cap.signing import SignatureError, verify_cap

    try:
        checks = verify_cap(path.read_bytes(), cert_pem=cert.read_bytes() if cert else None, at_sent_time=at_sent_time)
    except (SignatureError, ValueError) as exc:
        console.print(f"[red]INVALID[/red] {escape(str(path))}: {escape(str(exc))}")
        raise typer.Exit(1) from exc
    if not checks:
        console.print(f"[red]UNSIGNED[/red] {path}: tidak ada tanda tangan / no signature")
        raise typer.Exit(1)
    for c in checks:
        result = "[green]VALID[/green]" if c.valid else "[red]INVALID[/red]"
        trust = " (trusted)" if c.trusted else ""
        legacy = " [yellow]SHA-1[/yellow]" if c.legacy else ""
        console.print(f"{path} signature {c.index + 1}: {result}{trust} - {c.key_source}{legacy}", markup=True)
        console.print(f"  subject: {c.subject or '-'}", markup=False)
        console.print(f"  algorithm: {c.algorithm}", markup=False)
        if c.error:
            console.print(f"  error: {c.error}", markup=False)
    raise typer.Exit(0 if any(c.valid for c in checks) else 1)


@cap_app.command("import")
def cap_import(
    paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)],
    author: Annotated[str, typer.Option(help="username that authors the drafts")] = SYSTEM_USER,
    fetch: Annotated[bool, typer.Option(help="fetch CAP documents that feed entries link to")] = True,
) -> None:
    """Import CAP files or feeds as draft alerts (each still needs a second person's approval)."""
    from rich.progress import track

    from broadcast.db import session_scope
    from broadcast.errors import BroadcastError
    from broadcast.trust.senders import trusted_certs
    from broadcast.users.service import find_user_by_username, system_actor

    settings = get_settings()
    certs = trusted_certs(settings.cap_signing.trusted_senders)
    total_bad = 0
    for path in track(paths, description="Impor CAP / importing", console=console, transient=True):
        with session_scope(_engine()) as session:
            # A named person, or the system actor limited by BROADCAST_SYSTEM_JURISDICTION: never nobody.
            user = (
                system_actor(session, jurisdiction=settings.system_jurisdiction)
                if author == SYSTEM_USER
                else find_user_by_username(session, username=author)
            )
            if user is None or not getattr(user, "is_active", True):
                console.print(f"[red]no such active user: {author}[/red]")
                raise typer.Exit(2)
            try:
                result = _import_cap_file(session, path, user, fetch, certs, settings.sender_id)
            except BroadcastError as exc:
                session.rollback()
                console.print(f"[red]{path}: refused ({exc.code}): {exc}[/red]", markup=False)
                raise typer.Exit(3) from None
        for alert_id in result.imported:
            console.print(f"{path}: draft alert {alert_id}")
        for skip in result.skipped:
            console.print(f"{skip.item}: skipped: {skip.reason}", style="yellow", markup=False)
        if not result.imported:
            total_bad += 1
    raise typer.Exit(1 if total_bad else 0)


def _import_cap_file(
    session: Session, path: Path, user: Actor, fetch: bool, certs: dict[str, bytes], sender: str | None
) -> ImportResult:
    from broadcast.fetch import fetch_url
    from broadcast.intake.cap_documents import import_document

    return import_document(
        session,
        path.read_bytes(),
        author=user,
        origin="cap-import",
        fetch=fetch_url if fetch else None,
        name=str(path),
        trusted_certs=certs,
        sender=sender,
    )


@bmkg_app.command("import")
def bmkg_import(
    paths: Annotated[list[Path], typer.Argument(exists=True)],
    fetch: Annotated[bool, typer.Option(help="fetch the CAP documents an RSS index links to")] = True,
) -> None:
    """Turn BMKG nowcast CAP/RSS and earthquake JSON (files or folders) into draft alerts."""
    from rich.progress import track

    from broadcast.db import session_scope
    from broadcast.fetch import fetch_url
    from broadcast.intake import bmkg
    from broadcast.users.service import system_actor

    files = bmkg.source_files(paths)
    created = 0
    for path in track(files, description="Impor BMKG / importing", console=console, transient=True):
        with session_scope(_engine()) as session:
            result = bmkg.detect_and_import(
                session,
                path.read_bytes(),
                author=system_actor(session, jurisdiction=get_settings().system_jurisdiction),
                fetch=fetch_url if fetch else None,
                name=str(path),
            )
        created += len(result.created)
        for alert_id in result.created:
            console.print(f"{path}: draft alert {alert_id}")
        for alert_id in result.merged:
            console.print(f"{path}: added a language to draft alert {alert_id}")
        for item, reason in result.skipped:
            console.print(f"[yellow]{item}: {reason}[/yellow]")
    console.print(f"{created} draf baru / new drafts (perlu persetujuan / need approval)")


@alerts_app.command("progress")
def alerts_progress(
    alert_id: int,
    watch: Annotated[bool, typer.Option(help="follow live until every delivery settled")] = True,
    timeout: Annotated[float, typer.Option(help="stop watching after this many seconds")] = 600,
) -> None:
    """Per-channel delivery progress bars for one alert (sent, delivered, failed, skipped)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from broadcast.db import session_factory
    from broadcast.dispatch.progress import ChannelProgress, is_settled, progress
    from broadcast.errors import NotFound

    engine = _engine()

    def read() -> tuple[list[ChannelProgress], bool]:
        with session_factory(engine)() as session:
            rows = progress(session, alert_id=alert_id)
            return rows, is_settled(session, alert_id=alert_id, rows=rows)

    try:
        rows, settled = read()
    except NotFound as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    columns = (
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=console, transient=False) as bars:
        tasks = {r.channel: bars.add_task(r.channel, total=max(r.total, 1), detail="") for r in rows}
        deadline = time.monotonic() + timeout
        while True:
            for r in rows:
                detail = " ".join(f"{k}={v}" for k, v in r.by_state.items() if v)
                bars.update(tasks[r.channel], completed=r.finished, total=max(r.total, 1), detail=detail)
            if settled or not watch or time.monotonic() > deadline:
                break
            time.sleep(1)
            rows, settled = read()
    console.print("selesai / settled" if settled else "masih berjalan / still in progress")


@app.command()
def doctor(
    worker_timeout: Annotated[float, typer.Option(help="seconds to wait for workers to answer a ping")] = 2.0,
) -> None:
    """Say what is wrong with this deployment (exit code 1 when anything is)."""
    from pydantic import ValidationError

    from broadcast.doctor import Level, diagnose

    try:
        settings = get_settings()
    except ValidationError as exc:
        console.print("[red]FAIL[/red] settings: " + "; ".join(e["msg"] for e in exc.errors()))
        raise typer.Exit(1) from exc
    findings = diagnose(settings, worker_timeout_s=worker_timeout)
    table = Table("check", "status", "detail", title=f"broadcast doctor ({settings.environment.value})")
    colour = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "red"}
    for f in findings:
        table.add_row(f.check, f"[{colour[f.level]}]{f.level.value.upper()}[/{colour[f.level]}]", f.detail)
    console.print(table)
    failed = [f for f in findings if f.level is Level.FAIL]
    if failed:
        console.print(f"[red]{len(failed)} masalah / problem(s)[/red]")
        raise typer.Exit(1)
    console.print("[green]Tidak ada masalah / nothing wrong found[/green]")


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="worker processes")] = 2,
    queues: Annotated[
        str,
        typer.Option(
            help="comma-separated queues, drained in this order; 'intake' (reports, polls, replies) belongs to its "
            "own worker"
        ),
    ] = "critical,broadcast",
    loglevel: str = "INFO",
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Celery node name, unique per worker node (default: broadcast-<host>-<pid>)"),
    ] = None,
) -> None:
    """Run a Celery worker. Any number of worker nodes may share one Redis and one PostgreSQL."""
    from broadcast.logs import configure_logging, install_task_context
    from broadcast.worker import celery

    configure_logging(get_settings())
    install_task_context()
    celery.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={queues}",
            f"--loglevel={loglevel}",
            "--hostname=" + (name or "broadcast-%h-" + str(os.getpid())),
        ]
    )


@app.command()
def beat(loglevel: str = "INFO") -> None:
    """Run Celery beat (the periodic sweep)."""
    from broadcast.logs import configure_logging
    from broadcast.worker import celery

    configure_logging(get_settings())
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    schedule = settings.data_dir.resolve() / "celerybeat-schedule"
    celery.start(["beat", f"--loglevel={loglevel}", f"--schedule={schedule}"])


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="Celery worker processes")] = 2,
    demo: Annotated[bool, typer.Option(help="load demo data into an empty database (loopback hosts only)")] = True,
) -> None:
    """Run everything: database migrations, local broker, API, worker and beat."""
    from broadcast import migrate
    from broadcast.db import session_scope
    from broadcast.demo import is_empty
    from broadcast.serve import ServeError, Supervisor, is_loopback_host, port_in_use
    from broadcast.settings import ensure_secret_file

    if port_in_use(host, port):
        console.print(
            f"[red]Port {port} di {host} sudah dipakai (apakah 'broadcast serve' sudah berjalan?) / "
            f"port {port} on {host} is already in use (is 'broadcast serve' already running?)[/red]"
        )
        raise typer.Exit(1)
    if "BROADCAST_PUBLIC_BASE_URL" not in os.environ:
        os.environ["BROADCAST_PUBLIC_BASE_URL"] = f"http://{host}:{port}"
        get_settings.cache_clear()
    settings = get_settings()
    _prepare_data_dir()
    if settings.uses_placeholder_secret:
        # The embedded default signs sessions with a random secret of its own, kept in the data dir.
        ensure_secret_file(settings.data_dir)
        get_settings.cache_clear()
        settings = get_settings()
    if settings.uses_placeholder_secret and not is_loopback_host(host):
        console.print(
            f"[red]Kunci rahasia masih placeholder: tidak boleh mendengar di {host} / the secret key is the "
            f"placeholder: refusing to listen on {host} (set BROADCAST_SECRET_KEY)[/red]"
        )
        raise typer.Exit(1)
    migrate.upgrade(settings.resolved_database_url)
    with session_scope(_engine()) as session:
        empty = is_empty(session)
    if empty and demo and settings.environment is not Environment.PRODUCTION:
        if is_loopback_host(host):
            _load_demo()
        else:
            console.print(
                f"[yellow]Tanpa akun demo karena mendengar di {host}; buat pengguna dengan 'broadcast users create' "
                f"/ no demo users when listening on {host}: create users with 'broadcast users create' (or "
                "'broadcast demo load')[/yellow]"
            )
    _print_demo_logins()
    sup = Supervisor(settings, host=host, port=port, workers=workers)
    try:
        sup.start()
    except ServeError as exc:
        sup.stop()
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    modes = ", ".join(f"{c}={settings.channel_mode(c)}" for c in settings.enabled_channels)
    console.print(
        f"[bold green]Siap / ready:[/bold green] {settings.public_base_url}  "
        f"(API docs {settings.public_base_url}/api/docs; channels {modes}; Ctrl-C to stop)"
    )
    code = 1
    try:
        code = sup.wait()
    finally:
        console.print("stopping…")
        sup.stop()
    raise typer.Exit(code)


@subscribers_app.command("import")
def subscribers_import(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file")],
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="import the good rows anyway")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check and report, write nothing")] = False,
    actor: Annotated[
        str | None, typer.Option("--actor", help="username of the staff member making the import (required to write)")
    ] = None,
) -> None:
    """Import subscribers from CSV: columns phone,language,admin_code,lat,lon,channels,x_handle (header
    required; phone plus a point or an admin_code per row; channels separated by ';'). A phone already
    registered is updated. Any bad row imports nothing (exit 1) unless --skip-invalid. Writing needs --actor:
    every subscriber created or changed is audited under that user."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from broadcast.db import session_scope
    from broadcast.errors import BroadcastError
    from broadcast.subscribers import importing
    from broadcast.users.service import find_user_by_username

    text = path.read_text(encoding="utf-8-sig", errors="replace")
    total = max(text.count("\n") - 1, 0) + (0 if text.endswith("\n") else 1)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as bar, session_scope(_engine()) as session:
            user = find_user_by_username(session, username=actor) if actor else None
            if actor and user is None:
                console.print(f"no such user: {actor}", style="red", markup=False)
                raise typer.Exit(2)
            tasks: dict[str, TaskID] = {}

            def advance(phase: str, done: int, of: int) -> None:
                if phase not in tasks:
                    label = "memeriksa / checking" if phase == "check" else "menulis / writing"
                    tasks[phase] = bar.add_task(label, total=of or None)
                bar.update(tasks[phase], completed=done, total=of or None)

            report = importing.import_rows(
                session,
                importing.read_csv(text),
                skip_invalid=skip_invalid,
                dry_run=dry_run,
                source=path.name,
                progress=advance,
                total=total,
                actor_id=user.id if user else None,
                allow_foreign=get_settings().subscriber_foreign_numbers,
            )
    except BroadcastError as exc:
        console.print(str(exc), style="red", markup=False)
        raise typer.Exit(2) from exc
    for err in report.errors:
        console.print(f"line {err.line}: {err.reason}", style="red", markup=False)
    for line, earlier in report.repeated:
        console.print(f"[yellow]line {line}: same phone as line {earlier}; the later row is used[/yellow]")
    console.print(
        f"{report.rows} rows, {report.valid} valid, {len(report.errors)} bad; "
        f"new {report.inserted}, updated (phone already registered) {report.updated}"
        + (f", of which {report.stopped_kept} stopped and kept stopped" if report.stopped_kept else "")
        + f"; {report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s)"
    )
    if dry_run:
        console.print("[yellow]dry run: nothing written / uji coba: tidak ada yang disimpan[/yellow]")
    elif report.applied:
        console.print(f"[green]imported: {report.inserted} new, {report.updated} updated[/green]")
    else:
        console.print("[red]nothing imported: fix the rows above or use --skip-invalid[/red]")
        raise typer.Exit(1)


@demo_app.command("replay-petabencana")
def demo_replay_petabencana(
    speed: Annotated[float, typer.Option(help="times faster than real time; 0 = as fast as possible")] = 120.0,
    max_gap: Annotated[float, typer.Option(help="longest pause between two reports, in seconds")] = 5.0,
    limit: Annotated[int, typer.Option(help="replay only the first N reports (0 = all 1,204)")] = 0,
) -> None:
    """Replay the real PetaBencana.id Jakarta flood reports of 20-22 Feb 2017 through the report intake, at a
    chosen speed, so the operations-centre map (/pusdalops) fills as it did those days."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from broadcast.db import session_scope
    from broadcast.reports import intake, petabencana
    from broadcast.reports.tasks import kick_enrichment

    if get_settings().environment is Environment.PRODUCTION:
        console.print("[red]demo data is never replayed in production[/red]")
        raise typer.Exit(2)
    items = petabencana.load_reports()
    items = items[:limit] if limit > 0 else items
    engine = _engine()
    stored = 0
    console.print(petabencana.CREDIT)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("PetaBencana 20-22/02/2017", total=len(items))
        previous = items[0].created_at if items else None
        for item in items:
            if speed > 0 and previous is not None:
                time.sleep(min((item.created_at - previous).total_seconds() / speed, max_gap))
            previous = item.created_at
            with session_scope(engine) as session:
                _, created = intake.intake(
                    session,
                    source="api",
                    external_id=f"{petabencana.EXTERNAL_PREFIX}{item.key}",
                    raw=item.feature,
                    text=item.text,
                    author=None,
                    lat=item.lat,
                    lon=item.lon,
                    media=[item.image_url] if item.image_url else [],
                    language="id",
                    hazard="banjir",
                    depth_cm=item.depth_cm,
                )
            stored += created
            kick_enrichment()
            progress.update(task, advance=1, description=f"{item.created_at:%d/%m %H:%M} WIB")
    console.print(f"[green]{stored} laporan baru / new reports[/green] ({len(items) - stored} already there)")


if TYPE_CHECKING:
    from channels.telegram.settings import TelegramConfig
    from channels.telegram.webhook import WebhookState


def _telegram_config() -> TelegramConfig:
    """The bot's adapter config from settings; exit 2 without a bot token."""
    from broadcast.dispatch.wiring import channel_config
    from channels.telegram.settings import TelegramConfig

    config = channel_config(get_settings(), "telegram")
    if not isinstance(config, TelegramConfig) or not config.bot_token:
        console.print("[red]no bot token: set BROADCAST_TELEGRAM__BOT_TOKEN (from @BotFather)[/red]")
        raise typer.Exit(2)
    return config


def _telegram_call(what: str, call: Callable[[], WebhookState]) -> WebhookState:
    """Run one Bot API call under a spinner; exit 1 with Telegram's reason when it fails."""
    from channels.telegram.webhook import WebhookError

    try:
        with console.status(f"{what} …"):
            return call()
    except WebhookError as exc:
        console.print(str(exc), style="red", markup=False)
        raise typer.Exit(1) from exc


def _print_webhook(state: WebhookState) -> None:
    table = Table(title="Webhook Telegram", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("URL", escape(state.url) or "[yellow](tidak ada / none)[/yellow]")
    table.add_row("allowed_updates", ", ".join(state.allowed_updates) or "(semua / all)")
    table.add_row("max_connections", str(state.max_connections or "-"))
    table.add_row("menunggu / pending updates", str(state.pending_updates))
    error = f"{state.last_error_at:%Y-%m-%d %H:%M:%S}Z {state.last_error}" if state.last_error_at else "-"
    table.add_row("galat terakhir / last error", escape(error))
    console.print(table)


@telegram_app.command("set-webhook")
def telegram_set_webhook(
    url: Annotated[
        str, typer.Option(help="HTTPS URL Telegram posts updates to; default: public URL + /webhooks/telegram")
    ] = "",
    drop_pending: Annotated[bool, typer.Option("--drop-pending", help="drop updates waiting at Telegram")] = False,
    max_connections: Annotated[int, typer.Option(min=1, max=100, help="parallel deliveries Telegram may make")] = 40,
) -> None:
    """Register our webhook with Telegram (setWebhook): the URL, the secret token Telegram sends back in every
    update (BROADCAST_TELEGRAM__WEBHOOK_SECRET) and the update types we handle; then show what Telegram says."""
    from channels.telegram import webhook

    settings = get_settings()
    config = _telegram_config()
    secret = settings.telegram.webhook_secret.get_secret_value()
    target = url or settings.telegram.webhook_url(settings.public_base_url)
    try:
        webhook.check_webhook(target, secret)
    except ValueError as exc:
        hint = " (BROADCAST_TELEGRAM__WEBHOOK_SECRET)" if "secret" in str(exc) else ""
        console.print(f"{exc}{hint}", style="red", markup=False)
        raise typer.Exit(2) from exc
    state = _telegram_call(
        "setWebhook",
        lambda: webhook.set_webhook(
            config, url=target, secret=secret, drop_pending=drop_pending, max_connections=max_connections
        ),
    )
    _print_webhook(state)
    if state.url != target:
        console.print("[red]Telegram does not report the URL we set[/red]")
        raise typer.Exit(1)
    console.print(f"[green]webhook terpasang / webhook set: {escape(target)}[/green]")


@telegram_app.command("delete-webhook")
def telegram_delete_webhook(
    drop_pending: Annotated[bool, typer.Option("--drop-pending", help="drop updates waiting at Telegram")] = False,
) -> None:
    """Stop Telegram calling our webhook (deleteWebhook); updates then wait at Telegram for up to 24 hours."""
    from channels.telegram import webhook

    config = _telegram_config()
    state = _telegram_call("deleteWebhook", lambda: webhook.delete_webhook(config, drop_pending=drop_pending))
    _print_webhook(state)
    console.print("[yellow]webhook dihapus / webhook deleted[/yellow]")


@telegram_app.command("webhook-info")
def telegram_webhook_info() -> None:
    """Show where Telegram sends our updates, how many wait and the last delivery error (getWebhookInfo)."""
    from channels.telegram import webhook

    config = _telegram_config()
    _print_webhook(_telegram_call("getWebhookInfo", lambda: webhook.webhook_info(config)))


if __name__ == "__main__":
    sys.exit(app())
