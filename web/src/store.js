// The page's state and everything that changes it: REST loads, live messages (applied a batch
// per animation frame), and polling while the WebSocket is down. Components read `store.state`
// and call the actions; one notification per change re-renders the page.
import { adoptTokenFromUrl, api, ApiError, getToken, onAuthProblem, setToken } from "./api.js";
import { createLive } from "./live.js";
import { parseTime } from "./format.js";

export const FEED_MAX = 200;
const TIMELINE_MAX = 1000;
const POLL_MS = 4000;
const PAGE = 25;
export const RANGES = ["1h", "24h", "7d", "30d"];

const listeners = new Set();
export const subscribe = (fn) => { listeners.add(fn); return () => listeners.delete(fn); };

export const state = {
  auth: { status: "none", message: "", forbidden: {} },
  conn: "connecting",
  overview: null,
  overviewError: "",
  alerts: { list: [], counts: null, error: "" },
  feed: [],
  feedPaused: false,
  feedHeld: [],
  feedFilter: { source: "", type: "" },
  workflows: { rows: [], total: null, nextCursor: null, filters: { status: "", provider: "", assignee: "" }, loading: false, error: "" },
  selected: null,
  timeline: { events: [], workflow: null, loading: false, error: "" },
  instances: { list: [], error: "" },
  command: null, // {pending, text, ok}
  metrics: { range: "1h", data: null, error: "", liveSamples: [] },
};

let scheduled = false;
export function changed() {
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => { scheduled = false; listeners.forEach((fn) => fn()); });
}

const errorText = (err) => (err instanceof ApiError ? (err.status ? `${err.status}: ${err.detail}` : err.detail) : String(err));

// --- auth ----------------------------------------------------------------------------------------

onAuthProblem((err) => {
  if (err.status === 401) {
    state.auth = { ...state.auth, status: "invalid", message: err.detail };
  } else {
    state.auth = { ...state.auth, forbidden: { ...state.auth.forbidden, [err.path]: err.detail } };
  }
  changed();
});

export function useToken(token) {
  setToken(token);
  state.auth = { status: token ? "ok" : "none", message: "", forbidden: {} };
  changed();
  if (token) { live.restart(); loadAll(); }
}

export function forgetToken() {
  setToken("");
  live.stop();
  state.auth = { status: "none", message: "", forbidden: {} };
  changed();
}

// --- loads ---------------------------------------------------------------------------------------

export async function loadOverview() {
  try { state.overview = await api("/dashboard/overview"); state.overviewError = ""; } catch (e) { state.overviewError = errorText(e); }
  changed();
}

export async function loadAlerts() {
  try {
    const data = await api("/api/alerts", { params: { limit: 100 } });
    state.alerts = { list: data.alerts, counts: data.counts, error: "" };
  } catch (e) { state.alerts = { ...state.alerts, error: errorText(e) }; }
  changed();
}

export async function loadFeed() {
  // The latest events, for the first paint and while polling; live messages add to them.
  try {
    const data = await api("/api/events", { params: { limit: 100 } });
    mergeFeed(data.events.slice().reverse());
  } catch { /* the feed is filled live as well; the overview's error already says why */ }
  changed();
}

function workflowParams(extra) {
  const f = state.workflows.filters;
  return { status: f.status, provider: f.provider, assignee: f.assignee, limit: PAGE, ...extra };
}

export async function loadWorkflows({ more = false } = {}) {
  const w = state.workflows;
  state.workflows = { ...w, loading: true };
  changed();
  try {
    const data = await api("/api/workflows", { params: workflowParams(more ? { cursor: w.nextCursor } : {}) });
    const rows = more ? dedupeRows([...state.workflows.rows, ...data.workflows]) : data.workflows;
    state.workflows = { ...state.workflows, rows, total: data.total, nextCursor: data.nextCursor, loading: false, error: "" };
  } catch (e) {
    state.workflows = { ...state.workflows, loading: false, error: errorText(e) };
  }
  changed();
}

/** Polling: refresh the first page without losing the pages already loaded below it. */
async function refreshWorkflowHead() {
  try {
    const data = await api("/api/workflows", { params: workflowParams({}) });
    const rest = state.workflows.rows.filter((r) => !data.workflows.some((d) => d.id === r.id));
    const keepCursor = state.workflows.rows.length > data.workflows.length;
    state.workflows = {
      ...state.workflows, rows: sortRows([...data.workflows, ...(keepCursor ? rest : [])]), total: data.total,
      nextCursor: keepCursor ? state.workflows.nextCursor : data.nextCursor, error: "",
    };
  } catch (e) { state.workflows = { ...state.workflows, error: errorText(e) }; }
  changed();
}

