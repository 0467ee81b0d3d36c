// npm run generate: regenerates src/generated/openapi.ts from the API's OpenAPI document.
// The document comes from $HERALD_OPENAPI (a file or an http(s) URL of a running server's
// /openapi.json) or, by default, from `herald openapi` (the binary of scripts/herald.mjs).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { dumpOpenAPI } from "./herald.mjs";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const generatedFile = join(pkg, "src/generated/openapi.ts");

/** Runs openapi-typescript on the document at source (file or URL) and writes out. */
export function generate(source, out) {
  execFileSync(join(pkg, "node_modules/.bin/openapi-typescript"), [source, "--output", out, "--root-types"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
}

/** Generates from the current code's document into out. */
export function generateFromCode(out) {
  const dir = mkdtempSync(join(tmpdir(), "herald-openapi-"));
  try {
    const doc = join(dir, "openapi.json");
    dumpOpenAPI(doc);
    generate(doc, out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.env.HERALD_OPENAPI) generate(process.env.HERALD_OPENAPI, generatedFile);
  else generateFromCode(generatedFile);
  process.stdout.write("wrote " + generatedFile + "\n");
}
