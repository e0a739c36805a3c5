#!/usr/bin/env python3
"""Sends one end-to-end box through the Gateway API several times, the same
nonce and box each time (new message IDs), as a server replaying a message
would deliver it: gw_replay.py GATEWAY_URL FROM SECRET SK_HEX TO TEXT COUNT.
Uses the helpers of examples/gateway-echo-bot.py."""
import importlib.util
import os
import secrets
import sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "bot", os.path.join(here, "..", "..", "examples", "gateway-echo-bot.py"))
bot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bot)

url, gid, secret, sk, to, text, count = sys.argv[1:8]
b = bot.Bot(url, gid, secret, bytes.fromhex(sk))
nonce = secrets.token_bytes(bot.NONCE)
c = bot.box(bot.pad(0x01, text.encode()), nonce, b.pubkey(to), b.sk)
for _ in range(int(count)):
    fields = {"from": gid, "to": to, "secret": secret, "nonce": nonce.hex(), "box": c.hex()}
    args = []
    for k, v in fields.items():
        args += ["--data-urlencode", f"{k}={v}"]
    print(bot.curl(*args, f"{b.url}/send_e2e").strip())
