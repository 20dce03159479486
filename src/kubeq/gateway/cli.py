"""The ``kubeq gateway`` command: options, the API server connection, then uvicorn.

An entry point of the ``kubeq.commands`` group (kubeq/cli/plugins.py), loaded only when
``kubeq gateway`` is asked for."""

from __future__ import annotations

import logging

import click


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--audience",
    default="kubeq",
    show_default=True,
    envvar="KUBEQ_GATEWAY_AUDIENCE",
    help="The audience callers' projected tokens must carry.",
)
@click.option("--kubeconfig", default=None, help="Kubeconfig (default: in-cluster config).")
@click.option("--cache-seconds", default=10.0, show_default=True, help="Review cache TTL.")
@click.option(
    "--api-timeout",
    default=10.0,
    show_default=True,
    help="Seconds an API server call may take (then 503).",
)
@click.option("--max-body", default=1 << 20, show_default=True, help="Largest POST body.")
@click.option("--rate", default=50.0, show_default=True, help="Requests/s per caller.")
@click.option("--burst", default=100.0, show_default=True, help="Burst per caller.")
@click.option(
    "--unauth-rate",
    default=1.0,
    show_default=True,
    help="Refused tokens/s per source address before 429 (no TokenReview).",
)
@click.option("--unauth-burst", default=20.0, show_default=True, help="Their burst.")
@click.option(
    "--unauth-total-rate",
    default=20.0,
    show_default=True,
    help="Refused tokens/s over all sources before 429 (no TokenReview).",
)
@click.option("--unauth-total-burst", default=200.0, show_default=True, help="Their burst.")
def gateway(
    host: str,
    port: int,
    audience: str,
    kubeconfig: str | None,
    cache_seconds: float,
    api_timeout: float,
    max_body: int,
    rate: float,
    burst: float,
    unauth_rate: float,
    unauth_burst: float,
    unauth_total_rate: float,
    unauth_total_burst: float,
) -> None:
    """Serve the HTTP API to enqueue and follow jobs (docs/protocol.md), authorised by RBAC."""
    try:  # optional extra (kubeq[gateway]), only to serve
        import uvicorn  # noqa: PLC0415
        from kubernetes import client, config  # noqa: PLC0415

        from kubeq.gateway.app import Gateway, Limits, create_app  # noqa: PLC0415
        from kubeq.gateway.kube import Kube  # noqa: PLC0415
    except ImportError as exc:
        raise click.ClickException(
            f"the gateway is not installed ({exc}): pip install 'kubeq[gateway]'"
        ) from None
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call, unused-ignore]
        api = client.ApiClient()
    except config.ConfigException:
        api = config.new_client_from_config(  # type: ignore[no-untyped-call, unused-ignore]
            config_file=kubeconfig, persist_config=False
        )
    limits = Limits(
        max_body=max_body,
        rate=rate,
        burst=burst,
        unauth_rate=unauth_rate,
        unauth_burst=unauth_burst,
        unauth_total_rate=unauth_total_rate,
        unauth_total_burst=unauth_total_burst,
    )
    app = create_app(Gateway(Kube(api, audience, cache_seconds, api_timeout), limits))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    click.echo(f"kubeq gateway on http://{host}:{port} (token audience {audience!r})")
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, lifespan="on")
