// Copies the pinned Leaflet (package-lock.json) from node_modules into public/vendor/, where the
// server embeds it: run `npm ci && npm run vendor` after changing the version, and commit the result.
// The versioned folder name lets the server cache these files for good.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "node_modules/leaflet/package.json"), "utf8"));
const from = join(root, "node_modules/leaflet");
const vendor = join(root, "public/vendor");
const to = join(vendor, `leaflet-${pkg.version}`);

rmSync(vendor, { recursive: true, force: true });
mkdirSync(join(to, "images"), { recursive: true });
// the source map is not shipped: drop the comment that would make devtools ask for it
const esm = readFileSync(join(from, "dist/leaflet-src.esm.js"), "utf8").replace(/\n\/\/# sourceMappingURL=.*\s*$/, "\n");
writeFileSync(join(to, "leaflet-src.esm.js"), esm);
cpSync(join(from, "dist/leaflet.css"), join(to, "leaflet.css"));
cpSync(join(from, "dist/images"), join(to, "images"), { recursive: true });
cpSync(join(from, "LICENSE"), join(to, "LICENSE"));
writeFileSync(join(vendor, "VERSIONS"), `leaflet ${pkg.version}\n`);
console.log(`vendored leaflet ${pkg.version} into ${to}`);
