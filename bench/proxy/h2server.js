// HTTP/2 server for the proxy benchmark (Node's http2, h2 only): `/`
// answers 2 bytes, `/big?n=BYTES` streams that many. Prints its port.
//
//   node h2server.js CERT KEY
const http2 = require('http2'), fs = require('fs');
const [cert, key] = process.argv.slice(2);
const chunk = Buffer.alloc(65536);
const srv = http2.createSecureServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
  const m = /[?&]n=(\d+)/.exec(req.url);
  if (!m) { res.writeHead(200, { 'content-length': 2 }); res.end('ok'); return; }
  let n = Number(m[1]);
  res.writeHead(200, { 'content-length': n });
  const more = () => {
    while (n > 0) {
      const k = Math.min(n, chunk.length);
      n -= k;
      if (!res.write(k === chunk.length ? chunk : chunk.subarray(0, k))) { res.once('drain', more); return; }
    }
    res.end();
  };
  more();
});
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
