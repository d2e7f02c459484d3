import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useEffect, useMemo, useRef } from "preact/hooks";
import { fmtInt, fmtNum, fmtUsd, parseTime } from "../format.js";
import { loadMetrics, RANGES } from "../store.js";

const COLORS = ["#2f7ed8", "#d9534f", "#3c9a5f", "#c28a00"];
const secs = (iso) => (parseTime(iso) ?? 0) / 1000;

/** One uPlot chart: made once, then fed with setData; follows its box's width. */
function Chart({ title, series, data, summary, valueFmt = fmtNum, scales }) {
  const box = useRef(null);
  const plot = useRef(null);
  const shape = series.map((s) => `${s.label}:${s.scale || "y"}:${s.bars ? 1 : 0}`).join("|");

  useEffect(() => {
    const el = box.current;
    const width = Math.max(240, el.clientWidth);
    const axisFor = (scale, side) => ({
      scale, side, size: 56, stroke: "currentColor", grid: { stroke: "rgba(127,127,127,.18)" },
      values: (u, ticks) => ticks.map((v) => (scale === "usd" ? fmtUsd(v) : valueFmt(v))),
    });
    const hasUsd = series.some((s) => s.scale === "usd");
    const opts = {
      width, height: 180,
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
      scales: { x: { time: true }, ...(scales || {}) },
      axes: [{ stroke: "currentColor", grid: { stroke: "rgba(127,127,127,.18)" } }, axisFor("y", 3), ...(hasUsd ? [axisFor("usd", 1)] : [])],
      series: [{}, ...series.map((s, i) => ({
        label: s.label, scale: s.scale || "y", stroke: s.color || COLORS[i % COLORS.length], width: 1.5,
        fill: s.bars ? `${s.color || COLORS[i % COLORS.length]}99` : undefined, spanGaps: true,
        paths: s.bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined, points: { show: false },
        value: (u, v) => (v === null || v === undefined ? "–" : s.scale === "usd" ? fmtUsd(v) : valueFmt(v)),
      }))],
    };
    plot.current = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => {
      const w = Math.max(240, el.clientWidth);
      if (plot.current && Math.abs(plot.current.width - w) > 2) plot.current.setSize({ width: w, height: 180 });
    });
    ro.observe(el);
    return () => { ro.disconnect(); plot.current.destroy(); plot.current = null; };
  }, [shape]);

  useEffect(() => { if (plot.current) plot.current.setData(data); }, [data]);

  return (
    <figure class="chart">
      <figcaption><strong>{title}</strong> <span class="muted">{summary}</span></figcaption>
      <div class="chart-box">
        <div ref={box} role="img" aria-label={`${title}: ${summary}`} />
        {data[0].length === 0 && <p class="chart-empty">No data in this range.</p>}
      </div>
    </figure>
  );
}

const emptySeries = (n) => [[], ...Array.from({ length: n }, () => [])];

function eventData(m) {
  if (!m) return emptySeries(1);
  return [m.events.series.map((b) => secs(b.start)), m.events.series.map((b) => b.count)];
}

function hostData(m, samples) {
  if (!m) return emptySeries(4);
  const rows = m.system.map((b) => [secs(b.start), b.avgCpuPercent, b.maxCpuPercent, b.avgMemoryPercent, b.maxDiskPercent]);
  const last = rows.length ? rows[rows.length - 1][0] : 0;
  // Samples the sidecar pushed since the read, rolled up per minute like the API's buckets.
  const byMinute = new Map();
  for (const s of samples) {
    const t = Math.floor((parseTime(s.sampled_at) ?? 0) / 60000) * 60;
    if (t <= last) continue;
    const acc = byMinute.get(t) || { n: 0, cpu: 0, maxCpu: null, mem: 0, memN: 0, disk: null };
    if (s.cpu_percent != null) { acc.n += 1; acc.cpu += s.cpu_percent; acc.maxCpu = Math.max(acc.maxCpu ?? 0, s.cpu_percent); }
    if (s.memory_percent != null) { acc.memN += 1; acc.mem += s.memory_percent; }
    if (s.disk_percent != null) acc.disk = Math.max(acc.disk ?? 0, s.disk_percent);
    byMinute.set(t, acc);
  }
  for (const [t, a] of [...byMinute].sort((x, y) => x[0] - y[0])) {
    rows.push([t, a.n ? a.cpu / a.n : null, a.maxCpu, a.memN ? a.mem / a.memN : null, a.disk]);
  }
  return [0, 1, 2, 3, 4].map((i) => rows.map((r) => r[i]));
}

