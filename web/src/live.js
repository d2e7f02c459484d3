// One WebSocket to /ws: reconnect with exponential backoff (0.5 s doubling to 30 s, jittered),
// resubscribe to every room on each connect, and hand messages over in batches at most once per
// animation frame, so a burst of a thousand events a second costs one render per frame.
import { wsUrl } from "./api.js";

export function createLive({ getToken, onBatch, onState, onAuthFailed }) {
  const rooms = new Set();
  let socket = null;
  let buffer = [];
  let frame = 0;
  let attempt = 0;
  let retryTimer = 0;
  let stopped = false;
  let state = "connecting";

  const setState = (next) => {
    if (next !== state) { state = next; onState(next); }
  };

  const flush = () => {
    frame = 0;
    const batch = buffer;
    buffer = [];
    if (batch.length) onBatch(batch);
  };

  const push = (msg) => {
    if (msg && typeof msg === "object") buffer.push(msg);
  };

  const schedule = () => {
    if (frame) return;
    // A hidden tab gets no animation frames: fall back to a timer so the buffer cannot grow forever.
    frame = document.hidden ? setTimeout(flush, 250) : requestAnimationFrame(flush);
  };

  const send = (obj) => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(obj));
  };

  function connect() {
    if (stopped) return;
    const token = getToken();
    if (!token) { setState("offline"); return; }
    setState(attempt === 0 ? "connecting" : "offline");
    let ws;
    try {
      ws = new WebSocket(wsUrl(token));
    } catch {
      retry();
      return;
    }
    socket = ws;
    ws.onopen = () => {
      attempt = 0;
      setState("live");
      if (rooms.size) send({ type: "subscribe", rooms: [...rooms] });
    };
    ws.onmessage = (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      if (Array.isArray(data)) data.forEach(push); else push(data);
      schedule();
    };
    ws.onclose = (ev) => {
      if (socket !== ws) return;
      socket = null;
      if (ev.code === 4401) {
        // The token was refused or expired: retrying with it cannot help.
        setState("offline");
        onAuthFailed(ev.reason || "the token was refused");
        return;
      }
      retry();
    };
    ws.onerror = () => { /* onclose follows and decides */ };
  }

  function retry() {
    if (stopped) return;
    setState("offline");
    const delay = Math.min(30000, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
    attempt += 1;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  return {
    start() { stopped = false; attempt = 0; connect(); },
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      if (socket) { const s = socket; socket = null; s.close(); }
      setState("offline");
    },
    /** Reconnect now (after a new token, or the user pressing "retry"). */
    restart() { this.stop(); this.start(); },
    subscribe(names) {
      const fresh = names.filter((n) => !rooms.has(n));
      fresh.forEach((n) => rooms.add(n));
      if (fresh.length) send({ type: "subscribe", rooms: fresh });
    },
    unsubscribe(names) {
      const gone = names.filter((n) => rooms.delete(n));
      if (gone.length) send({ type: "unsubscribe", rooms: gone });
    },
    get state() { return state; },
  };
}
