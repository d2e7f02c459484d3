import { useState } from "preact/hooks";
import { useToken } from "../store.js";

const HOW = (
  <p>
    To get a token, run <code>make ui</code>: it prints a link that opens this page logged in. Elsewhere, ask
    whoever runs the sidecar for a token signed with its <code>CC_JWT_SECRET</code>
    {" "}(<code>streaming.auth.issue_token</code>); commands to Charlie need the <code>commands</code> scope.
  </p>
);

export function TokenForm() {
  const [value, setValue] = useState("");
  const submit = (e) => { e.preventDefault(); if (value.trim()) useToken(value.trim()); };
  return (
    <form class="token-form" data-testid="token-form" onSubmit={submit}>
      <label for="token-input">API token (JWT)</label>
      <div class="row">
        <input id="token-input" type="password" autocomplete="off" spellcheck={false} value={value}
          onInput={(e) => setValue(e.currentTarget.value)} placeholder="eyJhbGciOiJIUzI1NiIs…" />
        <button type="submit">Use token</button>
      </div>
      <p class="muted">Kept for this tab only (sessionStorage), never sent anywhere but this sidecar.</p>
    </form>
  );
}

/** What is wrong with the token, and how to get one: never a blank page. */
export function AuthPanel({ auth }) {
  if (auth.status === "none") {
    return (
      <section class="panel auth" aria-labelledby="auth-title">
        <h2 id="auth-title">Sign in</h2>
        <p>This page reads the sidecar's API, which needs a token.</p>
        {HOW}
        <TokenForm />
      </section>
    );
  }
  if (auth.status === "invalid") {
    return (
      <section class="panel auth" role="alert" data-testid="auth-error" aria-labelledby="auth-title">
        <h2 id="auth-title">The token was refused (401)</h2>
        <p>The sidecar did not accept the token: <strong>{auth.message}</strong>. It may have expired, or
          been signed with another secret.</p>
        {HOW}
        <TokenForm />
      </section>
    );
  }
  return null;
}

/** A valid token that may not read or do some things (403): the rest of the page still works. */
export function ForbiddenBanner({ forbidden }) {
  const entries = Object.entries(forbidden);
  if (!entries.length) return null;
  return (
    <div class="banner warn" role="alert" data-testid="auth-error">
      <strong>This token may not use every part of the page (403).</strong>
      <ul>{entries.map(([path, detail]) => <li key={path}><code>{path}</code>: {detail}</li>)}</ul>
      <p>Ask for a token without a <code>rooms</code> limit (and with the <code>commands</code> scope to command Charlie);
        <code> make ui</code> prints a link with one.</p>
    </div>
  );
}
