"""The ``kubeq dashboard`` command: options, safety checks, then uvicorn.

An entry point of the ``kubeq.commands`` group (kubeq/cli/plugins.py), loaded only when
``kubeq dashboard`` is asked for, so ``kubeq worker`` never imports the ASGI stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import click

from kubeq import defaults
from kubeq.dashboard.app import create_app
from kubeq.dashboard.state import Config
from kubeq.store import urls


@click.command()
@click.option("--host", default=defaults.DASHBOARD_HOST, show_default=True, help="Address to bind.")
@click.option("--port", default=defaults.DASHBOARD_PORT, show_default=True, type=int)
@click.option("--redis-url", envvar="KUBEQ_REDIS_URL", help="Redis URL [env KUBEQ_REDIS_URL].")
@click.option("--prefix", default=None, help=f"Key prefix [default: {defaults.PREFIX}].")
@click.option("--read-only", is_flag=True, help="Hide and refuse every action.")
@click.option(
    "--no-token",
    is_flag=True,
    help="Allow actions without KUBEQ_DASHBOARD_TOKEN (only behind an auth proxy).",
)
@click.option("--kubeconfig", default=None, help="Kubeconfig for the Scaling page.")
@click.option("--namespace", default=None, help="Show TaskQueues of this namespace only.")
@click.pass_context
def dashboard(
    ctx: click.Context,
    host: str,
    port: int,
    redis_url: str | None,
    prefix: str | None,
    read_only: bool,
    no_token: bool,
    kubeconfig: str | None,
    namespace: str | None,
) -> None:
    """Serve the web dashboard: queues, workers, jobs, dead letters and scaling, live.

    Actions need KUBEQ_DASHBOARD_TOKEN (or --no-token behind an auth proxy); without either,
    pass --read-only.
    """
    try:
        import uvicorn  # noqa: PLC0415 - optional extra (kubeq[dashboard]), only to serve
    except ImportError as exc:
        raise click.ClickException(
            f"the dashboard is not installed ({exc}): pip install 'kubeq[dashboard]'"
        ) from exc
    group_app = getattr(ctx.obj, "app", None)  # `kubeq --redis-url ... --prefix ... dashboard`
    url = redis_url or getattr(group_app, "redis_url", None)
    chosen_prefix = str(prefix or getattr(group_app, "prefix", defaults.PREFIX))
    token = os.environ.get("KUBEQ_DASHBOARD_TOKEN") or None
    config = Config(
        redis_url=url,
        prefix=chosen_prefix,
        read_only=read_only,
        token=token,
        trust_proxy=no_token,
        kubeconfig=kubeconfig,
        namespace=namespace,
    )
    try:
        app = create_app(config)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    mode = "read-only" if read_only else ("token" if token else "no token (auth proxy)")
    shown = urls.redact(urls.resolve_url(url))
    click.echo(f"kubeq dashboard on http://{host}:{port} ({mode}), Redis {shown}")
    hub = app.state.dash.hub

    class Server(uvicorn.Server):
        """Ends the open /events streams on SIGTERM/SIGINT: they never end by themselves."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            with contextlib.suppress(RuntimeError):  # no running loop yet
                asyncio.get_running_loop().call_soon_threadsafe(hub.end_streams)
            super().handle_exit(sig, frame)

    config_ = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    Server(config_).run()
