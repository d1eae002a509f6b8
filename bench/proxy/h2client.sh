#!/bin/sh
# HTTP/2 proxy benchmark client: N requests with curl --http2 on fresh
# connections (latency), then three large downloads (throughput: their median), directly or
# through HTTPS_PROXY. Prints one JSON line like client.py, with the HTTP
# version curl spoke.
#
#   h2client.sh HOST PORT N BYTES CAFILE
set -eu
host=$1 port=$2 n=$3 big=$4 ca=$5
url="https://$host:$port"
lat=$(mktemp)
# Through the proxy when HTTPS_PROXY names one, even for 127.0.0.1 (which
# NO_PROXY would otherwise send directly).
if [ -n "${HTTPS_PROXY:-}" ]; then
    curl() { command curl --proxy "$HTTPS_PROXY" --noproxy '' "$@"; }
fi
curl -sS --http2 --cacert "$ca" -o /dev/null "$url/"
i=0
while [ "$i" -lt "$n" ]; do
    curl -sS --http2 --cacert "$ca" -o /dev/null -w '%{time_total}\n' "$url/" >> "$lat"
    i=$((i + 1))
done
# Three downloads, their median: one swings with whatever else the two
# cores are doing.
speeds=""
for _ in 1 2 3; do
    out=$(curl -sS --http2 --cacert "$ca" -o /dev/null -w '%{speed_download} %{http_version}' "$url/big?n=$big")
    speeds="$speeds ${out% *}"
done
python3 - "$lat" "${out#* }" $speeds <<'PY'
import json, statistics, sys
lat = sorted(float(l) * 1000 for l in open(sys.argv[1]) if l.strip())
speed = statistics.median(float(s) for s in sys.argv[3:])
print(json.dumps({"median_ms": statistics.median(lat), "p90_ms": lat[int(len(lat) * 0.9) - 1],
                  "mib_per_s": speed / 1048576, "http_version": sys.argv[2]}))
PY
rm -f "$lat"
