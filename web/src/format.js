// Number, money, time and duration formatting, one place (Intl, the browser's locale).
const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const usd = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD" });
const usdSigned = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", signDisplay: "exceptZero" });
const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTime = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

const dash = "–";
const ok = (v) => v !== null && v !== undefined && !Number.isNaN(v);

export const fmtInt = (v) => (ok(v) ? integer.format(v) : dash);
export const fmtNum = (v) => (ok(v) ? decimal.format(v) : dash);
export const fmtUsd = (v) => (ok(v) ? usd.format(v) : dash);
export const fmtPnl = (v) => (ok(v) ? usdSigned.format(v) : dash);
export const fmtPct = (v) => (ok(v) ? `${decimal.format(v)} %` : dash);

/** "3 h 20 min", "2 d 4 h", "45 s": the two largest units. */
export function fmtDuration(seconds) {
  if (!ok(seconds)) return dash;
  let s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
  const parts = [];
  for (const [name, size] of units) {
    const n = Math.floor(s / size);
    if (n || parts.length) parts.push([n, name]);
    s -= n * size;
    if (parts.length === 2) break;
  }
  return parts.filter(([n], i) => n || i === 0).map(([n, name]) => `${integer.format(n)} ${name}`).join(" ");
}

export const fmtHours = (h) => (ok(h) ? fmtDuration(h * 3600) : dash);

export function parseTime(iso) {
  if (!iso) return null;
  // The API writes naive UTC in a few places; treat a time without a zone as UTC.
  const t = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`);
  return Number.isNaN(t) ? null : t;
}

export function fmtTime(iso) {
  const t = parseTime(iso);
  if (t === null) return dash;
  return Date.now() - t < 86400e3 ? timeOfDay.format(t) : dateTime.format(t);
}

export function fmtAgo(iso, now = Date.now()) {
  const t = parseTime(iso);
  if (t === null) return dash;
  const s = (now - t) / 1000;
  return s < 5 ? "just now" : `${fmtDuration(s)} ago`;
}
