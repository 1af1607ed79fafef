"""The admin connection's HTTP session against a real server on loopback that closes a connection
without answering (what uwsgi's http-socket now and then does on a busy host): safe requests are
sent again, others fail once; a late answer is waited for once, never asked for twice."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
import requests

from stackwright.cloud import DROPPED_RESENDS, connect
from stackwright.inventory import load_inventory
from tests.conftest import SEED

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok"


@contextmanager
def server(behaviours: list[str]) -> Iterator[tuple[str, list[str]]]:
    """Answers connection n with behaviours[n]: "drop" (close unanswered), "slow" (answer after
    1 s) or "ok"; yields its URL and the request lines it read. A connection beyond behaviours
    waits unanswered in the listener's backlog (the client's timeout ends it)."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        for behaviour in behaviours:
            conn, _ = listener.accept()
            with conn:
                seen.append(conn.recv(65536).split(b"\r\n", 1)[0].decode())
                if behaviour == "slow":
                    threading.Event().wait(1.0)
                if behaviour != "drop":
                    with suppress(OSError):  # the client gave up waiting
                        conn.sendall(OK)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/", seen
    finally:
        listener.close()
        thread.join(timeout=5)


@pytest.fixture
def session(passwords: dict[str, str]) -> requests.Session:
    conn = connect(load_inventory(SEED).model, passwords)
    http: requests.Session = conn.session.session
    return http


def test_a_get_whose_connection_was_dropped_is_sent_again(session: requests.Session) -> None:
    with server(["drop", "drop", "ok"]) as (url, seen):
        assert session.get(url, timeout=5).text == "ok"
    assert seen == ["GET / HTTP/1.1"] * 3 and DROPPED_RESENDS == 2


def test_a_post_whose_connection_was_dropped_is_not(session: requests.Session) -> None:
    with server(["drop"]) as (url, seen), pytest.raises(requests.ConnectionError):
        session.post(url, data=b"x", timeout=5)
    assert seen == ["POST / HTTP/1.1"]


def test_a_late_answer_is_one_timeout_not_a_second_request(session: requests.Session) -> None:
    with server(["slow"]) as (url, seen), pytest.raises(requests.ReadTimeout):
        session.get(url, timeout=0.5)
    assert seen == ["GET / HTTP/1.1"]


def test_a_refused_connection_fails_at_once(session: requests.Session) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert time.monotonic() - started < 0.5  # no resend with its 0.5 s back-off