export function setWorkflowFilter(name, value) {
  state.workflows = { ...state.workflows, filters: { ...state.workflows.filters, [name]: value }, nextCursor: null };
  loadWorkflows();
}

export async function loadInstances() {
  try { state.instances = { list: (await api("/api/charlie/instances")).instances, error: "" }; } catch (e) { state.instances = { ...state.instances, error: errorText(e) }; }
  changed();
}

export async function loadMetrics(range = state.metrics.range) {
  state.metrics = { ...state.metrics, range, error: "" };
  if (range !== "1h") state.metrics.liveSamples = [];
  changed();
  try {
    // One read: events, workflows, host samples, agent sessions with their cost, cron runs by status.
    const data = await api("/dashboard/metrics", { params: { timeRange: range } });
    if (state.metrics.range !== range) return; // another range was asked for meanwhile
    state.metrics = { ...state.metrics, data, error: "" };
  } catch (e) {
    state.metrics = { ...state.metrics, error: errorText(e) };
  }
  changed();
}

export async function selectWorkflow(id) {
  const previous = state.selected;
  if (previous === id) return;
  if (previous) live.unsubscribe([`workflows:${previous}`]);
  state.selected = id;
  const known = state.workflows.rows.find((r) => r.id === id) || null;
  state.timeline = { events: [], workflow: known, loading: Boolean(id), error: "" };
  changed();
  if (!id) return;
  live.subscribe([`workflows:${id}`]);
  await loadTimeline(id);
}

async function loadTimeline(id) {
  try {
    const data = await api("/api/events", { params: { workflow: id, limit: 500 } });
    if (state.selected !== id) return;
    const byId = new Map(data.events.map((e) => [e.id, e]));
    for (const e of state.timeline.events) byId.set(e.id, e); // live ones that came in meanwhile
    state.timeline = { ...state.timeline, events: sortEvents([...byId.values()]).slice(-TIMELINE_MAX), loading: false, error: "" };
  } catch (e) {
    if (state.selected === id) state.timeline = { ...state.timeline, loading: false, error: errorText(e) };
  }
  changed();
}

// --- commands and acks ---------------------------------------------------------------------------

export async function sendCommand(instanceId, command, extra = {}) {
  state.command = { pending: true, ok: null, text: `Sending ${command} to ${instanceId}…` };
  changed();
  try {
    const r = await api("/api/charlie/command", { method: "POST", body: { instanceId, command, ...extra } });
    const ok = r.status === "accepted";
    const answer = r.error || (r.result && typeof r.result === "object" ? JSON.stringify(r.result) : r.result ?? "");
    state.command = { pending: false, ok, text: `${command} → ${instanceId}: ${r.status}${r.httpStatus ? ` (HTTP ${r.httpStatus})` : ""}${answer ? ` — ${answer}` : ""}` };
    loadInstances();
  } catch (e) {
    const hint = e.status === 403 ? " (the token needs the `commands` scope)" : "";
    state.command = { pending: false, ok: false, text: `${command} → ${instanceId} refused: ${errorText(e)}${hint}` };
  }
  changed();
}

export async function ackAlert(id) {
  try {
    const alert = await api(`/api/alerts/${encodeURIComponent(id)}/ack`, { method: "POST" });
    upsertAlert(alert);
    loadAlerts();
  } catch (e) {
    state.alerts = { ...state.alerts, error: `acknowledge failed: ${errorText(e)}` };
  }
  changed();
}

// --- the feed ------------------------------------------------------------------------------------

const feedKey = (e) => `${e.id}|${e.type}`;

function mergeFeed(events) {
  const seen = new Set(state.feed.map(feedKey));
  const fresh = events.filter((e) => e && e.id && !seen.has(feedKey(e)));
  if (!fresh.length) return;
  if (state.feedPaused) {
    state.feedHeld = [...fresh.reverse(), ...state.feedHeld].slice(0, FEED_MAX);
    return;
  }
  // Arrival order, newest first: a delivery carrying an old timestamp (a late webhook) still shows on top.
  state.feed = [...fresh.reverse(), ...state.feed].slice(0, FEED_MAX);
}

