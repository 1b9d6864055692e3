"""Issue 10, item 11: the browser preview under hostile clients. Stalled viewers lose their
slot, hundreds of idle connections do not lock real requests out, and requests naming another
host (DNS rebinding) are refused. Real sockets against the real server."""

from __future__ import annotations

import http.client
import socket
import threading

import numpy as np

from edgecnn.live.browser_preview import MAX_CLIENTS, Preview, allowed_hosts


def _get(port: int, path: str, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        return response.status
    finally:
        conn.close()


def test_requests_naming_another_host_are_refused() -> None:
    with Preview("127.0.0.1", 0) as preview:
        preview.publish(np.zeros((48, 64, 3), np.uint8), {"frame": 1})
        port = preview.port
        assert _get(port, "/snapshot.jpg", f"localhost:{port}") == 200
        assert _get(port, "/state.json", f"127.0.0.1:{port}") == 200
        assert _get(port, "/snapshot.jpg", f"rebind.attacker.example:{port}") == 403
        assert _get(port, "/", "192.168.1.7") == 403
    names, any_ip = allowed_hosts("0.0.0.0")
    assert any_ip and "localhost" in names and socket.gethostname().lower() in names
    names, any_ip = allowed_hosts("edge-box.local")
    assert not any_ip and "edge-box.local" in names


def test_stalled_viewers_free_their_slots_and_idle_connections_lock_nobody_out() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), np.uint8)  # noise: ~200 kB per JPEG
    stop = threading.Event()
    with Preview("127.0.0.1", 0, write_timeout=2.0) as preview:
        port = preview.port

        def feed() -> None:
            i = 0
            while not stop.is_set():
                frame[0, 0] = i % 256
                preview.publish(frame.copy(), {"frame": i})
                i += 1
                stop.wait(0.02)

        feeder = threading.Thread(target=feed, daemon=True)
        stalled = []
        try:
            # Every slot taken by a viewer that never reads. No frame is published yet, so
            # nothing is written to them and none can be dropped before the real viewer asks.
            for _ in range(MAX_CLIENTS):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(
                    f"GET /stream.mjpg HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode()
                )
                stalled.append(sock)
                # Its slot is taken once its 200 arrives: peeked, so it still reads nothing.
                # (Connections are served by threads, so a later request can otherwise take a
                # slot before an earlier one and leave a stalled viewer refused instead.)
                status_line = sock.recv(12, socket.MSG_PEEK | socket.MSG_WAITALL)
                assert status_line == b"HTTP/1.1 200", status_line
            assert _get(port, "/stream.mjpg", f"localhost:{port}") == 503
            feeder.start()  # frames fill the stalled viewers' buffers; their writes block
            statuses = [_get(port, "/stream.mjpg", f"localhost:{port}")]
            for _ in range(300):  # refused until they are dropped for not reading
                if statuses[-1] == 200:
                    break
                stop.wait(0.1)
                statuses.append(_get(port, "/stream.mjpg", f"localhost:{port}"))
            assert statuses[-1] == 200, statuses
            for _ in range(300):  # 300 connections that never send a request
                idle = socket.socket()
                idle.setblocking(False)
                idle.connect_ex(("127.0.0.1", port))
                stalled.append(idle)
            assert _get(port, "/state.json", f"localhost:{port}") == 200
        finally:
            stop.set()
            for sock in stalled:
                sock.close()
            if feeder.is_alive():
                feeder.join(5)
