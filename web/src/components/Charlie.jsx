import { useEffect, useRef, useState } from "preact/hooks";
import { fmtAgo, fmtDuration, fmtInt } from "../format.js";
import { sendCommand } from "../store.js";
import { Status } from "./status.jsx";

const LABELS = { pause: "Pause", resume: "Resume", cancel_task: "Cancel task" };

/** A modal <dialog>: focus stays in it, Escape closes it, and nothing is sent until "Yes". */
function ConfirmDialog({ ask, onClose }) {
  const ref = useRef(null);
  const [taskId, setTaskId] = useState("");
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  const needsTask = ask.command === "cancel_task";
  const ok = !needsTask || /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/.test(taskId);
  const yes = (e) => {
    e.preventDefault();
    if (!ok) return;
    sendCommand(ask.instance.id, ask.command, needsTask ? { taskId } : {});
    onClose();
  };
  return (
    <dialog ref={ref} class="confirm" data-testid="confirm-dialog" aria-labelledby="confirm-title" onCancel={onClose}>
      <form method="dialog" onSubmit={yes}>
        <h2 id="confirm-title">{LABELS[ask.command]} {ask.instance.name || ask.instance.id}?</h2>
        <p>This sends <code>{ask.command}</code> to the Charlie instance <strong>{ask.instance.id}</strong> through its API.</p>
        {needsTask && (
          <label class="stack">Task id
            <input data-testid="confirm-task-id" required value={taskId} autoFocus
              onInput={(e) => setTaskId(e.currentTarget.value.trim())} placeholder="task-42" />
          </label>
        )}
        <div class="row end">
          <button type="button" data-testid="confirm-no" onClick={onClose} autoFocus={!needsTask}>No, keep it</button>
          <button type="submit" class="primary" data-testid="confirm-yes" disabled={!ok}>Yes, {LABELS[ask.command].toLowerCase()}</button>
        </div>
      </form>
    </dialog>
  );
}

export function Charlie({ instances, command }) {
  const [ask, setAsk] = useState(null);
  const { list, error } = instances;
  return (
    <section class="panel charlie-panel" aria-labelledby="charlie-title">
      <header class="panel-head"><h2 id="charlie-title">Charlie instances</h2></header>
      {error && <p class="error" role="alert">{error}</p>}
      {command && (
        <p class={`command-result ${command.pending ? "" : command.ok ? "tone-good" : "tone-bad"}`} data-testid="command-result"
           data-state={command.pending ? "pending" : command.ok ? "ok" : "failed"} role="status">
          {command.pending ? "… " : command.ok ? "✓ " : "✗ "}{command.text}
        </p>
      )}
      <div class="table-wrap">
        <table>
          <thead>
            <tr><th scope="col">Instance</th><th scope="col">Health</th><th scope="col" class="num">Queue</th>
              <th scope="col" class="num">Active</th><th scope="col" class="num">Done today</th><th scope="col">Last activity</th><th scope="col">Commands</th></tr>
          </thead>
          <tbody>
            {list.length === 0 && <tr><td colSpan={7} class="muted">No instances known.</td></tr>}
            {list.map((i) => (
              <tr key={i.id} data-testid="charlie-row" data-instance-id={i.id}>
                <th scope="row">{i.name || i.id}<div class="muted">{i.id}{i.version ? ` · v${i.version}` : ""}</div></th>
                <td data-label="Health"><Status value={i.health.isHealthy ? "healthy" : (i.health.status || "degraded")} />
                  {i.health.uptimeSeconds ? <div class="muted">up {fmtDuration(i.health.uptimeSeconds)}</div> : null}</td>
                <td data-label="Queue" class="num">{fmtInt(i.health.queueDepth)}</td>
                <td data-label="Active" class="num">{fmtInt(i.workload.activeWorkflows)}</td>
                <td data-label="Done today" class="num">{fmtInt(i.workload.completedToday)}</td>
                <td data-label="Last activity"><time dateTime={i.lastEventAt}>{fmtAgo(i.lastEventAt)}</time></td>
                <td data-label="Commands" class="commands">
                  {Object.keys(LABELS).map((c) => (
                    <button key={c} type="button" data-command={c} onClick={() => setAsk({ instance: i, command: c })}>{LABELS[c]}</button>
                  ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {ask && <ConfirmDialog ask={ask} onClose={() => setAsk(null)} />}
    </section>
  );
}
