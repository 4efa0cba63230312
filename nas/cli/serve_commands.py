"""`nas serve` (the REST API and dashboard under uvicorn) and `nas db upgrade`."""

from __future__ import annotations

import ipaddress
import socket
from typing import Annotated

import typer

from nas.cli.app import app, console, fail, user_errors
from nas.ownership import OwnershipSettings
from nas.store import Store
from nas.threads import thread_count

db_app = typer.Typer(help="The store's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    migrate: Annotated[bool, typer.Option(
        help="upgrade the database schema first (--no-migrate: expect `nas db upgrade` ran)")
    ] = True,
    runner: Annotated[str | None, typer.Option(
        help="ray (default: a local Ray, or NAS_RAY_ADDRESS) or process")] = None,
    insecure: Annotated[bool, typer.Option(
        help="allow a non-loopback host without NAS_API_TOKEN (anyone could launch searches)")
    ] = False,
    keep_alive: Annotated[int, typer.Option(
        min=1, max=3600, help="seconds an idle connection stays open: longer than clients and "
        "proxies in front keep theirs (nginx and cloud load balancers: 60 s)")] = 75,
) -> None:
    """Run the REST API (OpenAPI at /docs) and the dashboard. Settings come from NAS_*
    variables: NAS_API_TOKEN, NAS_DATABASE_URL, NAS_HOME, NAS_MAX_RUNNING_SEARCHES, ..."""
    import uvicorn

    from server.app import create_app
    from server.settings import ServerSettings

    with user_errors():
        overrides = {"runner": runner} if runner is not None else {}
        settings = ServerSettings(migrate=migrate, **overrides)
        # what every search run reads (a bad value failed each run, or the start in a traceback)
        OwnershipSettings.from_env()
        thread_count()
        if settings.token() is None and not is_loopback(host) and not insecure:
            fail(f"refusing to serve on {host} without NAS_API_TOKEN: set a token (or pass "
                 f"--insecure to let anyone who reaches the port launch searches)")
        application = create_app(settings)  # with --no-migrate: refuses an old schema
    console.print(f"nas-service on http://{host}:{port} (API docs at /docs)", highlight=False)
    # uvicorn's default keep-alive (5 s) is what httpx and many clients keep idle connections
    # for: a request sent as the server closed its connection failed (a proxy's 502).
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False,
                timeout_keep_alive=keep_alive)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database (NAS_DATABASE_URL, else $NAS_HOME/nas.db) to the newest schema."""
    with user_errors(), Store() as store:
        console.print(f"{store!r}: schema up to date", highlight=False, markup=False)
