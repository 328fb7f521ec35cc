"""The outgoing HTTP seam against real sockets: capped bodies, readable errors, answers that trickle."""

import socket
import threading
import time

from webhooks import http

pytest_plugins = ["tests.webhook_fixtures"]


def test_a_capped_body_does_not_spoil_the_next_request_to_the_same_host(receiver):
    receiver.reply(200, "x" * 50_000)
    receiver.reply(201, "second")

    first = http.post(receiver.url, content=b"{}", headers={}, max_body=1024)
    second = http.post(receiver.url, content=b"{}", headers={})

    assert (first.status_code, len(first.body)) == (200, 1024)
    assert (second.status_code, second.body) == (201, "second")


def test_a_refused_connection_is_reported_in_plain_words(allow_loopback):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens on it once closed

    response = http.post(f"http://127.0.0.1:{port}/hooks", content=b"{}", headers={})

    assert response.status_code is None
    assert not response.timed_out
    assert response.error.startswith("Could not connect to 127.0.0.1:")
    assert "Connection refused" in response.error
    assert "object at" not in response.error


def test_an_answer_that_trickles_in_is_cut_off_at_the_timeout(allow_loopback):
    allow_loopback.WEBHOOK_TIMEOUT_SECONDS = 0.5
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
            ends = time.monotonic() + 3
            while not stop.is_set() and time.monotonic() < ends:  # a byte at a time, well inside the read timeout
                conn.sendall(b"x")
                time.sleep(0.05)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        response = http.post(f"http://127.0.0.1:{server.getsockname()[1]}/hooks", content=b"{}", headers={})
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        server.close()

    assert response.timed_out
    assert response.status_code is None
    assert "Timed out after 0.5 s" in response.error
    assert elapsed < 5
