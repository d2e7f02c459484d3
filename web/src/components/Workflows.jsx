import { fmtAgo, fmtHours, fmtInt, fmtUsd } from "../format.js";
import { loadWorkflows, selectWorkflow, setWorkflowFilter } from "../store.js";
import { Status } from "./status.jsx";

const STATUSES = ["pending", "active", "completed", "canceled", "failed"];
let assigneeTimer = 0; // typing waits 0.4 s before it asks the API again
const PROVIDERS = ["github", "linear", "charlie", "openclaw", "cron", "weather", "logs"];

function prCell(w) {
  const gh = w.github;
  if (!gh || !gh.prNumber) return "–";
  const text = `${gh.repo ? `${gh.repo.split("/").pop()}` : ""}#${gh.prNumber}`;
  return gh.repo ? <a href={`https://github.com/${gh.repo}/pull/${gh.prNumber}`} target="_blank" rel="noreferrer">{text}</a> : text;
}

function ciCell(ci) {
  if (!ci || !ci.runCount) return "–";
  return <span><Status value={ci.lastConclusion || "running"} /> <span class="muted">{fmtInt(ci.failedRunCount)}/{fmtInt(ci.runCount)} failed</span></span>;
}

export function Workflows({ workflows, selected }) {
  const { rows, total, nextCursor, filters, loading, error } = workflows;
  return (
    <section class="panel workflows-panel" aria-labelledby="wf-title">
      <header class="panel-head">
        <h2 id="wf-title">Workflows {total !== null && <span class="muted">({fmtInt(total)})</span>}</h2>
        <div class="controls">
          <label>Status{" "}
            <select value={filters.status} onChange={(e) => setWorkflowFilter("status", e.currentTarget.value)}>
              <option value="">any</option>
              {STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
            </select>
          </label>
          <label>Provider{" "}
            <select value={filters.provider} onChange={(e) => setWorkflowFilter("provider", e.currentTarget.value)}>
              <option value="">any</option>
              {PROVIDERS.map((s) => <option key={s} value={s}>{s}</option>)}
            </select>
          </label>
          <label>Assignee{" "}
            <input type="search" size={14} defaultValue={filters.assignee} placeholder="id, name, instance"
              onInput={(e) => { const v = e.currentTarget.value; clearTimeout(assigneeTimer); assigneeTimer = setTimeout(() => setWorkflowFilter("assignee", v.trim()), 400); }} />
          </label>
        </div>
      </header>
      {error && <p class="error" role="alert">{error}</p>}
      <div class="table-wrap">
        <table data-testid="workflows-table">
          <thead>
            <tr>
              <th scope="col">Workflow</th><th scope="col">Status</th><th scope="col">Assignee</th>
              <th scope="col">Provider</th><th scope="col">Linear</th><th scope="col">PR</th><th scope="col">CI</th>
              <th scope="col" class="num">Cost</th><th scope="col" class="num">Cycle time</th><th scope="col">Last event</th>
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 && !loading && <tr><td colSpan={10} class="muted">No workflows match.</td></tr>}
            {rows.map((w) => (
              // The whole row opens the drill-down for a pointer; the name's button is the keyboard's way in.
              <tr key={w.id} data-testid="workflow-row" data-workflow-id={w.id} class={w.id === selected ? "selected clickable" : "clickable"}
                  onClick={() => selectWorkflow(w.id)}>
                <th scope="row">
                  <button type="button" class="linkish" onClick={() => selectWorkflow(w.id)} aria-label={`Open workflow ${w.name || w.id}`}>
                    <span class="wf-name">{w.name || w.id}</span>
                    <span class="muted wf-id">{w.id}{w.isLive ? " · live" : ""}</span>
                  </button>
                </th>
                <td data-label="Status"><Status value={w.status} testid="workflow-status" /></td>
                <td data-label="Assignee">{w.assignee?.name || w.assignee?.id || w.charlieInstanceId || "–"}</td>
                <td data-label="Provider">{(w.sources || []).join(", ") || "–"}</td>
                <td data-label="Linear">{w.linearIssueKey || "–"}</td>
                <td data-label="PR">{prCell(w)}</td>
                <td data-label="CI">{ciCell(w.ci)}</td>
                <td data-label="Cost" class="num">{w.sessionCount ? fmtUsd(w.sessionCostUsd) : "–"}</td>
                <td data-label="Cycle time" class="num">{fmtHours(w.cycleTimeHours)}</td>
                <td data-label="Last event"><time dateTime={w.lastEventAt}>{fmtAgo(w.lastEventAt)}</time></td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="panel-foot">
        <span class="muted">{fmtInt(rows.length)} shown{total !== null ? ` of ${fmtInt(total)}` : ""}</span>
        {nextCursor && (
          <button type="button" data-testid="load-more" disabled={loading} onClick={() => loadWorkflows({ more: true })}>
            {loading ? "Loading…" : "Load more"}
          </button>
        )}
      </div>
    </section>
  );
}
