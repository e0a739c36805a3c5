"""JSON-RPC over the daemon's unix socket, for the shell tests (not a test itself).

python3 rpc.py SOCK 'LINE' ...   sends each line, prints one answer per line
python3 rpc.py SOCK --wait-text TEXT SECONDS   subscribes, prints the first
    'receive' notification whose text is TEXT (exit 1 if none came in time)
"""
import json, socket, sys, time

def conn(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s, s.makefile("rb")

def main():
    path, args = sys.argv[1], sys.argv[2:]
    if args and args[0] == "--wait-text":
        s, f = conn(path)
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"subscribe"}\n')
        print("subscribed", file=sys.stderr, flush=True)
        s.settimeout(float(args[2]))
        try:
            for line in f:
                m = json.loads(line)
                if m.get("method") == "receive" and m["params"].get("text") == args[1]:
                    print(json.dumps(m["params"]))
                    return 0
        except socket.timeout:
            pass
        return 1
    s, f = conn(path)
    s.settimeout(60)
    for a in args:
        s.sendall(a.encode() + b"\n")
        line = f.readline()
        print(line.decode().rstrip("\n") if line else "EOF")
    return 0

sys.exit(main())
