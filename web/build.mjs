// Bundles the console (web/src) into one directory of assets, each written gzip-compressed
// (NAME.gz) for build.rs to embed in the binary: app.js (the SPA with uPlot and hls.js),
// app.css, index.html and login.html (+ login.js). Usage: node web/build.mjs OUT_DIR
import { build } from "esbuild";
import { mkdirSync, readFileSync, writeFileSync, readdirSync, rmSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync, constants } from "node:zlib";

const web = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error("usage: node web/build.mjs OUT_DIR");
  process.exit(2);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: {
    app: join(web, "src/main.js"),
    login: join(web, "src/login.js"),
  },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  write: false,
  outdir: out,
  legalComments: "eof",
  logLevel: "warning",
  loader: { ".css": "css" },
});
const files = new Map();
for (const f of result.outputFiles) {
  files.set(f.path.slice(out.length + 1), Buffer.from(f.contents));
}
for (const page of ["index.html", "login.html"]) {
  files.set(page, readFileSync(join(web, page)));
}
for (const [name, bytes] of files) {
  const gz = gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION });
  writeFileSync(join(out, name + ".gz"), gz);
}
console.log(readdirSync(out).join(" "));
