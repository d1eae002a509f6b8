# The far side of the egress tests: the servers a sandboxed client reaches
# through paddock's proxy, at routable addresses in a network namespace of
# their own. Every request is logged as it arrived (raw path, the path a
# lenient server would make of it, every header, the body): the log is the
# ground truth the tests judge by, never the client's exit code.
#
#   python3 upstream.py DIR ADDR LOGNAME
#
# Serves TLS on ADDR:443 (DIR/cert.pem, DIR/key.pem) and plain HTTP on
# ADDR:80. By Host: github.com is a git smart-HTTP server (DIR/git),
# registry.npmjs.org an npm registry (DIR/npm), anything else a stand-in
# for the Anthropic API that also echoes the request's headers back.
import http.server, ssl, sys, json, os, subprocess, threading, posixpath, urllib.parse

D, ADDR, LOGNAME = sys.argv[1], sys.argv[2], sys.argv[3]
LOG = os.path.join(D, LOGNAME)
lock = threading.Lock()


def lenient(path):
    """What a server that decodes, normalises and ignores case and ;params
    makes of a path: the tests check no refused path got this far."""
    p = path.split("?", 1)[0]
    for _ in range(3):
        p = urllib.parse.unquote(p)
    p = p.replace("\\", "/")
    p = "/".join(seg.split(";")[0] for seg in p.split("/"))
    return posixpath.normpath("/" + p).lower()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            out = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n)

    def reply(self, code, body, ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route(self):
        body = self.body()
        host = (self.headers.get("host") or "").split(":")[0]
        hdrs = {}
        for k, v in self.headers.items():
            hdrs[k.lower()] = (hdrs[k.lower()] + ", " + v) if k.lower() in hdrs else v
        with lock, open(LOG, "a") as f:
            f.write(json.dumps({"tls": isinstance(self.connection, ssl.SSLSocket), "host": host,
                                "method": self.command, "path": self.path, "lenient": lenient(self.path),
                                "headers": hdrs, "body": body.decode("utf-8", "replace")[:65536]}) + "\n")
        if (self.headers.get("upgrade") or "").lower() == "websocket":
            return self.websocket()
        if host == "github.com":
            return self.git(body)
        if host == "registry.npmjs.org":
            return self.npm()
        path = self.path.split("?")[0]
        if path.startswith("/v1/messages"):
            if b'"stream":true' in body.replace(b" ", b""):
                return self.stream()
            msg = {"id": "msg_lab", "type": "message", "role": "assistant", "model": "claude-lab",
                   "content": [{"type": "text", "text": "pong from the lab"}], "stop_reason": "end_turn",
                   "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 3}}
            return self.reply(200, json.dumps(msg).encode())
        # Everything else echoes what arrived, headers included: a server
        # that hands a secret back must not hand it to the sandbox.
        echo = self.headers.get("x-api-key") or self.headers.get("authorization") or ""
        return self.reply(200, json.dumps({"ok": True, "headers": hdrs}).encode(),
                          extra=[("x-echo-credential", echo)])

    def websocket(self):
        """A WebSocket echo: each text message comes back as 'echo: ...'."""
        import base64, hashlib
        key = self.headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            head = self.rfile.read(2)
            if len(head) < 2 or head[0] & 0x0F == 8:
                return
            n = head[1] & 0x7F
            if n == 126:
                n = int.from_bytes(self.rfile.read(2), "big")
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
            out = b"echo: " + data
            self.wfile.write(bytes([0x81, len(out)]) + out)
            self.wfile.flush()

    def stream(self):
        evs = [
            ("message_start", {"type": "message_start", "message": {"id": "msg_lab", "type": "message", "role": "assistant", "model": "claude-lab", "content": [], "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "pong from the lab"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 4}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        out = "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in evs).encode()
        self.reply(200, out, "text/event-stream")

    def git(self, body):
        path, _, query = self.path.partition("?")
        auth = self.headers.get("authorization")
        if ("git-receive-pack" in self.path) and not auth:
            return self.reply(401, b"auth needed", "text/plain", [("www-authenticate", 'Basic realm="lab"')])
        env = dict(os.environ, GIT_PROJECT_ROOT=os.path.join(D, "git"), GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get("content-type", ""), CONTENT_LENGTH=str(len(body)),
                   REMOTE_ADDR="198.51.100.1", GIT_PROTOCOL=self.headers.get("git-protocol", ""),
                   HTTP_CONTENT_ENCODING=self.headers.get("content-encoding", ""))
        if auth:
            env["REMOTE_USER"] = "lab"
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        code, extra = 200, []
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                code = int(v.strip().split()[0])
            elif k:
                extra.append((k, v.strip()))
        ctype = dict((k.lower(), v) for k, v in extra).get("content-type", "application/octet-stream")
        self.reply(code, payload, ctype, [(k, v) for k, v in extra if k.lower() != "content-type"])

    def npm(self):
        path = urllib.parse.unquote(self.path.split("?")[0]).lstrip("/")
        if self.command in ("PUT", "POST", "DELETE"):
            return self.reply(200, b'{"ok": true, "published": true}')
        f = os.path.join(D, "npm", path.replace("/", "__"))
        if os.path.isfile(f):
            ctype = "application/octet-stream" if f.endswith(".tgz") else "application/json"
            return self.reply(200, open(f, "rb").read(), ctype)
        return self.reply(404, b'{"error": "not found"}')

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = route

    def log_message(self, *a):
        pass


def seed():
    """The far side's content: one public git repository and one npm
    package, made once per lab folder."""
    import hashlib, base64, io, tarfile
    repo = os.path.join(D, "git", "lab", "repo.git")
    if not os.path.isdir(repo):
        seedw = os.path.join(D, "git-seed")
        g = ["git", "-c", "user.name=lab", "-c", "user.email=lab@lab.example", "-c", "init.defaultBranch=main"]
        subprocess.run(g + ["init", "-q", seedw], check=True)
        open(os.path.join(seedw, "README.md"), "w").write("public content\n")
        subprocess.run(g + ["-C", seedw, "add", "."], check=True)
        subprocess.run(g + ["-C", seedw, "commit", "-qm", "public"], check=True)
        subprocess.run(["git", "clone", "-q", "--bare", seedw, repo + ".tmp"], check=True)
        os.rename(repo + ".tmp", repo)
    npm = os.path.join(D, "npm")
    if not os.path.isdir(npm):
        os.makedirs(npm + ".tmp", exist_ok=True)
        for name in ("left-pad-lab", "@lab/scoped"):
            npm_package(npm + ".tmp", name)
        os.rename(npm + ".tmp", npm)


def npm_package(where, pkg):
    import hashlib, base64, io, tarfile
    base = pkg.split("/")[-1]
    if True:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name, text in [("package/package.json", json.dumps({"name": pkg, "version": "1.0.0", "main": "index.js"})),
                               ("package/index.js", f"module.exports = () => '{pkg} works';\n")]:
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                t.addfile(info, io.BytesIO(data))
        tgz = buf.getvalue()
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
        tarball = f"{pkg}/-/{base}-1.0.0.tgz"
        doc = {"name": pkg, "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": {
            "name": pkg, "version": "1.0.0", "main": "index.js",
            "dist": {"tarball": "https://registry.npmjs.org/" + tarball,
                     "integrity": integrity, "shasum": hashlib.sha1(tgz).hexdigest()}}}}
        open(os.path.join(where, pkg.replace("/", "__")), "w").write(json.dumps(doc))
        open(os.path.join(where, tarball.replace("/", "__")), "wb").write(tgz)


class Server(http.server.ThreadingHTTPServer):
    address_family = __import__("socket").AF_INET6 if ":" in ADDR else __import__("socket").AF_INET


def serve(port, tls):
    s = Server((ADDR, port), H)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(D, "cert.pem"), os.path.join(D, "key.pem"))
        s.socket = ctx.wrap_socket(s.socket, server_side=True)
    threading.Thread(target=s.serve_forever, daemon=True).start()


if ADDR.endswith(".2"):
    seed()
serve(443, True)
serve(80, False)
print("ready", flush=True)
threading.Event().wait()
