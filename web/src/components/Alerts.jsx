import { fmtAgo, fmtInt } from "../format.js";
import { ackAlert } from "../store.js";
import { Status } from "./status.jsx";

const RANK = { critical: 0, warning: 1, info: 2 };

export function Alerts({ alerts }) {
  const live = alerts.list.filter((a) => a.state !== "resolved")
    .sort((a, b) => (a.state === b.state ? 0 : a.state === "open" ? -1 : 1) || RANK[a.severity] - RANK[b.severity]);
  return (
    <section class="panel" data-testid="alerts-panel" aria-labelledby="alerts-title">
      <header class="panel-head"><h2 id="alerts-title">Alerts <span class="muted">({fmtInt(live.filter((a) => a.state === "open").length)} open)</span></h2></header>
      {alerts.error && <p class="error" role="alert">{alerts.error}</p>}
      {live.length === 0 && !alerts.error && <p class="muted">No open alerts. ✓</p>}
      <ul class="alerts">
        {live.map((a) => (
          <li key={a.id} data-testid="alert-row" data-alert-id={a.id} class={`alert sev-${a.severity}`}>
            <div class="alert-head">
              <Status value={a.severity} /> <Status value={a.state} />
              <strong>{a.rule}</strong> <span class="muted">{a.subject.key}</span>
            </div>
            <p>{a.message}</p>
            <div class="alert-foot muted">
              seen {fmtInt(a.count)}× · first {fmtAgo(a.firstSeen)} · last {fmtAgo(a.lastSeen)}
              {a.acknowledgedBy ? ` · acknowledged by ${a.acknowledgedBy}` : ""}
              {a.state === "open" && <button type="button" data-testid="alert-ack" onClick={() => ackAlert(a.id)}>Acknowledge</button>}
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