export function toggleFeedPause() {
  state.feedPaused = !state.feedPaused;
  if (!state.feedPaused && state.feedHeld.length) {
    const held = state.feedHeld;
    state.feedHeld = [];
    mergeFeed(held.reverse());
  }
  changed();
}

export function setFeedFilter(name, value) {
  state.feedFilter = { ...state.feedFilter, [name]: value };
  changed();
}

// --- live messages -------------------------------------------------------------------------------

const sortEvents = (events) => events.sort((a, b) => (parseTime(a.timestamp) ?? 0) - (parseTime(b.timestamp) ?? 0));
const rowTime = (r) => parseTime(r.lastEventAt) ?? 0;
const sortRows = (rows) => rows.sort((a, b) => rowTime(b) - rowTime(a) || (a.id < b.id ? 1 : -1));
function dedupeRows(rows) {
  const seen = new Set();
  return rows.filter((r) => (seen.has(r.id) ? false : seen.add(r.id)));
}

function rowMatches(row) {
  const f = state.workflows.filters;
  if (f.status && row.status !== f.status) return false;
  if (f.provider && !(row.sources || []).includes(f.provider)) return false;
  if (f.assignee) {
    const a = row.assignee || {};
    if (![a.id, a.name, row.charlieInstanceId].includes(f.assignee)) return false;
  }
  return true;
}

/** The `nextCursor` /api/workflows would give after `row` (its documented `<µs>:<tier>:<id>` form). */
function cursorAfter(row) {
  const m = /^(.*?T[\d:]+)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/.exec(row.lastEventAt || "");
  if (!m) return null;
  const ms = Date.parse(m[1] + (m[3] || "Z"));
  return Number.isNaN(ms) ? null : `${ms * 1000 + Number((m[2] || "").padEnd(6, "0").slice(0, 6))}:live:${row.id}`;
}

/** A frame's workflow updates applied at once (one sort, not one per message). The table keeps the
 *  rows it had loaded: a burst of new workflows pushes the oldest down and off, and "more" then
 *  resumes right after the last row shown, so paging still reaches every workflow. */
function upsertWorkflows(updates) {
  const w = state.workflows;
  const known = new Set();
  const next = [];
  for (const r of w.rows) {
    known.add(r.id);
    const u = updates.get(r.id);
    if (!u) next.push(r);
    else if (rowMatches(u)) next.push(u);
  }
  let added = 0;
  for (const [id, u] of updates) if (!known.has(id) && rowMatches(u)) { next.push(u); added += 1; }
  sortRows(next);
  const keep = Math.max(PAGE, w.rows.length);
  const rows = next.length > keep ? next.slice(0, keep) : next;
  const nextCursor = rows.length < next.length ? cursorAfter(rows[rows.length - 1]) ?? w.nextCursor : w.nextCursor;
  state.workflows = { ...w, rows, nextCursor, total: w.total === null ? null : w.total + added };
}

function upsertAlert(alert) {
  const list = state.alerts.list.filter((a) => a.id !== alert.id);
  state.alerts = { ...state.alerts, list: [alert, ...list] };
}

function applyMetricsSample(sample) {
  if (state.metrics.range !== "1h") return;
  const samples = [...state.metrics.liveSamples, sample].slice(-2000);
  state.metrics = { ...state.metrics, liveSamples: samples };
}

function bumpEventSeries(events) {
  const m = state.metrics;
  if (m.range !== "1h" || !m.data || m.data.query.grain !== "minute" || !events.length) return;
  const series = m.data.events.series.slice();
  for (const e of events) {
    const t = parseTime(e.timestamp);
    if (t === null) continue;
    const minute = Math.floor(t / 60000) * 60000;
    const last = series.length ? parseTime(series[series.length - 1].start) : null;
    if (last !== null && minute < last - 3600e3) continue;
    const idx = series.findIndex((b) => parseTime(b.start) === minute);
    if (idx >= 0) series[idx] = { ...series[idx], count: series[idx].count + 1 };
    else if (last === null || minute > last) series.push({ start: new Date(minute).toISOString(), count: 1 });
  }
  while (series.length > 61) series.shift();
  state.metrics = { ...m, data: { ...m.data, events: { ...m.data.events, series } } };
}

const isEvent = (msg) => msg.payload && typeof msg.payload === "object" && "source" in msg.payload && "id" in msg.payload;

