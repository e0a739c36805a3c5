"""A UnifiedPush endpoint for tests/it/it_push.c (not a test itself).

python3 push_receiver.py PORT FILE

Every request becomes one JSON line in FILE: method, path, headers (names
in lower case), body (latin-1) and t (this process's monotonic clock). The
answer depends on the path: /fail-once-*: 503 the first time, then 201;
/gone-*: 410; anything else: 201. FILE.ready appears once it listens.
"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

port, out = int(sys.argv[1]), sys.argv[2]
seen = {}


class H(BaseHTTPRequestHandler):
    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        rec = {"method": self.command, "path": self.path,
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body.decode("latin-1"), "t": time.monotonic()}
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        seen[self.path] = seen.get(self.path, 0) + 1
        if self.path.startswith("/fail-once-") and seen[self.path] == 1:
            code = 503
        elif self.path.startswith("/gone-"):
            code = 410
        else:
            code = 201
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET = do_PUT = handle_any

    def log_message(self, *a):
        pass


srv = HTTPServer(("127.0.0.1", port), H)
open(out + ".ready", "w").close()
srv.serve_forever()
