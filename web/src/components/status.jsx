// A status is always shown as a word with a symbol, coloured as well: never colour alone.
const TONES = {
  completed: ["good", "✓"], success: ["good", "✓"], healthy: ["good", "✓"], active: ["info", "●"], running: ["info", "●"],
  pending: ["neutral", "○"], queued: ["neutral", "○"], canceled: ["neutral", "⊘"], cancelled: ["neutral", "⊘"], skipped: ["neutral", "⊘"],
  failed: ["bad", "✗"], failure: ["bad", "✗"], error: ["bad", "✗"], timed_out: ["bad", "✗"], critical: ["bad", "!"],
  warning: ["warn", "!"], degraded: ["warn", "!"], paused: ["warn", "‖"], acknowledged: ["neutral", "✓"], open: ["warn", "!"],
  info: ["info", "i"], resolved: ["good", "✓"], idle: ["neutral", "○"],
};

export function Status({ value, testid }) {
  const key = String(value || "unknown").toLowerCase();
  const [tone, mark] = TONES[key] || ["neutral", "·"];
  return (
    <span class={`badge tone-${tone}`} data-testid={testid}>
      <span aria-hidden="true">{mark}</span> {value || "unknown"}
    </span>
  );
}