/** One animation frame's messages, applied together. */
function applyBatch(batch) {
  const feedEvents = [];
  const workflowUpdates = new Map();
  let overviewStale = false;
  let alertsStale = false;
  for (const msg of batch) {
    const { type, room, payload } = msg;
    if (type === "system.status.update") {
      if (state.overview) state.overview = { ...state.overview, systemStatus: payload };
    } else if (type === "system.metrics") {
      applyMetricsSample(payload);
    } else if (type === "workflow.updated") {
      workflowUpdates.set(payload.id, payload);
      if (payload.id === state.selected) state.timeline = { ...state.timeline, workflow: payload };
      overviewStale = true;
    } else if (type.startsWith("alert.")) {
      upsertAlert(payload);
      alertsStale = true;
    } else if (isEvent(msg)) {
      if (room === "events:all") feedEvents.push(payload);
      if (room && room === `workflows:${state.selected}`) {
        const events = state.timeline.events.filter((e) => e.id !== payload.id);
        state.timeline = { ...state.timeline, events: sortEvents([...events, payload]).slice(-TIMELINE_MAX) };
      }
      overviewStale = true;
    }
  }
  if (workflowUpdates.size) upsertWorkflows(workflowUpdates);
  if (feedEvents.length) {
    mergeFeed(feedEvents);
    bumpEventSeries(feedEvents.filter((e) => !e.type.endsWith(".updated")));
  }
  if (overviewStale) { throttledOverview(); settledOverview(); }
  if (alertsStale) throttledAlerts();
  changed();
}

/** At most one call per `ms`, the last one never lost: tiles follow a burst without a request per event. */
function throttle(fn, ms) {
  let last = 0;
  let timer = 0;
  return () => {
    const wait = last + ms - Date.now();
    if (wait <= 0) { last = Date.now(); fn(); return; }
    if (!timer) timer = setTimeout(() => { timer = 0; last = Date.now(); fn(); }, wait);
  };
}
/** One call `ms` after the last of a run of calls. */
function debounce(fn, ms) {
  let timer = 0;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}
const throttledOverview = throttle(loadOverview, 400);
// ... and once more when the messages stop: the server may answer a read made the moment an event
// arrived with a body up to 100 ms older (it does not recompute per event in a burst), and with no
// message after it, nothing else would read the tiles again.
const settledOverview = debounce(loadOverview, 600);
const throttledAlerts = throttle(loadAlerts, 1000);

// --- connection and polling ----------------------------------------------------------------------

let pollTimer = 0;
function poll() {
  clearTimeout(pollTimer);
  if (state.conn === "live" || state.auth.status !== "ok") return;
  loadOverview();
  loadAlerts();
  loadFeed();
  refreshWorkflowHead();
  if (state.selected) loadTimeline(state.selected);
  pollTimer = setTimeout(poll, POLL_MS);
}

export const live = createLive({
  getToken,
  onBatch: applyBatch,
  onState(next) {
    const was = state.conn;
    state.conn = next;
    changed();
    if (next === "offline") { clearTimeout(pollTimer); pollTimer = setTimeout(poll, 200); }
    else if (next === "live") {
      clearTimeout(pollTimer);
      pollTimer = 0;
      // Whatever happened while disconnected: read it once.
      if (was === "offline") { loadOverview(); loadAlerts(); loadFeed(); refreshWorkflowHead(); }
    }
  },
  onAuthFailed(reason) {
    state.auth = { ...state.auth, status: "invalid", message: `the live connection was refused: ${reason}` };
    changed();
  },
});

live.subscribe(["dashboard:overview", "metrics:realtime", "alerts:all", "events:all", "workflows:all"]);

// Charlie instances change slowly (the route is cached for minutes): refresh every 30 s; the charts
// are re-read every minute (live messages move the last hour between reads).
setInterval(() => { if (state.auth.status === "ok") loadInstances(); }, 30000);
setInterval(() => { if (state.auth.status === "ok") loadMetrics(); }, 60000);

export function loadAll() {
  return Promise.allSettled([loadOverview(), loadAlerts(), loadFeed(), loadWorkflows(), loadInstances(), loadMetrics()]);
}

export function start() {
  adoptTokenFromUrl();
  state.auth = { status: getToken() ? "ok" : "none", message: "", forbidden: {} };
  changed();
  if (state.auth.status === "ok") {
    live.start();
    // "cc-populated": every panel's first read answered and drawn (what `make bench-page` times).
    loadAll().then(() => requestAnimationFrame(() => performance.mark("cc-populated")));
  }
}
