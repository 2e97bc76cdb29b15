"""Each connection's HTTP buffers are 1 KiB (runner._Protocol; docs/benchmarks.md
"An idle connection's memory"): longer requests and responses still go through,
in several reads and writes.
"""

from __future__ import annotations

import json
import socket
import urllib.request

from backboneio import runner
from backboneio.testing.server import ServerProcess

SETTINGS = 'BACKENDS = {"notes": {"store": "memory"}}\n'
POLLING = "/socket.io/?EIO=4&transport=polling"


def test_the_buffers_are_small() -> None:
    assert runner._Protocol.rbufsize == runner._Protocol.wbufsize == 1024


def test_long_headers_a_long_poll_body_and_a_long_response_go_through() -> None:
    with ServerProcess(SETTINGS) as srv:
        # A request line and headers of 10 KB: ten times the read buffer.
        long_headers = {"Cookie": "session=" + "c" * 7000, "X-Trace": "t" * 3000}
        request = urllib.request.Request(srv.url + POLLING + "&pad=" + "p" * 500)
        for name, value in long_headers.items():
            request.add_header(name, value)
        with urllib.request.urlopen(request, timeout=10) as answer:
            sid = json.loads(answer.read()[1:])["sid"]
        url = f"{srv.url}{POLLING}&sid={sid}"
        # A polling POST of 5 KB: a namespace connect with a large auth object.
        body = b'40/notes,{"pad":"' + b"z" * 5000 + b'"}'
        post = urllib.request.Request(url, data=body, method="POST")
        post.add_header("Content-Type", "text/plain")
        with urllib.request.urlopen(post, timeout=10) as answer:
            assert answer.read() == b"OK"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.read().startswith(b'40/notes,{"sid":')
        # A sync whose answer (about 20 KB) is many times the write buffer.
        text = "w" * 20000
        sync = b'42/notes,1["sync",{"method":"create","model":{"text":"' + text.encode() + b'"}}]'
        post = urllib.request.Request(url, data=sync, method="POST")
        post.add_header("Content-Type", "text/plain")
        with urllib.request.urlopen(post, timeout=10) as answer:
            assert answer.read() == b"OK"
        with urllib.request.urlopen(url, timeout=10) as answer:
            reply = answer.read().decode()
        assert reply.startswith("43/notes,1[null,")
        assert json.loads(reply[len("43/notes,1") :])[1]["text"] == text


def test_a_request_pipelined_behind_a_short_one_is_answered() -> None:
    # Two requests in one send: the second waits in the (small) read buffer.
    with ServerProcess(SETTINGS) as srv:
        host, port = "127.0.0.1", srv.port
        one = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Pad: {'q' * 1500}\r\n\r\n"
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall((one + one).encode())
            received = b""
            while received.count(b'"status"') < 2:
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
        assert received.count(b"HTTP/1.1 200") == 2
