"""Starts a real `herald serve --dev` for the tests, and the real HTTP peers they need."""

from __future__ import annotations

import http.server
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def herald_binary(cleanup: list) -> str:
    """$HERALD_BIN (the Go test that runs this suite sets it), else a binary built with go build."""
    if os.environ.get("HERALD_BIN"):
        return os.environ["HERALD_BIN"]
    d = tempfile.mkdtemp(prefix="herald-py-bin-")
    cleanup.append(d)
    binary = os.path.join(d, "herald")
    subprocess.run(["go", "build", "-o", binary, "./cmd/herald"], cwd=REPO_ROOT, check=True)
    return binary


class Server:
    """herald serve --dev on a free loopback port, with a fresh data directory and admin key."""

    def __init__(self, ready_within: float = 60.0):
        self._cleanup: list = []
        self.data_dir = tempfile.mkdtemp(prefix="herald-py-data-")
        self._cleanup.append(self.data_dir)
        self.admin_key = "hk_admin_" + secrets.token_hex(16)
        env = dict(os.environ, HERALD_API_KEY=self.admin_key)
        self.proc = subprocess.Popen(
            [herald_binary(self._cleanup), "serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", self.data_dir],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = ""
        found = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log += line
                m = re.search(r'"herald is serving" addr=(\S+)', line)
                if m:
                    self.url = "http://" + m.group(1)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(ready_within):
            self.stop()
            raise RuntimeError("herald did not start:\n" + self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for d in self._cleanup:
            shutil.rmtree(d, ignore_errors=True)


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""


def _serve(handler) -> http.server.ThreadingHTTPServer:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class Receiver:
    """An HTTP server that records every request (path, headers, raw body) and answers 204."""

    def __init__(self):
        self.received: list = []
        outer = self

        class Handler(_Quiet):
            def do_POST(self):
                outer.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, self.body()))
                self.send_response(204)
                self.end_headers()

        self.srv = _serve(Handler)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def wait_for(self, what, match, within: float = 20.0):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for r in list(self.received):
                if match(r):
                    return r
            time.sleep(0.05)
        raise AssertionError("timed out waiting for " + what)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class LossyProxy:
    """Forwards to target; the first request matching drop is forwarded, its answer read, and the
    client's connection cut: the request took effect, the client never learns it."""

    def __init__(self, target: str, drop):
        self.seen: list = []
        self.dropped = False
        outer = self

        class Handler(_Quiet):
            def handle_any(self):
                body = self.body()
                matches = drop(self.command, self.path)
                if matches:
                    outer.seen.append(body)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
                req = urllib.request.Request(target + self.path, data=body or None, method=self.command, headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        status, ctype, answer = resp.status, resp.headers.get("Content-Type"), resp.read()
                except urllib.error.HTTPError as e:
                    status, ctype, answer = e.code, e.headers.get("Content-Type"), e.read()
                if matches and not outer.dropped:
                    outer.dropped = True
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(status)
                self.send_header("Content-Type", ctype or "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PATCH = do_DELETE = handle_any

        self.srv = _serve(Handler)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
