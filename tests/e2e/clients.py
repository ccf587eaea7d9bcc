"""Client side of the end-to-end tests: bounded socket helpers, and SOCKS4/4a/5 and HTTP
clients on raw sockets for exact reply bytes. Every socket gets a timeout; every loop is bounded.
"""

import base64
import hashlib
import http.client
import ipaddress
import os
import random
import re
import socket
import struct
import subprocess
import time

WAIT = 10.0  # default bound for "until X happens" loops, seconds
SOCK_TIMEOUT = 10.0  # default timeout on every client socket, seconds
CMD_TIMEOUT = 60.0  # bound for one client subprocess (curl, nc, geoproxy check ...)
MIB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Small utilities


def geoproxy_bin():
    path = os.environ.get("GEOPROXY_BIN")
    if not path:
        raise AssertionError("GEOPROXY_BIN is not set (ctest sets it to the built binary)")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"GEOPROXY_BIN={path} is not an executable file")
    return path


def free_port(family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A port that was free a moment ago on the loopback address of 'family'."""
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    with socket.socket(family, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port_tcp_udp():
    """A loopback port free for both TCP and UDP a moment ago (dnsmasq binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free for both TCP and UDP in 50 tries")


def payload(n, seed=None):
    """n deterministic pseudo-random bytes (the same n and seed always give the same bytes)."""
    return random.Random(n if seed is None else seed).randbytes(n)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def client_env():
    """The environment for client programs, without any *_proxy variable that could reroute."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def run(argv, *, input=None, timeout=CMD_TIMEOUT, env=None, **kw):
    """Runs a command to completion (bounded) and returns the CompletedProcess (bytes)."""
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                          env=env if env is not None else client_env(), **kw)


def hostport(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def wait_until(predicate, timeout=WAIT, interval=0.05, what="condition"):
    """Polls predicate() until it returns a true value (returned) or the bound passes (raises)."""
    deadline = time.monotonic() + timeout
    tries = int(timeout / interval) + 2
    for _ in range(tries):
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")


def connect(host, port, timeout=SOCK_TIMEOUT, source=None):
    """A connected TCP socket with a timeout set (family from the address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if source is not None:
            s.bind((source, 0))
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def can_connect(host, port, timeout=1.0):
    try:
        with connect(host, port, timeout=timeout):
            return True
    except OSError:
        return False


def recv_exact(sock, n):
    """Exactly n bytes; raises AssertionError naming what did arrive if the peer closed first."""
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise AssertionError(
                f"connection closed after {len(buf)} of {n} expected bytes: {bytes(buf)!r}")
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock, limit=64 * MIB):
    """Everything until the peer closes (bounded by the socket timeout per read and 'limit')."""
    buf = bytearray()
    while len(buf) <= limit:
        try:
            chunk = sock.recv(256 * 1024)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def reset_on_close(sock):
    """Makes closing sock reset the connection (RST) instead of ending it (SO_LINGER on, with a
    zero timeout), as a peer that crashes or aborts does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def send_then_reset(sock, data):
    """Sends data and closes sock with a reset right behind it: a client's last words."""
    sock.sendall(data)
    reset_on_close(sock)
    sock.close()


def wait_end(sock, timeout=5.0):
    """Reads (and returns) whatever arrives until the connection ends.

    Returns (end, data): end is "eof" for an orderly close, "reset" for a reset, "open" when
    the connection was still open at the bound."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    old = sock.gettimeout()
    try:
        for _ in range(10000):
            left = deadline - time.monotonic()
            if left <= 0:
                return "open", bytes(data)
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                return "open", bytes(data)
            except (ConnectionResetError, BrokenPipeError):
                return "reset", bytes(data)
            if not chunk:
                return "eof", bytes(data)
            data += chunk
        return "open", bytes(data)
    finally:
        sock.settimeout(old)


def wait_closed(sock, timeout=5.0):
    """Reads (and returns) whatever arrives until the peer closes the connection.

    Returns (closed, data): closed is False when the connection was still open at the bound.
    A reset counts as closed."""
    end, data = wait_end(sock, timeout)
    return end != "open", data


def tcp_queues(local_port, remote_port):
    """(send queue, receive queue) in bytes of the established loopback TCP socket with these
    ports, whichever process owns it (Linux /proc/net/tcp{,6}); None when there is none. The
    send queue counts bytes written and not yet acknowledged, the receive queue bytes received
    and not yet read."""
    want = (f"{local_port:04X}", f"{remote_port:04X}")
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] != "01":  # TCP_ESTABLISHED
                    continue
                ports = (fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1])
                if ports == want:
                    tx, rx = fields[4].split(":")
                    return int(tx, 16), int(rx, 16)
    return None


def send_ignoring_reset(sock, data):
    """sendall that tolerates the proxy having closed already (it may refuse early)."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def read_http_head(sock, limit=65536):
    """Reads a response head byte by byte (so no tunnel byte is consumed) -> (status, headers,
    raw). headers is a list of (lower-case name, value)."""
    raw = bytearray()
    while not raw.endswith(b"\r\n\r\n"):
        if len(raw) > limit:
            raise AssertionError(f"response head longer than {limit} bytes: {bytes(raw[:200])!r}")
        try:
            b = sock.recv(1)
        except ConnectionResetError:
            b = b""
        if not b:
            raise AssertionError(f"connection closed inside the response head: {bytes(raw)!r}")
        raw += b
    lines = raw.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise AssertionError(f"not an HTTP/1.x status line: {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    return int(m.group(1)), headers, bytes(raw)


def header_values(headers, name):
    """All values of a header (list of (name, value) or http.client message)."""
    if hasattr(headers, "get_all"):
        return headers.get_all(name) or []
    return [v for k, v in headers if k.lower() == name.lower()]


def read_response(f, method="GET"):
    """Reads one response from a buffered binary file (sock.makefile("rb")) and leaves the file
    open and positioned at the next response: for pipelining. -> (status, headers, body)
    with headers a list of (lower-case name, value). Supports Content-Length and chunked."""
    line = f.readline(65537)
    m = re.match(rb"HTTP/1\.[01] (\d{3})", line)
    if not m:
        raise AssertionError(f"not an HTTP/1.x status line: {line!r}")
    status = int(m.group(1))
    headers = []
    for _ in range(1000):
        line = f.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    te = ",".join(v for k, v in headers if k == "transfer-encoding").lower()
    cl = [v for k, v in headers if k == "content-length"]
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, headers, b""
    if "chunked" in te:
        body = bytearray()
        for _ in range(1_000_000):
            size = int(f.readline(1024).split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass
                return status, headers, bytes(body)
            body += f.read(size)
            f.readline(8)
    if cl:
        return status, headers, f.read(int(cl[0]))
    return status, headers, f.read()


def http_response(sock, method="GET"):
    """Parses one complete HTTP response from a socket with http.client -> (status, headers
    message, body). The socket must not be used for anything but HTTP afterwards."""
    resp = http.client.HTTPResponse(sock, method=method)
    resp.begin()
    body = resp.read()
    return resp.status, resp.msg, body, resp

# ---------------------------------------------------------------------------------------------
# SOCKS clients on raw sockets, for exact reply bytes


SOCKS5_ATYP_IPV4, SOCKS5_ATYP_DOMAIN, SOCKS5_ATYP_IPV6 = 1, 3, 4
SOCKS5_CONNECT, SOCKS5_BIND, SOCKS5_UDP = 1, 2, 3


def socks5_greet(sock, methods=(0,)):
    """Sends a method-selection message; returns the method the server chose (0xFF: none)."""
    sock.sendall(bytes([5, len(methods)]) + bytes(methods))
    ver, method = recv_exact(sock, 2)
    if ver != 5:
        raise AssertionError(f"method selection reply has version {ver}, expected 5")
    return method


def socks5_userpass(sock, user, password):
    """RFC 1929 sub-negotiation; returns the status byte (0 = success)."""
    u = user.encode() if isinstance(user, str) else user
    p = password.encode() if isinstance(password, str) else password
    sock.sendall(bytes([1, len(u)]) + u + bytes([len(p)]) + p)
    ver, status = recv_exact(sock, 2)
    if ver != 1:
        raise AssertionError(f"RFC 1929 reply has version {ver}, expected 1")
    return status


def socks5_address(host):
    """(ATYP, encoded address) for a literal IPv4/IPv6 address or a name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode()
        return SOCKS5_ATYP_DOMAIN, bytes([len(name)]) + name
    if ip.version == 4:
        return SOCKS5_ATYP_IPV4, ip.packed
    return SOCKS5_ATYP_IPV6, ip.packed


def socks5_request_bytes(host, port, cmd=SOCKS5_CONNECT, atyp=None, addr=None):
    if atyp is None:
        atyp, addr = socks5_address(host)
    return bytes([5, cmd, 0, atyp]) + addr + struct.pack(">H", port)


def socks5_read_reply(sock):
    """Reads a complete SOCKS5 reply -> (rep, atyp, address string, port)."""
    ver, rep, rsv, atyp = recv_exact(sock, 4)
    if ver != 5:
        raise AssertionError(f"SOCKS5 reply has version {ver}, expected 5 (rep byte {rep:#04x})")
    if atyp == SOCKS5_ATYP_IPV4:
        addr = socket.inet_ntop(socket.AF_INET, recv_exact(sock, 4))
    elif atyp == SOCKS5_ATYP_IPV6:
        addr = socket.inet_ntop(socket.AF_INET6, recv_exact(sock, 16))
    elif atyp == SOCKS5_ATYP_DOMAIN:
        addr = recv_exact(sock, recv_exact(sock, 1)[0]).decode("latin-1")
    else:
        raise AssertionError(f"SOCKS5 reply has unknown ATYP {atyp} (rep byte {rep:#04x})")
    (port,) = struct.unpack(">H", recv_exact(sock, 2))
    return rep, atyp, addr, port


def socks5_open(proxy_port, host, port, *, proxy_host="127.0.0.1", cmd=SOCKS5_CONNECT,
                atyp=None, addr=None, auth=None, source=None, timeout=SOCK_TIMEOUT):
    """Connects to the proxy, negotiates (no auth, or user/password when auth=(user, pw)) and
    sends one request. Returns (socket, (rep, atyp, addr, port)); the caller closes the socket
    (use TestCase.track)."""
    sock = connect(proxy_host, proxy_port, timeout=timeout, source=source)
    try:
        if auth is None:
            method = socks5_greet(sock, (0,))
            if method != 0:
                raise AssertionError(f"proxy chose method {method:#04x}, expected 0x00")
        else:
            method = socks5_greet(sock, (2,))
            if method != 2:
                raise AssertionError(f"proxy chose method {method:#04x}, expected 0x02")
            status = socks5_userpass(sock, *auth)
            if status != 0:
                raise AssertionError(f"RFC 1929 status {status:#04x}, expected 0x00")
        sock.sendall(socks5_request_bytes(host, port, cmd, atyp, addr))
        return sock, socks5_read_reply(sock)
    except BaseException:
        sock.close()
        raise


def socks4_request_bytes(host, port, user=b"geoproxy-test", cmd=1):
    """SOCKS4 for a literal IPv4 address, SOCKS4a (0.0.0.1 + name) for a name."""
    try:
        ip = ipaddress.IPv4Address(host).packed
        name = b""
    except ValueError:
        ip = bytes([0, 0, 0, 1])
        name = host.encode() + b"\0"
    return bytes([4, cmd]) + struct.pack(">H", port) + ip + user + b"\0" + name


def socks4_read_reply(sock):
    """Reads the 8-byte SOCKS4 reply -> (vn, cd, port, ip)."""
    data = recv_exact(sock, 8)
    (port,) = struct.unpack(">H", data[2:4])
    return data[0], data[1], port, socket.inet_ntoa(data[4:8])


def socks4_open(proxy_port, host, port, *, proxy_host="127.0.0.1", user=b"geoproxy-test",
                source=None, timeout=SOCK_TIMEOUT):
    sock = connect(proxy_host, proxy_port, timeout=timeout, source=source)
    try:
        sock.sendall(socks4_request_bytes(host, port, user))
        return sock, socks4_read_reply(sock)
    except BaseException:
        sock.close()
        raise


def http_connect_open(proxy_port, authority, *, proxy_host="127.0.0.1", extra_headers="",
                      source=None, timeout=SOCK_TIMEOUT):
    """Sends CONNECT authority and reads the response head -> (socket, status, headers)."""
    sock = connect(proxy_host, proxy_port, timeout=timeout, source=source)
    try:
        sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{extra_headers}\r\n"
                     .encode())
        status, headers, _ = read_http_head(sock)
        return sock, status, headers
    except BaseException:
        sock.close()
        raise


def basic_auth(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
