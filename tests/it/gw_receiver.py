"""A Gateway callback receiver for tests/it/gateway.sh (not a test itself).

python3 gw_receiver.py PORT DIR SECRET SECRET_KEY_HEX GW_URL GW_ID

POST /cb: checks the MAC with Python's own hmac (an implementation
independent of veild's), opens the box with the bot's secret key (the
sender's public key from GET /pubkeys) and appends one JSON line
{from, to, messageId, date, nickname, text} to DIR/got.jsonl. While the file
DIR/down exists it answers 503 instead (counting tries in DIR/tries); a bad
MAC is answered 400 and logged in DIR/badmac. While DIR/slow exists each
callback is answered 0.3 s after it was recorded (requests are served
concurrently), so that two nodes posting the same message would both be seen.
POST /sms: appends the body to DIR/sms.log (the SMS webhook of link codes).
"""
import hashlib, hmac, importlib.util, json, os, sys, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "echo_bot", os.path.join(here, "../../examples/gateway-echo-bot.py"))
bot_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bot_mod)

port, d, secret, sk, url, gid = sys.argv[1:7]
bot = bot_mod.Bot(url, gid, secret, bytes.fromhex(sk))


def append(name, text):
    with open(os.path.join(d, name), "a") as f:
        f.write(text + "\n")


class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/sms":
            append("sms.log", body.decode())
            return self.answer(200)
        if os.path.exists(os.path.join(d, "down")):
            append("tries", "1")
            return self.answer(503)
        f = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        msg = "".join(f.get(k, "") for k in ("from", "to", "messageId", "date", "nonce", "box"))
        mac = hmac.new(secret.encode("ascii"), msg.encode("ascii"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, f.get("mac", "")):
            append("badmac", body.decode())
            return self.answer(400)
        try:
            text = bot.receive(f)
        except Exception as e:
            text = "UNREADABLE " + str(e)
        rec = {k: f.get(k) for k in ("from", "to", "messageId", "date", "nickname")}
        rec["text"] = text
        append("got.jsonl", json.dumps(rec))
        if os.path.exists(os.path.join(d, "slow")):
            time.sleep(0.3)
        self.answer(200)

    def answer(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


ThreadingHTTPServer(("127.0.0.1", int(port)), H).serve_forever()
