import { fmtTime } from "../format.js";
import { selectWorkflow, setFeedFilter, toggleFeedPause } from "../store.js";

const unique = (xs) => [...new Set(xs)].sort();

export function Feed({ feed, paused, held, filter }) {
  const sources = unique(feed.map((e) => e.source));
  const types = unique(feed.filter((e) => !filter.source || e.source === filter.source).map((e) => e.type));
  const shown = feed.filter((e) => (!filter.source || e.source === filter.source) && (!filter.type || e.type === filter.type));
  return (
    <section class="panel feed-panel" aria-labelledby="feed-title">
      <header class="panel-head">
        <h2 id="feed-title">Live events</h2>
        <div class="controls">
          <label>Source{" "}
            <select value={filter.source} onChange={(e) => setFeedFilter("source", e.currentTarget.value)}>
              <option value="">all</option>
              {sources.map((s) => <option key={s} value={s}>{s}</option>)}
            </select>
          </label>
          <label>Type{" "}
            <select value={filter.type} onChange={(e) => setFeedFilter("type", e.currentTarget.value)}>
              <option value="">all</option>
              {types.map((t) => <option key={t} value={t}>{t}</option>)}
            </select>
          </label>
          <button type="button" data-testid="feed-pause" aria-pressed={paused} onClick={toggleFeedPause}>
            {paused ? `Resume${held ? ` (${held} new)` : ""}` : "Pause"}
          </button>
        </div>
      </header>
      <ol class="feed" data-testid="feed" aria-live={paused ? "off" : "polite"} aria-relevant="additions">
        {shown.length === 0 && <li class="muted empty">No events yet.</li>}
        {shown.map((e) => {
          const wf = e.workflow?.id || "";
          const label = e.target?.title || e.target?.id || "";
          return (
            <li key={`${e.id}|${e.type}`} class="feed-item" data-testid="feed-item" data-event-id={e.id} data-workflow-id={wf}>
              <button type="button" class="linkish" disabled={!wf} onClick={() => wf && selectWorkflow(wf)}
                title={wf ? `Open workflow ${wf}` : "Not part of a workflow"}>
                <time dateTime={e.timestamp}>{fmtTime(e.timestamp)}</time>
                <span class={`src src-${e.source}`}>{e.source}</span>
                <span class="etype">{e.type}</span>
                <span class="etitle">{label}</span>
                <span class="eactor muted">{e.actor?.name || e.actor?.id || ""}</span>
              </button>
            </li>
          );
        })}
      </ol>
    </section>
  );
}
