// Builds the page into ../streaming/static/page/ and copies the API docs' assets into
// ../streaming/static/vendor/, so the sidecar serves everything from disk (no CDN).
//
//   node build.mjs          write the files
//   node build.mjs --check  build in memory and fail if the committed files differ (CI, reviews)
//
// The output is deterministic: pinned versions (package-lock.json), no timestamps, no hashes
// in names, and esbuild's output depends only on its inputs. Building twice gives the same bytes.
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const statics = join(here, "..", "streaming", "static");
const pageDir = join(statics, "page");
const check = process.argv.includes("--check");
const BUDGET = 150 * 1024; // the page's own files, minified; the bar is 300 KB compressed

const result = await esbuild.build({
  entryPoints: { app: join(here, "src", "main.jsx") },
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  charset: "utf8",
  sourcemap: false,
  write: false,
  outdir: pageDir,
  logLevel: "warning",
});

const files = new Map(); // absolute path -> Buffer
for (const out of result.outputFiles) files.set(out.path, Buffer.from(out.contents));
files.set(join(pageDir, "index.html"), readFileSync(join(here, "src", "index.html")));

const vendor = [
  ["swagger-ui-dist/swagger-ui-bundle.js", "vendor/swagger-ui/swagger-ui-bundle.js"],
  ["swagger-ui-dist/swagger-ui.css", "vendor/swagger-ui/swagger-ui.css"],
  ["swagger-ui-dist/LICENSE", "vendor/swagger-ui/LICENSE"],
  ["redoc/bundles/redoc.standalone.js", "vendor/redoc/redoc.standalone.js"],
  ["redoc/LICENSE", "vendor/redoc/LICENSE"],
];
for (const [from, to] of vendor) {
  files.set(join(statics, to), readFileSync(join(here, "node_modules", from)));
}

let stale = 0;
let pageBytes = 0;
for (const [path, bytes] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
  const name = relative(join(here, ".."), path);
  if (path.startsWith(pageDir)) pageBytes += bytes.length;
  const digest = createHash("sha256").update(bytes).digest("hex").slice(0, 12);
  if (check) {
    const same = existsSync(path) && readFileSync(path).equals(bytes);
    if (!same) stale += 1;
    console.log(`${same ? "ok   " : "STALE"} ${name} ${bytes.length} B ${digest}`);
  } else {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, bytes);
    console.log(`wrote ${name} ${bytes.length} B ${digest}`);
  }
}
console.log(`page: ${pageBytes} B (budget ${BUDGET} B)`);
if (pageBytes > BUDGET) {
  console.error("the page is over its size budget");
  process.exit(1);
}
if (stale) {
  console.error(`${stale} built file(s) differ from the sources: run npm run build and commit the output`);
  process.exit(1);
}
