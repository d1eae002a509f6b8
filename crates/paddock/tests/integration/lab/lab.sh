# A two-host network for the egress tests, run under `unshare -rnm`: this
# namespace is the machine paddock runs on (198.51.100.1 on a veth), a
# second network namespace is "the internet" (198.51.100.2) where the
# upstream servers listen on 443 and 80 (upstream.py) and 8443 (h2.js, HTTP/2),
# and an IPv6-only one at 2001:db8:100::2 (v6only.lab.example). Names resolve through the real
# resolver, from an /etc/hosts bound over the system's for this mount
# namespace only. A host service listens on this machine's own address
# (198.51.100.1:443), which no name may lead to, and a corporate proxy on
# this machine's loopback (127.0.0.1:3129, corp_proxy.py).
#
#   sh lab.sh DIR COMMAND...
set -eu
D=$1; shift
mount --bind "$D/hosts" /etc/hosts
ip link set lo up
unshare -n sh -c 'echo $$ > "$0"; exec sleep 3600' "$D/far.pid" &
while [ ! -s "$D/far.pid" ]; do sleep 0.01; done
FAR=$(cat "$D/far.pid")
ip link add pd0 type veth peer name pd1
ip link set pd1 netns "$FAR"
ip addr add 198.51.100.1/24 dev pd0
ip addr add 2001:db8:100::1/64 dev pd0 nodad
ip link set pd0 up
nsenter -t "$FAR" -n sh -c 'ip link set lo up; ip addr add 198.51.100.2/24 dev pd1; ip addr add 2001:db8:100::2/64 dev pd1 nodad; ip link set pd1 up'
nsenter -t "$FAR" -n python3 "$D/upstream.py" "$D" 198.51.100.2 requests.jsonl > "$D/far.out" 2>&1 &
UP=$!
nsenter -t "$FAR" -n python3 "$D/upstream.py" "$D" 2001:db8:100::2 v6-requests.jsonl > "$D/v6.out" 2>&1 &
V6=$!
nsenter -t "$FAR" -n node "$D/h2.js" "$D" 198.51.100.2 8443 > "$D/h2.out" 2>&1 &
H2=$!
python3 "$D/upstream.py" "$D" 198.51.100.1 own-requests.jsonl > "$D/own.out" 2>&1 &
OWN=$!
python3 "$D/corp_proxy.py" "$D" 3129 > "$D/corp.out" 2>&1 &
CORP=$!
n=0
until grep -q ready "$D/far.out" && grep -q ready "$D/v6.out" && grep -q ready "$D/own.out" && grep -q ready "$D/h2.out" && grep -q ready "$D/corp.out"; do
    n=$((n + 1)); [ $n -lt 500 ] || { cat "$D/far.out" "$D/v6.out" "$D/own.out" "$D/h2.out" "$D/corp.out" >&2; exit 99; }
    sleep 0.02
done
set +e
"$@"
rc=$?
kill "$UP" "$V6" "$H2" "$OWN" "$CORP" "$FAR" 2>/dev/null
exit $rc
