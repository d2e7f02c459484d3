import { useEffect, useRef } from "preact/hooks";
import { fmtHours, fmtInt, fmtTime, fmtUsd } from "../format.js";
import { selectWorkflow } from "../store.js";
import { Status } from "./status.jsx";

function describe(e) {
  const p = e.payload && typeof e.payload === "object" ? e.payload : {};
  const bits = [];
  if (p.from || p.to) bits.push(`${p.from ?? "?"} → ${p.to ?? "?"}`);
  if (p.action) bits.push(p.action);
  if (p.cost_usd !== undefined) bits.push(fmtUsd(p.cost_usd));
  if (p.conclusion) bits.push(p.conclusion);
  return bits.join(" · ");
}

export function Drilldown({ id, timeline }) {
  const ref = useRef(null);
  useEffect(() => { if (id && ref.current) ref.current.focus(); }, [id]);
  if (!id) return null;
  const w = timeline.workflow;
  return (
    <section class="panel drilldown" data-testid="drilldown" aria-labelledby="dd-title" tabIndex={-1} ref={ref}>
      <header class="panel-head">
        <h2 id="dd-title">Workflow {w?.linearIssueKey || id}</h2>
        <button type="button" onClick={() => selectWorkflow(null)} aria-label="Close the workflow">Close ✕</button>
      </header>
      {w && (
        <dl class="facts">
          <div><dt>Status</dt><dd><Status value={w.status} /></dd></div>
          <div><dt>Name</dt><dd>{w.name}</dd></div>
          <div><dt>Assignee</dt><dd>{w.assignee?.name || w.charlieInstanceId || "–"}</dd></div>
          <div><dt>Events</dt><dd>{fmtInt(w.eventCount)}{w.liveEventCount ? ` (${fmtInt(w.liveEventCount)} live)` : ""}</dd></div>
          <div><dt>Sessions</dt><dd>{fmtInt(w.sessionCount)} · {fmtUsd(w.sessionCostUsd)}</dd></div>
          <div><dt>Cycle time</dt><dd>{fmtHours(w.cycleTimeHours)}</dd></div>
        </dl>
      )}
      {timeline.error && <p class="error" role="alert">{timeline.error}</p>}
      {timeline.loading && <p class="muted">Loading the timeline…</p>}
      <ol class="timeline">
        {!timeline.loading && timeline.events.length === 0 && <li class="muted">No events.</li>}
        {timeline.events.map((e) => (
          <li key={e.id} data-testid="timeline-item" data-event-id={e.id}>
            <time dateTime={e.timestamp}>{fmtTime(e.timestamp)}</time>
            <span class={`src src-${e.source}`}>{e.source}</span>
            <span class="etype">{e.type}</span>
            <span class="etitle">
              {e.target?.url ? <a href={e.target.url} target="_blank" rel="noreferrer">{e.target.title || e.target.id}</a> : (e.target?.title || e.target?.id || "")}
            </span>
            <span class="muted">{e.actor?.name || e.actor?.id || ""} {describe(e)}{e.isLive ? " · live" : ""}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}
