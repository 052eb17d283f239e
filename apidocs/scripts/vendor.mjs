// Copies the pinned Swagger UI (package-lock.json) from node_modules into public/vendor/, where the
// server embeds it: run `npm ci && npm run vendor` after changing the version, and commit the result.
// The versioned folder name lets the server cache these files for good.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const from = join(root, "node_modules/swagger-ui-dist");
const pkg = JSON.parse(readFileSync(join(from, "package.json"), "utf8"));
const vendor = join(root, "public/vendor");
const to = join(vendor, `swagger-ui-${pkg.version}`);

rmSync(vendor, { recursive: true, force: true });
mkdirSync(to, { recursive: true });
// source maps are not shipped: drop the comments that would make devtools ask for them
for (const name of ["swagger-ui-bundle.js", "swagger-ui.css"]) {
  const text = readFileSync(join(from, name), "utf8").replace(/\n?\/[/*]# sourceMappingURL=.*\s*$/, "\n");
  writeFileSync(join(to, name), text);
}
cpSync(join(from, "LICENSE"), join(to, "LICENSE"));
cpSync(join(from, "NOTICE"), join(to, "NOTICE"));
cpSync(join(from, "swagger-ui-bundle.js.LICENSE.txt"), join(to, "swagger-ui-bundle.js.LICENSE.txt"));
writeFileSync(join(vendor, "VERSIONS"), `swagger-ui-dist ${pkg.version}\n`);
console.log(`vendored swagger-ui-dist ${pkg.version} into ${to}`);
