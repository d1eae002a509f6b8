# A corporate proxy in front of the egress lab's "internet": CONNECT only,
# Basic proxy authentication (lab:pw), logging every CONNECT it is asked
# for. It resolves corp-only.lab.example itself (a name this machine's
# resolver does not know, as behind real corporate proxies).
#
#   python3 corp_proxy.py DIR PORT
import socket, threading, json, os, sys, base64, select

D, PORT = sys.argv[1], int(sys.argv[2])
LOG = os.path.join(D, "corp.jsonl")
OWN_NAMES = {"corp-only.lab.example": "198.51.100.2"}
lock = threading.Lock()


def relay(a, b):
    socks = [a, b]
    while True:
        r, _, _ = select.select(socks, [], [], 60)
        if not r:
            return
        for s in r:
            data = s.recv(65536)
            if not data:
                return
            (b if s is a else a).sendall(data)


def handle(c):
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(1)
        if not d:
            return
        head += d
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    with lock, open(LOG, "a") as f:
        f.write(json.dumps({"line": lines[0], "auth": hdrs.get("proxy-authorization", "")}) + "\n")
    method, target = lines[0].split(" ")[:2]
    if hdrs.get("proxy-authorization") != "Basic " + base64.b64encode(b"lab:pw").decode():
        c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
        return
    if method != "CONNECT":
        c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
        return
    host, port = target.rsplit(":", 1)
    try:
        u = socket.create_connection((OWN_NAMES.get(host, host), int(port)), timeout=10)
    except OSError:
        c.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
        return
    c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    relay(c, u)


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", PORT))
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
