"""The seed's web app: answers with its hostname and a hit counter kept in redis.

Standard library only (the redis protocol is three lines of RESP), so the showcase needs
nothing beyond Debian's python3.
"""
import http.server
import os
import socket

REDIS = (os.environ.get("REDIS_HOST", "redis"), int(os.environ.get("REDIS_PORT", "6379")))
HOST = socket.gethostname()


def incr(key):
    with socket.create_connection(REDIS, timeout=2) as s:
        s.sendall(f"*2\r\n$4\r\nINCR\r\n${len(key)}\r\n{key}\r\n".encode())
        reply = s.makefile("rb").readline()
    if not reply.startswith(b":"):
        raise RuntimeError(f"redis said {reply!r}")
    return int(reply[1:])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body, code = b"ok\n", 200
        else:
            try:
                n = incr("hits")
                body, code = f"Hello from {HOST}! I have been seen {n} times.\n".encode(), 200
            except OSError as e:
                body, code = f"{HOST}: redis unreachable: {e}\n".encode(), 503
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(f"{HOST} {self.address_string()} {fmt % args}", flush=True)


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("", int(os.environ.get("PORT", "5000"))), Handler).serve_forever()
