// The seeds' Socket.IO client, as written there, for the sidecar's tests:
//   node client.mjs <url> <token> <room,room,...> [count]
// Prints one JSON line per thing that happens ({"event": name, "data": ...}) and exits after
// `count` events other than `subscribed` (default 1), or with 1 when the connection is refused.
import { io } from "socket.io-client";

const [url, token, rooms = "events:all", count = "1"] = process.argv.slice(2);
const out = (event, data) => process.stdout.write(JSON.stringify({ event, data }) + "\n");
let left = Number(count);

const socket = io(url, { auth: { token }, transports: ["websocket"], reconnection: false });
socket.on("connect_error", (err) => { out("connect_error", { message: err.message }); process.exit(1); });
socket.on("disconnect", (reason) => { out("disconnect", { reason }); process.exit(left > 0 ? 2 : 0); });
socket.on("connect", () => {
  socket.emit("subscribe", { rooms: rooms.split(",") }, (answer) => out("subscribe_ack", answer));
});
socket.onAny((event, message) => {
  out(event, message);
  if (event !== "subscribed" && --left <= 0) { socket.close(); process.exit(0); }
});
setTimeout(() => { out("timeout", {}); process.exit(3); }, 30000);
