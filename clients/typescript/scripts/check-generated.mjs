// Fails when src/schema.d.ts is not what openapi-typescript makes of ../../openapi.yaml now:
// the committed types must be regenerated (`npm run generate`) whenever the spec changes.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = mkdtempSync(join(tmpdir(), "hb-client-"));
try {
  const fresh = join(dir, "schema.d.ts");
  execFileSync(join(root, "node_modules/.bin/openapi-typescript"), [join(root, "../../openapi.yaml"), "-o", fresh], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (readFileSync(fresh, "utf8") !== readFileSync(join(root, "src/schema.d.ts"), "utf8")) {
    console.error("src/schema.d.ts is stale: run `npm run generate` in clients/typescript and commit it");
    process.exit(1);
  }
  console.log("src/schema.d.ts matches openapi.yaml");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