function sessionData(m) {
  if (!m) return emptySeries(2);
  const b = m.sessions.series;
  return [b.map((x) => secs(x.start)), b.map((x) => x.sessions), b.map((x) => x.costUsd)];
}

function cronSeries(m) {
  if (!m) return emptySeries(2);
  const b = m.cron.series;
  return [b.map((x) => secs(x.start)), b.map((x) => x.succeeded), b.map((x) => x.failed)];
}

const total = (m) => (m ? m.events.total : null);

export function Charts({ metrics, costToday }) {
  const { range, data, liveSamples, error } = metrics;
  // Memoized on the store's (immutable) objects: a chart is fed only when its own data changed.
  const cronData = useMemo(() => cronSeries(data), [data]);
  const host = useMemo(() => hostData(data, liveSamples), [data, liveSamples]);
  const events = useMemo(() => eventData(data), [data]);
  const sess = useMemo(() => sessionData(data), [data]);
  const lastCpu = host[1].length ? host[1][host[1].length - 1] : null;
  return (
    <section class="panel charts-panel" data-testid="charts" aria-labelledby="charts-title">
      <header class="panel-head">
        <h2 id="charts-title">Trends</h2>
        <div class="controls" role="group" aria-label="Time range">
          {RANGES.map((r) => (
            <button key={r} type="button" data-range={r} aria-pressed={range === r} class={range === r ? "primary" : ""} onClick={() => loadMetrics(r)}>{r}</button>
          ))}
        </div>
      </header>
      {error && <p class="error" role="alert">{error}</p>}
      {data && <p class="muted">By {data.query.grain} · {fmtInt(data.workflows.started)} workflows started, {fmtInt(data.workflows.completed)} completed{range === "1h" ? " · the last hour moves live" : ""}</p>}
      <div class="charts-grid">
        <Chart title="Event volume" series={[{ label: "events", bars: true }]} data={events}
          summary={`${fmtInt(total(data))} events${data?.events.live ? `, ${fmtInt(data.events.live)} live` : ""}`} valueFmt={fmtInt} />
        <Chart title="Host metrics (%)" data={host}
          series={[{ label: "avg CPU" }, { label: "max CPU" }, { label: "avg memory" }, { label: "max disk" }]}
          summary={lastCpu === null ? "no samples in range" : `avg CPU ${fmtNum(lastCpu)} % latest`} scales={{ y: { range: [0, 100] } }} />
        <Chart title="Cron runs" data={cronData}
          series={[{ label: "succeeded", bars: true, color: COLORS[2] }, { label: "failed", bars: true, color: COLORS[1] }]}
          summary={data ? `${fmtInt(data.cron.runs)} runs, ${fmtInt(data.cron.failed)} failed` : ""} valueFmt={fmtInt} />
        <Chart title="Agent session cost" data={sess}
          series={[{ label: "sessions", bars: true, color: COLORS[3] }, { label: "cost", scale: "usd", color: COLORS[1] }]}
          summary={data ? `${fmtInt(data.sessions.sessions)} sessions, ${fmtUsd(data.sessions.costUsd)} in range · today ${fmtUsd(costToday)}` : ""} valueFmt={fmtInt} />
      </div>
    </section>
  );
}
