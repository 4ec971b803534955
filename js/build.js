// Bundles js/main.js and what it imports into one classic script (an IIFE: it works from
// file:// too), unminified so that the code a reader opens is the code in js/.
// Usage: node js/build.js OUTDIR   (the Sphinx extension _ext/bnlibjs.py runs it)
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2];
if (!outdir) {
  console.error("usage: node js/build.js OUTDIR");
  process.exit(2);
}
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: [join(here, "main.js")],
  outfile: join(outdir, "bnlibjs.js"),
  bundle: true,
  format: "iife",
  target: "es2020",
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
copyFileSync(join(here, "bnbook.css"), join(outdir, "bnlibjs.css"));
