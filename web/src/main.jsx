// The command-center page: tiles, live feed, workflows with drill-down, Charlie, trends, alerts.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./app.css";
import { forgetToken, live, start, state, subscribe } from "./store.js";
import { AuthPanel, ForbiddenBanner } from "./components/Auth.jsx";
import { Tiles } from "./components/Tiles.jsx";
import { Feed } from "./components/Feed.jsx";
import { Workflows } from "./components/Workflows.jsx";
import { Drilldown } from "./components/Drilldown.jsx";
import { Charlie } from "./components/Charlie.jsx";
import { Charts } from "./components/Charts.jsx";
import { Alerts } from "./components/Alerts.jsx";

const CONNECTION = {
  live: ["live", "good", "Live: updates arrive as they happen."],
  connecting: ["connecting", "info", "Connecting to the sidecar's WebSocket…"],
  offline: ["offline — polling", "warn", "The WebSocket is down: the page reads the REST API every few seconds and reconnects on its own."],
};

function ConnectionState({ conn }) {
  const [text, tone, title] = CONNECTION[conn] || CONNECTION.offline;
  return (
    <span class={`badge conn tone-${tone}`} role="status" title={title}>
      <span aria-hidden="true" class="dot" /> <span data-testid="connection-state">{text}</span>
    </span>
  );
}

function App() {
  const [, setVersion] = useState(0);
  useEffect(() => subscribe(() => setVersion((v) => v + 1)), []);
  const s = state;
  const signedIn = s.auth.status === "ok";
  return (
    <>
      <header class="top">
        <h1>Command Center</h1>
        <nav class="top-links">
          {signedIn && <ConnectionState conn={s.conn} />}
          {signedIn && s.conn === "offline" && <button type="button" onClick={() => live.restart()}>Reconnect</button>}
          <a href="/docs">API docs</a>
          {s.auth.status !== "none" && <button type="button" onClick={forgetToken}>Forget token</button>}
        </nav>
      </header>
      <main>
        <AuthPanel auth={s.auth} />
        {signedIn && (
          <>
            <ForbiddenBanner forbidden={s.auth.forbidden} />
            <Tiles overview={s.overview} alerts={s.alerts} error={s.overviewError} />
            <div class="layout">
              <div class="col-main">
                <Workflows workflows={s.workflows} selected={s.selected} />
                <Charts metrics={s.metrics} costToday={s.overview?.systemStatus?.sessions?.total_cost} />
                <Charlie instances={s.instances} command={s.command} />
              </div>
              <div class="col-side">
                <Drilldown id={s.selected} timeline={s.timeline} />
                <Alerts alerts={s.alerts} />
                <Feed feed={s.feed} paused={s.feedPaused} held={s.feedHeld.length} filter={s.feedFilter} />
              </div>
            </div>
          </>
        )}
      </main>
    </>
  );
}

start();
const root = document.getElementById("app");
root.textContent = ""; // the "Loading…" placeholder
render(<App />, root);
