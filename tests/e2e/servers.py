"""In-process servers for the end-to-end tests, each on its own threads: TCP echo, data movers
(send/hash/half-close/gated), one that sends without pause and one that refuses an upload with a
reset, an HTTP/1.1 origin, and a blackhole address that never completes a TCP handshake. Each has
.host, .port and stop(); sockets have timeouts so no thread hangs.
"""

import hashlib
import http.server
import json
import queue
import selectors
import socket
import socketserver
import threading
import time

from clients import WAIT, hostport, payload, reset_on_close, sha256

# ---------------------------------------------------------------------------------------------
# In-process servers


def close_listener(sock):
    """Stops a listening socket that a thread may be blocked accepting on. close() alone does
    not: the kernel keeps the listener (and its port) alive until that accept() returns, so a
    stopped server would go on taking one more connection, a later test's among them. shutdown()
    wakes the accept() (which then fails) and stops the listening at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not listening (any more)
    sock.close()


def push_until_end(conn, limit_s=WAIT):
    """Sends to conn without pause while collecting what arrives, in one thread: a reset is seen
    by whichever call meets it first, and is never lost to another thread. Returns (the bytes
    received, "eof", "reset" or "open" when limit_s passed first)."""
    conn.setblocking(False)
    received, end, chunk = bytearray(), "eof", b"d" * 65536
    with selectors.DefaultSelector() as sel:
        sel.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            for _, events in sel.select(timeout=0.5):
                try:
                    if events & selectors.EVENT_WRITE:
                        conn.send(chunk)
                    if events & selectors.EVENT_READ:
                        data = conn.recv(65536)
                        if not data:
                            return bytes(received), end
                        received += data
                except BlockingIOError:
                    pass
                except (ConnectionResetError, BrokenPipeError):
                    end = "reset"  # what came before the reset is still there to read
                    sel.modify(conn, selectors.EVENT_READ)
    return bytes(received), "open"


def pushing(conn):
    """Runs push_until_end(conn) on a thread of its own; returns the queue that gets its
    result."""
    result = queue.Queue()
    threading.Thread(target=lambda: result.put(push_until_end(conn)), daemon=True).start()
    return result


class _OneConnectionServer:
    """Listens on host, and serves the first connection it accepts with serve(conn) on a thread
    of its own; stop() stops the listening."""

    def __init__(self, host):
        self.sock = socket.create_server((host, 0))
        self.host, self.port = self.sock.getsockname()[:2]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return  # stopped
        with conn:
            self.serve(conn)

    def stop(self):
        close_listener(self.sock)


class PushingServer(_OneConnectionServer):
    """Sends to its connection without pause (push_until_end); results gets (bytes received,
    how the connection ended). With answer_head, an HTTP origin whose answer never ends: it
    reads the request head, sends answer_head, then pushes."""

    def __init__(self, host="127.0.0.1", answer_head=None):
        super().__init__(host)
        self.answer_head = answer_head
        self.results = queue.Queue()
        self.thread.start()

    def serve(self, conn):
        if self.answer_head is not None:
            conn.settimeout(WAIT)
            request = bytearray()
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    self.results.put((bytes(request), "eof"))
                    return
                request += chunk
            conn.sendall(self.answer_head)
        self.results.put(push_until_end(conn))


class UploadRefusingServer(_OneConnectionServer):
    """Reads whatever arrives (an upload it will not take) until refuse() is called; then it
    sends its answer and resets the connection, as a server that refuses an upload does. With
    end_first, it ends its side (FIN) before the reset, as one that closes with bytes unread."""

    def __init__(self, answer, host="127.0.0.1", end_first=False):
        super().__init__(host)
        self.answer_text = answer
        self.end_first = end_first
        self.received = 0
        self.answering = threading.Event()
        self.answered = threading.Event()
        self.thread.start()

    def refuse(self):
        """Has it answer and reset; False if it had not done so within WAIT."""
        self.answering.set()
        return self.answered.wait(WAIT)

    def serve(self, conn):
        conn.settimeout(0.05)
        for _ in range(int(WAIT / 0.05)):
            if self.answering.is_set():
                break
            try:
                self.received += len(conn.recv(65536))
            except socket.timeout:
                pass
        conn.sendall(self.answer_text)
        if self.end_first:
            conn.shutdown(socket.SHUT_WR)
        reset_on_close(conn)
        conn.close()
        self.answered.set()


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, family, handler, owner, host=None):
        self.address_family = family
        self.owner = owner
        if host is None:
            host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        super().__init__((host, 0), handler)


class _ServerBase:
    """A socketserver on a thread; .host, .port; stop() shuts it down and closes live sockets."""

    def __init__(self, handler, family=socket.AF_INET, host=None):
        self.peers = queue.Queue()  # (host, port) of every accepted connection
        self.results = queue.Queue()  # what handlers report (server specific)
        self._live = set()
        self._lock = threading.Lock()
        self.server = _TCPServer(family, handler, self, host)
        self.host, self.port = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def _track(self, sock):
        with self._lock:
            self._live.add(sock)

    def _untrack(self, sock):
        with self._lock:
            self._live.discard(sock)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            live = list(self._live)
        for s in live:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=WAIT)

    @property
    def authority(self):
        return hostport(self.host, self.port)


class _Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.request.settimeout(30)
        self.server.owner._track(self.request)
        self.server.owner.peers.put(self.client_address[:2])

    def finish(self):
        self.server.owner._untrack(self.request)


class _EchoHandler(_Handler):
    def handle(self):
        s = self.request
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class EchoServer(_ServerBase):
    """Echoes every byte; on EOF it shuts down its write side (half-close aware)."""

    def __init__(self, family=socket.AF_INET, host=None):
        super().__init__(_EchoHandler, family, host)


class _DataHandler(_Handler):
    def handle(self):
        owner = self.server.owner
        s = self.request
        mode = owner.mode
        try:
            if mode == "send_and_hash":
                # Send our payload (then EOF) while hashing what arrives until the client's EOF.
                sender = threading.Thread(target=self._send_then_shut, daemon=True)
                sender.start()
                owner.results.put(self._hash_until_eof())
                sender.join(timeout=30)
            elif mode == "reply_after_eof":
                owner.results.put(self._hash_until_eof())
                s.sendall(owner.payload)
                s.shutdown(socket.SHUT_WR)
            elif mode == "gated":
                # Half the payload, then wait for the test to open the gate, then the rest.
                half = len(owner.payload) // 2
                s.sendall(owner.payload[:half])
                owner.results.put("first-half-sent")
                if not owner.gate.wait(timeout=30):
                    return
                s.sendall(owner.payload[half:])
                s.shutdown(socket.SHUT_WR)
            elif mode == "send_then_close":
                s.sendall(owner.payload)
                s.shutdown(socket.SHUT_WR)
            elif mode == "http_early_reply":
                self._early_reply()
            else:
                raise ValueError(mode)
        except OSError as e:
            owner.results.put(e)

    def _early_reply(self):
        owner = self.server.owner
        s = self.request
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("EOF inside the request head")
            data += chunk
        body_read = len(data) - data.index(b"\r\n\r\n") - 4
        owner.results.put((body_read, s.getsockname()[1], s.getpeername()[1]))
        if not owner.gate.wait(timeout=30):
            return
        s.sendall(owner.payload)
        owner.stopping.wait(timeout=60)  # keep the connection open, the rest of the body unread

    def _send_then_shut(self):
        try:
            self.request.sendall(self.server.owner.payload)
            self.request.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _hash_until_eof(self):
        h = hashlib.sha256()
        n = 0
        while True:
            data = self.request.recv(262144)
            if not data:
                return n, h.hexdigest()
            h.update(data)
            n += len(data)


class DataServer(_ServerBase):
    """A server that moves a payload, one of these modes per server:
      send_and_hash    sends payload then EOF, and at the same time hashes what it receives until
                       EOF; results gets (length, sha256) of the received bytes
      reply_after_eof  hashes until the client's EOF (results), then sends payload and EOF
      gated            sends half the payload, puts "first-half-sent" in results, waits for
                       gate.set(), sends the rest and EOF
      send_then_close  sends payload and EOF
      http_early_reply an HTTP origin that answers without reading the request body: reads
                       the request head; results gets (body bytes read with it, its own port,
                       the proxy's port); waits for gate.set(), sends payload (a whole
                       response) and keeps the connection open, reading nothing more, until
                       the server stops
    """

    def __init__(self, mode, data, family=socket.AF_INET, host=None):
        self.mode = mode
        self.payload = data
        self.gate = threading.Event()
        self.stopping = threading.Event()
        super().__init__(_DataHandler, family, host)

    def stop(self):
        self.stopping.set()
        self.gate.set()
        super().stop()


class _OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, fmt, *args):  # keep test output clean
        pass

    def setup(self):
        super().setup()
        self.server.owner._track(self.connection)
        self.server.owner.peers.put(self.client_address[:2])

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.owner._untrack(self.connection)

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = bytearray()
            for _ in range(1_000_000):
                size_line = self.rfile.readline(1024)
                if not size_line:
                    raise ConnectionError("EOF inside a chunked body")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    for _ in range(1000):  # trailer section
                        line = self.rfile.readline(8192)
                        if line in (b"\r\n", b"\n", b""):
                            break
                    return bytes(body), "chunked"
                body += self.rfile.read(size)
                self.rfile.readline(8)  # CRLF after the chunk
            raise ConnectionError("too many chunks")
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length), "length"

    def _send(self, status, body, ctype="application/octet-stream", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        path = self.path
        if "://" in path:  # absolute-form reached us: the proxy did not rewrite it
            target_path = "/" + path.split("://", 1)[1].partition("/")[2]
        else:
            target_path = path
        owner = self.server.owner
        if target_path.startswith("/echo"):
            body, framing = self._read_body()
            doc = {
                "origin": owner.name,
                "method": self.command,
                "target": path,
                "version": self.request_version,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_len": len(body),
                "body_sha256": sha256(body),
                "framing": framing,
            }
            self._send(200, json.dumps(doc).encode(), "application/json")
        elif target_path.startswith("/bytes/"):
            self._read_body()
            n = int(target_path[len("/bytes/"):])
            self._send(200, payload(n), extra=[("X-Origin", owner.name)])
        elif target_path.startswith("/chunked/"):
            self._read_body()
            n = int(target_path[len("/chunked/"):])
            data = payload(n)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Origin", owner.name)
            self.end_headers()
            for i in range(0, len(data), 7001):
                chunk = data[i:i + 7001]
                self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif target_path == "/peer":
            # Who connected: the address and port of the TCP peer, as "HOST PORT\n".
            self._read_body()
            host, port = self.client_address[:2]
            self._send(200, f"{host} {port}\n".encode(), "text/plain",
                       extra=[("X-Origin", owner.name)])
        elif target_path.startswith("/eof/"):
            # HTTP/1.0 style: no Content-Length, the body ends when the connection closes.
            self._read_body()
            n = int(target_path[len("/eof/"):])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload(n))
            self.close_connection = True
        else:
            self._read_body()
            self._send(404, b"no such test endpoint\n", "text/plain")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, family, owner, host=None, port=0):
        self.address_family = family
        self.owner = owner
        if host is None:
            host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        super().__init__((host, port), _OriginHandler)


class HttpOrigin(_ServerBase):
    """An HTTP/1.1 origin (persistent connections). Endpoints:
      /echo        any method: JSON {origin, method, target, version, headers: [[k, v]...],
                   body_len, body_sha256, framing} of the request it received
      /bytes/N     N bytes payload(N) with Content-Length
      /chunked/N   the same bytes with Transfer-Encoding: chunked
      /eof/N       the same bytes with neither: the body ends when the origin closes
      /peer        "HOST PORT\n": the address the connection came from (X-Origin: name)
    port: 0 for an ephemeral one, or a given port (OSError when it is taken).
    """

    def __init__(self, name="origin", family=socket.AF_INET, host=None, port=0):
        self.name = name
        self.peers = queue.Queue()
        self.results = queue.Queue()
        self._live = set()
        self._lock = threading.Lock()
        self.server = _HTTPServer(family, self, host, port)
        self.host, self.port = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()


class Blackhole:
    """A TCP address that never completes a handshake: a listening socket with backlog 0 whose
    accept queue is full, so the kernel drops further SYNs. None from make() when this kernel
    does not behave that way (then tests that need it are skipped, not faked)."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.host, self.port = self.listener.getsockname()
        self.fillers = []

    @classmethod
    def make(cls):
        bh = cls()
        for _ in range(8):
            s = socket.socket()
            s.settimeout(0.5)
            try:
                s.connect((bh.host, bh.port))
                bh.fillers.append(s)
            except OSError:
                s.close()
                break
        else:
            bh.close()
            return None
        # Confirm twice that a new connection attempt hangs.
        for _ in range(2):
            s = socket.socket()
            s.settimeout(0.5)
            try:
                s.connect((bh.host, bh.port))
            except socket.timeout:
                continue
            except OSError:
                bh.close()
                return None
            finally:
                s.close()
            bh.close()
            return None
        return bh

    def close(self):
        for s in self.fillers:
            s.close()
        self.listener.close()
