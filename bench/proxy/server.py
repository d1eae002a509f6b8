"""HTTPS server for the proxy benchmark: `/` answers 2 bytes, `/big?n=BYTES`
streams that many bytes. Prints its port, then serves until killed."""
import http.server, ssl, sys

CHUNK = b"\0" * 65536

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body in one segment: without these, Nagle's algorithm and
    # delayed ACKs add ~40 ms to every small response and hide everything.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16

    def do_GET(self):
        if self.path.startswith("/big"):
            n = int(self.path.split("n=")[1])
            self.send_response(200)
            self.send_header("content-length", str(n))
            self.end_headers()
            while n > 0:
                k = min(n, len(CHUNK))
                self.wfile.write(CHUNK[:k])
                n -= k
        else:
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    def log_message(self, *a):
        pass

# Every address: the transparent path reaches it at the host's own address.
s = http.server.ThreadingHTTPServer(("0.0.0.0", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
