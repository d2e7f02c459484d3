// The peer of bench-stream: a plain Node.js Socket.IO server that only relays, as the seeds
// would have built it. POST /webhooks/github (HMAC-checked, nothing landed, nothing normalized)
// is answered 202 at once and emitted to room `events:all` as {type, room, timestamp, payload}.
//   node peer.mjs <port> <github webhook secret>
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { Server } from "socket.io";

const [port, secret] = process.argv.slice(2);
const answer = (res, status, body = "") =>
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
const http = createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/webhooks/github") { answer(res, 404); return; }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const expected = Buffer.from("sha256=" + createHmac("sha256", secret).update(body).digest("hex"));
    const given = Buffer.from(req.headers["x-hub-signature-256"] || "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) { answer(res, 401); return; }
    let payload;
    try { payload = JSON.parse(body); } catch { answer(res, 400); return; }
    const pr = payload.pull_request || payload.issue || {};
    const type = `github.${req.headers["x-github-event"]}.${payload.action}`;
    io.to("events:all").emit(type, {
      type, room: "events:all", timestamp: new Date().toISOString(),
      payload: { id: `github:${req.headers["x-github-delivery"]}`, title: pr.title, url: pr.html_url,
                 repo: payload.repository && payload.repository.full_name, number: pr.number },
    });
    answer(res, 202, '{"status":"relayed"}');
  });
});
const io = new Server(http, { cors: { origin: "*" } });
io.on("connection", (socket) => {
  socket.on("subscribe", (data, ack) => {
    const rooms = (data && data.rooms) || [];
    socket.join(rooms);
    if (typeof ack === "function") ack({ rooms, denied: [] });
  });
});
http.listen(Number(port), "127.0.0.1", () => process.stdout.write("listening\n"));
