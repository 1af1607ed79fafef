"""The admin's view of the cloud: an openstacksdk connection and a `clouds.yaml` from the inventory.

Keystone is reached on the controller's management address (`http://<mgmt>:5000/v3`, https with
`tls.internal`); the
service endpoints are picked by `interface`: `internal` (management addresses) or `public` (the
controller's external address). Every API call has a bounded timeout (`api_timeout`).

openstacksdk is imported inside the functions that talk to a cloud, so the pure parts of
`verify` and the smoke test import without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from stackwright.atomic import atomic_write
from stackwright.inventory import Inventory, LoadedInventory
from stackwright.yamlsource import UserError

if TYPE_CHECKING:
    from openstack.connection import Connection
    from openstack.identity.v3._proxy import Proxy as IdentityV3

CLOUD_NAME = "stackwright"
API_TIMEOUT_S = 30.0
Interface = Literal["internal", "public"]


def public_auth_url(inventory: Inventory) -> str:
    """Keystone as users reach it: through the TLS front on the controller's external address
    (plain HTTP when the inventory turns TLS off; management without an external address)."""
    return f"{inventory.public_url_base}:5000/v3"


def auth_url(inventory: Inventory) -> str:
    """Keystone's internal endpoint (https through the TLS front with tls.internal)."""
    return f"{inventory.internal_url_base}:5000/v3"


def cloud_config(
    inventory: Inventory,
    passwords: Mapping[str, str],
    *,
    interface: Interface = "internal",
    api_timeout: float = API_TIMEOUT_S,
    cacert: Path | None = None,
) -> dict[str, Any]:
    """The `clouds:` entry for the admin (also the keyword arguments of the SDK connection);
    `cacert` verifies the TLS front (tls.client_ca), else the system's bundle does."""
    if "admin_password" not in passwords:
        raise UserError("the passwords file has no admin_password — run `stackwright plan` to create it")
    return {
        "auth_type": "password",
        "auth": {
            "auth_url": auth_url(inventory),
            "username": "admin",
            "password": passwords["admin_password"],
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": inventory.region,
        "interface": interface,
        "identity_api_version": "3",
        "api_timeout": api_timeout,
        **({"cacert": str(cacert.resolve())} if cacert is not None else {}),
    }


def connect(
    inventory: Inventory,
    passwords: Mapping[str, str],
    *,
    interface: Interface = "internal",
    api_timeout: float = API_TIMEOUT_S,
    cacert: Path | None = None,
) -> Connection:
    """An admin connection (no clouds.yaml or OS_* variables are read). Nothing is sent yet."""
    from openstack.connection import Connection

    config = cloud_config(inventory, passwords, interface=interface, api_timeout=api_timeout, cacert=cacert)
    return resending_dropped(Connection(app_name="stackwright", **config))


# OpenStack's APIs answer under uwsgi's http-socket, which ends each response by closing the
# connection; on a busy host a request now and then meets a connection closed without an answer
# (http.client's RemoteDisconnected: once in a smoke's wait for a server's delete, the request
# never reached nova-api). urllib3 sends such requests again when they are safe to repeat (its
# idempotent methods: GET, HEAD, PUT, DELETE, OPTIONS, TRACE). keystoneauth's connect_retries
# would repeat POSTs and timed-out requests too. A read timeout stays one timeout, and a refused or
# timed-out connection one failure (connect=0): an API that is down is reported as fast as before.
DROPPED_RESENDS = 2


def resending_dropped(conn: Connection) -> Connection:
    """`conn` with its HTTP session resending idempotent requests whose connection was dropped."""
    from types import TracebackType
    from typing import Self

    from keystoneauth1.session import TCPKeepAliveAdapter
    from urllib3.connectionpool import ConnectionPool
    from urllib3.exceptions import ReadTimeoutError
    from urllib3.response import BaseHTTPResponse
    from urllib3.util.retry import Retry

    class ResendDropped(Retry):
        def increment(
            self,
            method: str | None = None,
            url: str | None = None,
            response: BaseHTTPResponse | None = None,
            error: Exception | None = None,
            _pool: ConnectionPool | None = None,
            _stacktrace: TracebackType | None = None,
        ) -> Self:
            if isinstance(error, ReadTimeoutError):  # the server has it: its answer is late, not lost
                raise error
            return super().increment(method, url, response, error, _pool, _stacktrace)

    retry = ResendDropped(
        total=DROPPED_RESENDS, connect=0, read=DROPPED_RESENDS, status=0, redirect=0,
        backoff_factor=0.5, raise_on_status=False,
    )  # fmt: skip
    for scheme in ("https://", "http://"):
        conn.session.session.mount(scheme, TCPKeepAliveAdapter(max_retries=retry))
    return conn


def admin_connection(
    loaded: LoadedInventory, passwords: Mapping[str, str], *, api_timeout: float = API_TIMEOUT_S
) -> Connection:
    """`connect` for an inventory loaded from its file: the TLS front verified with the CA this
    machine trusts it by (tls.client_ca)."""
    from stackwright.tls import client_ca

    cacert = client_ca(loaded.model, loaded.path)
    return connect(loaded.model, passwords, api_timeout=api_timeout, cacert=cacert)


def clouds_yaml_text(inventory: Inventory, passwords: Mapping[str, str], *, cacert: Path | None) -> str:
    """The admin as users reach the cloud: Keystone's public URL and the public endpoints, the TLS
    front verified with `cacert`."""
    config = cloud_config(inventory, passwords, interface="public", cacert=cacert)
    config["auth"]["auth_url"] = public_auth_url(inventory)
    body = yaml.safe_dump({"clouds": {CLOUD_NAME: config}}, sort_keys=False, default_flow_style=False)
    return (
        "# Generated by stackwright: `openstack --os-cloud stackwright ...` (admin). Keep secret (0600).\n"
        + body
    )


def write_clouds_yaml(
    path: Path, inventory: Inventory, passwords: Mapping[str, str], *, cacert: Path | None
) -> None:
    """Atomic 0600 write of a clouds.yaml holding the `stackwright` cloud (the admin)."""
    atomic_write(path, clouds_yaml_text(inventory, passwords, cacert=cacert), mode=0o600, keep_previous=False)


def identity_v3(conn: Connection) -> IdentityV3:
    from openstack.identity.v3._proxy import Proxy

    identity = conn.identity
    if not isinstance(identity, Proxy):
        raise RuntimeError("the identity API in use is not v3")
    return identity
