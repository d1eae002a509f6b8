"""Proxy benchmark client: N requests on fresh connections (latency), then
one large download (throughput). Direct, or through the proxy named by
HTTPS_PROXY with CONNECT. Prints one JSON line."""
import base64, http.client, json, os, ssl, statistics, sys, time
from urllib.parse import unquote, urlparse

host, port, n, big, cafile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
proxy = os.environ.get("HTTPS_PROXY")

def conn():
    if proxy:
        p = urlparse(proxy)
        c = http.client.HTTPSConnection(p.hostname, p.port, context=ctx, timeout=30)
        headers = {}
        if p.username is not None:
            # Proxies that want credentials (srt's) carry them in the URL.
            cred = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            headers["Proxy-Authorization"] = "Basic " + base64.b64encode(cred).decode()
        c.set_tunnel(host, port, headers=headers)
        return c
    return http.client.HTTPSConnection(host, port, context=ctx, timeout=30)

def get(path):
    c = conn()
    c.request("GET", path)
    r = c.getresponse()
    size = 0
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        size += len(b)
    c.close()
    assert r.status == 200, r.status
    return size

get("/")  # warm-up
lat = []
for _ in range(n):
    t = time.perf_counter()
    get("/")
    lat.append((time.perf_counter() - t) * 1000)
t = time.perf_counter()
size = get(f"/big?n={big}")
secs = time.perf_counter() - t
print(json.dumps({"median_ms": statistics.median(lat), "p90_ms": sorted(lat)[int(len(lat) * 0.9) - 1], "mib_per_s": size / secs / 1048576}))
