"""Runs ON a compute node (python3, standard library + py-amqp from oslo.messaging):
can nova-compute reach RabbitMQ, Keystone and Placement with the credentials in its config?

Prints one JSON object per target: {"target", "status", "detail"} with status `ok`,
`refused` (nothing listens), `auth` (the server rejected the credentials), `unreachable`
(timeout, no route) or `error`. Never prints a password.
"""

from __future__ import annotations

import configparser
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

TIMEOUT = 5.0
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def say(target: str, status: str, detail: object = "") -> None:
    print(json.dumps({"target": target, "status": status, "detail": str(detail)[:300]}))


def classify(exc: BaseException) -> tuple[str, str]:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        return "refused", "connection refused"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "unreachable", "timed out"
    if isinstance(reason, OSError):
        return "unreachable", reason.strerror or type(reason).__name__
    return "error", f"{type(exc).__name__}: {exc}"


def config() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.read(["/etc/nova/nova.conf", "/etc/nova/nova-compute.conf"])
    return parser


def rabbit(parser: configparser.RawConfigParser) -> None:
    url = parser.get("DEFAULT", "transport_url", fallback="")
    if not url:
        return say("rabbitmq", "error", "no transport_url in nova.conf")
    parts = urllib.parse.urlsplit(url.split(",")[0])
    where = f"{parts.hostname}:{parts.port or 5672}"
    try:
        import amqp  # type: ignore[import-not-found]
    except ImportError:
        return say("rabbitmq", "error", "python3-amqp is missing")
    try:
        connection = amqp.Connection(
            host=where,
            userid=urllib.parse.unquote(parts.username or "guest"),
            password=urllib.parse.unquote(parts.password or ""),
            virtual_host=urllib.parse.unquote(parts.path[1:]) or "/",
            connect_timeout=TIMEOUT,
        )
        connection.connect()
        connection.close()
    except amqp.exceptions.AccessRefused:
        return say("rabbitmq", "auth", f"{where} refused the login of user {parts.username}")
    except Exception as exc:  # refused, timeout, protocol
        status, detail = classify(exc)
        return say("rabbitmq", status, f"{where}: {detail}")
    say("rabbitmq", "ok", where)


def post_json(url: str, body: dict[str, Any]) -> tuple[str | None, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with NO_PROXY.open(request, timeout=TIMEOUT) as response:
        return response.headers.get("X-Subject-Token"), json.loads(response.read())


def keystone_and_placement(parser: configparser.RawConfigParser) -> None:
    section = "placement"

    def get(key: str, default: str = "") -> str:
        return parser.get(section, key, fallback=default)

    auth_url = get("auth_url").rstrip("/")
    if not auth_url:
        say("keystone", "error", "no auth_url in [placement] of nova.conf")
        return
    if not auth_url.endswith("/v3"):
        auth_url += "/v3"
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": get("username"),
                        "domain": {"name": get("user_domain_name", "Default")},
                        "password": get("password"),
                    }
                },
            },
            "scope": {
                "project": {
                    "name": get("project_name"),
                    "domain": {"name": get("project_domain_name", "Default")},
                }
            },
        }
    }
    try:
        token, data = post_json(auth_url + "/auth/tokens", body)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            say(
                "keystone", "auth", f"{auth_url}: HTTP 401, the password of user {get('username')} is refused"
            )
        else:
            say("keystone", "error", f"{auth_url}: HTTP {exc.code}")
        return
    except Exception as exc:
        status, detail = classify(exc)
        say("keystone", status, f"{auth_url}: {detail}")
        return
    say("keystone", "ok", auth_url)
    region = get("region_name")
    interfaces = [i.strip() for i in get("valid_interfaces", "internal,public").split(",") if i.strip()]
    url = ""
    for service in data.get("token", {}).get("catalog", []):
        if service.get("type") != "placement":
            continue
        for interface in interfaces:
            for endpoint in service.get("endpoints", []):
                if endpoint.get("interface") == interface and (
                    not region or endpoint.get("region_id") == region
                ):
                    url = url or endpoint.get("url", "")
    if not url:
        say("placement", "error", "no placement endpoint in the catalog")
        return
    request = urllib.request.Request(url, headers={"X-Auth-Token": token or "", "Accept": "application/json"})
    try:
        with NO_PROXY.open(request, timeout=TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        status = "auth" if exc.code in (401, 403) else "error"
        say("placement", status, f"{url}: HTTP {exc.code}")
        return
    except Exception as exc:
        status, detail = classify(exc)
        say("placement", status, f"{url}: {detail}")
        return
    say("placement", "ok", url)


def main() -> None:
    parser = config()
    rabbit(parser)
    keystone_and_placement(parser)


if __name__ == "__main__":
    main()
