import { fmtInt, fmtPnl, fmtUsd } from "../format.js";

function Tile({ id, label, value, detail, tone, status }) {
  return (
    <div class={`tile tone-${tone || "neutral"}`} data-testid={id}>
      <div class="tile-label">{label}</div>
      <div class="tile-value" data-testid="tile-value">{value}</div>
      <div class="tile-detail">
        {status && <span class={`badge tone-${tone}`}>{status}</span>} {detail}
      </div>
    </div>
  );
}

const sum = (obj) => Object.values(obj || {}).reduce((a, b) => a + b, 0);

export function Tiles({ overview, alerts, error }) {
  const w = overview?.workflows;
  const s = overview?.systemStatus;
  const inst = overview?.instances;
  const cron = s?.cron_jobs;
  const pnl = s?.trading_bot?.daily_pnl;
  const openAlerts = alerts.counts ? sum(alerts.counts.open) : null;
  const critical = alerts.counts?.open?.critical || 0;
  const degraded = inst ? inst.total - inst.healthy : null;
  return (
    <section class="tiles" aria-label="Headline numbers">
      {error && <p class="error" role="alert">Overview unavailable: {error}</p>}
      <Tile id="tile-active" label="Active workflows" value={fmtInt(w?.active)}
        detail={w ? `${fmtInt(w.pending)} pending · ${fmtInt(w.total)} total` : ""} />
      <Tile id="tile-completed-today" label="Completed today" value={fmtInt(w?.completedToday)}
        detail={w ? `${fmtInt(w.failed)} failed · ${fmtInt(w.completed)} all time` : ""} />
      <Tile id="tile-cost-today" label="Agent cost today" value={fmtUsd(s?.sessions?.total_cost)}
        detail={s ? `${fmtInt(s.sessions.active)} active sessions · top ${fmtUsd(s.sessions.highest_cost)}` : ""} />
      <Tile id="tile-cron" label="Cron jobs healthy" value={cron ? `${fmtInt(cron.healthy)} / ${fmtInt(cron.total)}` : "–"}
        tone={cron ? (cron.failed ? "bad" : "good") : "neutral"}
        status={cron ? (cron.failed ? `${fmtInt(cron.failed)} failed` : "all healthy") : ""} />
      <Tile id="tile-pnl" label="Trading P&L today" value={fmtPnl(pnl)}
        tone={pnl > 0 ? "good" : pnl < 0 ? "bad" : "neutral"}
        status={s?.trading_bot?.status ? `bot ${s.trading_bot.status}` : ""} />
      <Tile id="tile-charlie" label="Charlie instances up" value={inst ? `${fmtInt(inst.healthy)} / ${fmtInt(inst.total)}` : "–"}
        tone={inst ? (degraded ? "warn" : "good") : "neutral"}
        status={inst ? (degraded ? `${fmtInt(degraded)} degraded` : "all up") : ""} />
      <Tile id="tile-alerts" label="Open alerts" value={fmtInt(openAlerts)}
        tone={openAlerts === null ? "neutral" : critical ? "bad" : openAlerts ? "warn" : "good"}
        status={openAlerts === null ? "" : critical ? `${fmtInt(critical)} critical` : openAlerts ? "needs a look" : "none open"} />
    </section>
  );
}
