// For working on the page without the sidecar's own static routes: serves ../streaming/static
// at /static/ and the page at /, and passes every other request (REST and the /ws upgrade) to the
// sidecar at CC_DEV_API (default http://127.0.0.1:8000). Same origin, as the sidecar serves it.
//
//   CC_DEV_API=http://127.0.0.1:8099 node dev-server.mjs 8098
import { createReadStream, existsSync, statSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const statics = join(dirname(fileURLToPath(import.meta.url)), "..", "streaming", "static");
const api = new URL(process.env.CC_DEV_API || "http://127.0.0.1:8000");
const port = Number(process.argv[2] || 8090);
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".png": "image/png" };

const server = http.createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  const file = path === "/" ? join(statics, "page", "index.html")
    : path.startsWith("/static/") ? normalize(join(statics, path.slice("/static/".length))) : null;
  if (file !== null) {
    if (!file.startsWith(statics) || !existsSync(file) || !statSync(file).isFile()) { res.writeHead(404).end(); return; }
    res.writeHead(200, { "Content-Type": TYPES[extname(file)] || "application/octet-stream", "Cache-Control": "no-cache" });
    createReadStream(file).pipe(res);
    return;
  }
  const upstream = http.request({ host: api.hostname, port: api.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
    res.writeHead(up.statusCode, up.headers);
    up.pipe(res);
  });
  upstream.on("error", (err) => { res.writeHead(502).end(`sidecar unreachable: ${err.message}`); });
  req.pipe(upstream);
});

server.on("upgrade", (req, socket, head) => {
  const up = net.connect(Number(api.port), api.hostname, () => {
    const lines = [`${req.method} ${req.url} HTTP/1.1`, ...Object.entries(req.headers).map(([k, v]) => `${k}: ${v}`), "", ""];
    up.write(lines.join("\r\n"));
    if (head.length) up.write(head);
    up.pipe(socket);
    socket.pipe(up);
  });
  const close = () => { up.destroy(); socket.destroy(); };
  up.on("error", close);
  socket.on("error", close);
});

server.listen(port, "127.0.0.1", () => console.log(`page on http://127.0.0.1:${port}/ -> API ${api.origin}`));
