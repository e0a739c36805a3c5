#!/usr/bin/env python3
"""An echo bot on Veil's Gateway (the published Gateway message API).

It speaks to the API with curl only, and needs nothing but Python's standard
library and libsodium (through ctypes) for the end-to-end encryption: the
bot keeps its own private key (end-to-end mode), veild never sees it.

    # 1. a key pair for the bot
    python3 examples/gateway-echo-bot.py --keygen      # prints SECRET_KEY PUBLIC_KEY (hex)
    # 2. the API identity (veild stopped), with the callback pointing at the bot
    veilctl gateway create --id '*ECHOBOT' --public-key PUBLIC_KEY \\
        --callback http://127.0.0.1:8099/callback      # prints "*ECHOBOT API_SECRET"
    # 3. start veild, then the bot
    GW_URL=http://127.0.0.1:8080/gateway GW_ID='*ECHOBOT' GW_SECRET=API_SECRET \\
        GW_KEY=SECRET_KEY python3 examples/gateway-echo-bot.py --port 8099
    # 4. write to it: veil send '*ECHOBOT' hello   ->   veil recv shows "echo: hello"

For each callback it checks the MAC (HMAC-SHA256 keyed with the API secret
over from, to, messageId, date, nonce, box), fetches the sender's public key
(GET /pubkeys/ID), opens the box, and answers a text message with
"echo: TEXT" through POST /send_e2e. Other message types are acknowledged
and ignored. With --log FILE it appends "FROM TEXT" for every text received.
"""
import ctypes, hashlib, hmac, os, secrets, subprocess, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

sodium = ctypes.CDLL("libsodium.so.23")
if sodium.sodium_init() < 0:
    sys.exit("libsodium does not start")
KEY, NONCE, MAC = 32, 24, 16


def keypair():
    pk, sk = ctypes.create_string_buffer(KEY), ctypes.create_string_buffer(KEY)
    sodium.crypto_box_keypair(pk, sk)
    return sk.raw, pk.raw


def box(msg, nonce, pk, sk):
    out = ctypes.create_string_buffer(len(msg) + MAC)
    if sodium.crypto_box_easy(out, msg, ctypes.c_ulonglong(len(msg)), nonce, pk, sk) != 0:
        raise ValueError("box failed")
    return out.raw


def box_open(c, nonce, pk, sk):
    if len(c) < MAC:
        raise ValueError("box too short")
    out = ctypes.create_string_buffer(len(c) - MAC)
    if sodium.crypto_box_open_easy(out, c, ctypes.c_ulonglong(len(c)), nonce, pk, sk) != 0:
        raise ValueError("box does not open")
    return out.raw


def pad(type_, body):
    """The end-to-end container: type, body, PKCS#7 padding (body + padding >= 32)."""
    n = max(1 + secrets.randbelow(255), 32 - len(body))
    return bytes([type_]) + body + bytes([n]) * n


def unpad(p):
    n = p[-1] if p else 0
    if n == 0 or n >= len(p) or p[-n:] != bytes([n]) * n:
        raise ValueError("bad padding")
    return p[0], p[1:-n]


def curl(*args):
    r = subprocess.run(["curl", "-sS", "--fail", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("curl: " + r.stderr.strip())
    return r.stdout


class Bot:
    def __init__(self, url, gid, secret, sk):
        self.url, self.id, self.secret, self.sk = url.rstrip("/"), gid, secret, sk
        self.keys = {}

    def pubkey(self, ident):
        if ident not in self.keys:
            q = urllib.parse.urlencode({"from": self.id, "secret": self.secret})
            text = curl(f"{self.url}/pubkeys/{urllib.parse.quote(ident)}?{q}")
            self.keys[ident] = bytes.fromhex(text.strip())
        return self.keys[ident]

    def send_text(self, to, text):
        nonce = secrets.token_bytes(NONCE)
        c = box(pad(0x01, text.encode()), nonce, self.pubkey(to), self.sk)
        fields = {"from": self.id, "to": to, "secret": self.secret,
                  "nonce": nonce.hex(), "box": c.hex()}
        args = []
        for k, v in fields.items():
            args += ["--data-urlencode", f"{k}={v}"]
        return curl(*args, f"{self.url}/send_e2e").strip()

    def mac_ok(self, f):
        msg = "".join(f.get(k, "") for k in ("from", "to", "messageId", "date", "nonce", "box"))
        want = hmac.new(self.secret.encode(), msg.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, f.get("mac", ""))

    def receive(self, f):
        """Returns the text of a text message, or None for other types."""
        typ, body = unpad(box_open(bytes.fromhex(f["box"]), bytes.fromhex(f["nonce"]),
                                   self.pubkey(f["from"]), self.sk))
        return body.decode() if typ == 0x01 else None


def serve(bot, port, log):
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            if n > 64 * 1024:
                return self.answer(413)
            f = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(n).decode()).items()}
            if not bot.mac_ok(f) or f.get("to") != bot.id:
                return self.answer(400)
            try:
                text = bot.receive(f)
            except Exception as e:  # a box that does not open is not worth a retry
                print("echo-bot: dropped a message:", e, file=sys.stderr, flush=True)
                return self.answer(200)
            if text is not None:
                if log:
                    with open(log, "a") as fh:
                        fh.write(f"{f['from']} {text}\n")
                try:
                    bot.send_text(f["from"], "echo: " + text)
                except Exception as e:
                    print("echo-bot: reply failed:", e, file=sys.stderr, flush=True)
                    return self.answer(500)  # veild calls again later
            self.answer(200)

        def answer(self, code):
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    HTTPServer(("127.0.0.1", port), H).serve_forever()


def main():
    if "--keygen" in sys.argv:
        sk, pk = keypair()
        print(sk.hex(), pk.hex())
        return
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 8099
    log = sys.argv[sys.argv.index("--log") + 1] if "--log" in sys.argv else None
    env = os.environ
    bot = Bot(env["GW_URL"], env["GW_ID"], env["GW_SECRET"], bytes.fromhex(env["GW_KEY"]))
    print(f"echo-bot: {bot.id} listening on 127.0.0.1:{port}", flush=True)
    serve(bot, port, log)


if __name__ == "__main__":
    main()
