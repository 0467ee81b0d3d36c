// The committed types (src/generated/openapi.ts) are what `npm run generate` makes from the
// current code's OpenAPI document: a change of the API without regenerating fails here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateFromCode, generatedFile } from "../scripts/generate.mjs";

test("src/generated/openapi.ts matches the API's current document", () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-drift-"));
  try {
    const fresh = join(dir, "openapi.ts");
    generateFromCode(fresh);
    const want = readFileSync(fresh, "utf8");
    const have = readFileSync(generatedFile, "utf8");
    assert.ok(want.length > 10_000, "the generated file is not empty");
    assert.ok(have === want, "src/generated/openapi.ts is stale: run `npm run generate` in sdk/typescript and commit the result");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
