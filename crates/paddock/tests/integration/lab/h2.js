// An HTTP/2 server on the far side of the egress lab (Node's own http2,
// HTTP/1.1 too by ALPN), logging every request with the protocol version
// it arrived in, and echoing the request's credential back.
//
//   node h2.js DIR ADDR PORT
const http2 = require('http2'), fs = require('fs');
const [dir, addr, port] = process.argv.slice(2);
const log = dir + '/h2-requests.jsonl';
const opts = { key: fs.readFileSync(dir + '/key.pem'), cert: fs.readFileSync(dir + '/cert.pem'), allowHTTP1: true };
http2.createSecureServer(opts, (req, res) => {
  let body = '';
  req.on('data', d => { body += d; });
  req.on('end', () => {
    fs.appendFileSync(log, JSON.stringify({ version: req.httpVersion, method: req.method, path: req.url,
      authority: req.headers[':authority'] || req.headers.host, headers: req.headers, body }) + '\n');
    const echo = req.headers['x-api-key'] || req.headers['authorization'] || '';
    res.writeHead(200, { 'content-type': 'application/json', 'x-echo-credential': echo });
    res.end(JSON.stringify({ ok: true, version: req.httpVersion, echo }));
  });
}).listen(Number(port), addr, () => console.log('ready'));
