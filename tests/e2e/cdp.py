"""Headless Chromium driven over the DevTools protocol, with Python's standard library only.

Chromium started with --remote-debugging-pipe reads protocol commands from its fd 3 and writes
responses and events to its fd 4, each message one JSON document followed by a NUL byte. A
reader thread collects what arrives; every wait is bounded. One Browser opens one page (a
target attached in flat mode, so commands carry its sessionId) and records what a person with
the developer tools open would see as errors: uncaught exceptions, console.error and
console.assert calls, and the browser's own error entries (failed loads, Content-Security-Policy
violations).

    with Browser() as b:
        b.navigate("http://127.0.0.1:9090/")
        b.evaluate("document.title")
        b.errors   # [] when the page is clean
"""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

CHROMIUM = "/usr/bin/chromium"


class CdpError(AssertionError):
    """A protocol command failed or a wait ran out."""


def chromium_available():
    return os.access(CHROMIUM, os.X_OK)


class Browser:
    """One headless Chromium with one page. close() (or leaving a with block) ends the browser
    and every process it started, and removes its profile directory."""

    def __init__(self, timeout=10.0, binary=CHROMIUM):
        self.timeout = timeout
        self.errors = []  # human-readable error entries, in arrival order
        self.console = []  # every console call and log entry: (level, text)
        self._profile = tempfile.mkdtemp(prefix="geoproxy-chromium-")
        self._next_id = 0
        self._replies = {}
        self._events = []
        self._cond = threading.Condition()
        self._eof = False
        self._stderr_path = os.path.join(self._profile, "stderr.log")
        self.session = None
        self.proc = None

        # Our ends stay where os.pipe put them; the browser's ends go above 4 first, so that
        # moving them to 3 and 4 in the child cannot overwrite one with the other.
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        to_browser_r, from_browser_w = _above_4(to_browser_r), _above_4(from_browser_w)

        argv = [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--metrics-recording-only", "--mute-audio",
                "--password-store=basic", "--use-mock-keychain", "--window-size=1280,900",
                "about:blank"]
        # The pipe ends go to fds 3 and 4 of the browser: bash moves them there and then
        # execs it (no preexec_fn, which is not safe in a process with threads).
        moves = (f"3<&{to_browser_r} 4>&{from_browser_w} "
                 f"{to_browser_r}<&- {from_browser_w}>&-")
        try:
            with open(self._stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    ["/bin/bash", "-c", f'exec "$0" "$@" {moves}', *argv],
                    stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                    pass_fds=(to_browser_r, from_browser_w),
                    start_new_session=True)  # its own process group: close() ends them all
        except BaseException:
            for fd in (to_browser_r, to_browser_w, from_browser_r, from_browser_w):
                os.close(fd)
            shutil.rmtree(self._profile, ignore_errors=True)
            raise
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._out = to_browser_w
        self._in = from_browser_r
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()
        try:
            self._open_page()
        except BaseException:
            self.close()
            raise

    # -- plumbing

    def _read_loop(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._in, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._eof = True
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self._events.append(msg)
                        self._note(msg)
                    self._cond.notify_all()

    def _note(self, msg):
        """Records errors from an event (called with the lock held)."""
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            exc = d.get("exception", {})
            text = exc.get("description") or d.get("text", "exception")
            self.errors.append(f"uncaught exception: {text} at {d.get('url', '')}:"
                               f"{d.get('lineNumber', -1) + 1}")
        elif method == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", "")))
                            for a in p.get("args", []))
            self.console.append((p.get("type"), args))
            if p.get("type") in ("error", "assert"):
                self.errors.append(f"console.{p.get('type')}: {args}")
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            self.console.append((e.get("level"), e.get("text", "")))
            if e.get("level") == "error":
                self.errors.append(f"{e.get('source', 'log')} error: {e.get('text', '')} "
                                   f"({e.get('url', '')})")

    def send(self, method, params=None, session=True, timeout=None):
        """Sends a command (to the page unless session=False) and returns its result."""
        timeout = self.timeout if timeout is None else timeout
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session and self.session is not None:
            msg["sessionId"] = self.session
        data = json.dumps(msg).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._out, data):]
        except OSError as e:
            raise CdpError(f"{method}: cannot write to the browser: {e}; {self._stderr_tail()}")
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    why = "the browser went away" if self._eof else f"no reply in {timeout}s"
                    raise CdpError(f"{method}: {why}; {self._stderr_tail()}")
                self._cond.wait(left)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method, timeout=None, since=0):
        """The first event named method at index >= since of the event log; returns it."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self._events[since:]:
                    if ev.get("method") == method:
                        return ev
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise CdpError(f"no {method} event within {timeout}s")
                self._cond.wait(left)

    def _open_page(self):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self.session = attached["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")

    def _stderr_tail(self):
        try:
            with open(self._stderr_path, encoding="utf-8", errors="replace") as f:
                return "browser stderr: " + f.read()[-2000:]
        except OSError:
            return "no browser stderr"

    # -- what tests call

    def navigate(self, url, timeout=None):
        """Loads url and waits for its load event."""
        with self._cond:
            mark = len(self._events)
        result = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise CdpError(f"navigating to {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", timeout=timeout, since=mark)

    def evaluate(self, expression, timeout=None):
        """The value of a JavaScript expression in the page (JSON-serialisable values)."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CdpError(f"evaluating {expression!r}: "
                           f"{d.get('exception', {}).get('description') or d.get('text')}")
        return r.get("result", {}).get("value")

    def close(self):
        """Ends the browser: a polite Browser.close, then the process group if need be."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.send("Browser.close", session=False, timeout=3)
            except CdpError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)  # the group this browser leads
                except (ProcessLookupError, PermissionError):
                    break
                try:
                    self.proc.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for fd in ("_out", "_in"):
            if getattr(self, fd, None) is not None:
                try:
                    os.close(getattr(self, fd))
                except OSError:
                    pass
                setattr(self, fd, None)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _above_4(fd):
    """fd moved to a number above 4 (close-on-exec; pass_fds makes it inheritable)."""
    if fd > 4:
        return fd
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high
