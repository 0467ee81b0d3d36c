// Finds or builds the herald binary, and starts `herald serve --dev` for the tests. Shared by
// scripts/generate.mjs and test/*.test.mjs.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

/** The repository's root (this package lives in sdk/typescript). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

let built;

/**
 * The herald binary: $HERALD_BIN when set (the Go test that runs this package sets it), else one
 * built with `go build` into a temporary directory, once per process.
 */
export function heraldBinary() {
  if (process.env.HERALD_BIN) return process.env.HERALD_BIN;
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), "herald-sdk-bin-"));
  const bin = join(dir, "herald");
  process.stderr.write("building herald (set HERALD_BIN to skip)…\n");
  execFileSync("go", ["build", "-o", bin, "./cmd/herald"], { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] });
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  built = bin;
  return bin;
}

/**
 * Starts `herald serve --dev` on a free loopback port with a fresh data directory and a known
 * admin key (args: more flags). Resolves once the server says it serves; stop() ends it and
 * removes its data.
 */
export async function startHerald({ readyWithinMs = 60_000, args = [] } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-sdk-data-"));
  const adminKey = "hk_admin_" + randomBytes(16).toString("hex");
  const child = spawn(heraldBinary(), ["serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", dataDir, ...args], {
    env: { ...process.env, HERALD_API_KEY: adminKey },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const url = await new Promise((resolveURL, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
      reject(new Error("herald did not start within " + readyWithinMs + " ms:\n" + log));
    }, readyWithinMs);
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const m = /"herald is serving" addr=(\S+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolveURL("http://" + m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error("herald exited with " + code + " before it was ready:\n" + log));
    });
  });
  return {
    url,
    adminKey,
    logs: () => log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Writes the OpenAPI document of the current code to file (herald openapi). */
export function dumpOpenAPI(file) {
  execFileSync(heraldBinary(), ["openapi", "--output", file], { stdio: ["ignore", "inherit", "inherit"] });
  if (!existsSync(file)) throw new Error("herald openapi wrote no " + file);
}
