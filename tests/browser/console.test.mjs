// The operator console in a real browser (Debian's chromium driven by playwright-core).
// scripts/browser-test starts the server and sets HB_BASE_URL, HB_BIN (the hereabouts binary, for
// `admin grant`), HEREABOUTS_DATABASE_URL and, to refresh the README's pictures, HB_SCREENSHOT_DIR.
// Every wait is bounded: actions and expectations time out, and so does the whole run.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.HB_BASE_URL ?? "http://127.0.0.1:8080";
const BIN = process.env.HB_BIN ?? "hereabouts";
const CHROMIUM = process.env.HB_CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = process.env.HB_SCREENSHOT_DIR || "";
const PASSWORD = "correct horse battery";
const WAIT = 15_000;
const run = Date.now().toString(36);
const ALICE_AT = { lat: 48.8566, lng: 2.3522 }; // checked in; the zone is drawn around her
const BRUNO_AT = { lat: 48.8746, lng: 2.3522 }; // 2 km north, outside the zone; watches nearby

/** An API call as `who` (a user: their token, renewed by a new login when it may have expired). */
async function call(method, path, who, body) {
  const token = who ? await tokenOf(who) : null;
  const res = await fetch(`${BASE}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(WAIT),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

// scripts/browser-test gives access tokens 30 s, to see the page refresh its own
async function tokenOf(user) {
  if (Date.now() - user.at > 15_000) Object.assign(user, await login(user));
  return user.token;
}

async function register(name) {
  const email = `${name}-${run}@example.com`;
  const r = await call("POST", "/v1/auth/register", null, { email, password: PASSWORD, display_name: name });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return { email, id: r.body.user.id, token: r.body.access_token, at: Date.now() };
}

async function login(user) {
  const r = await call("POST", "/v1/auth/login", null, { email: user.email, password: PASSWORD });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { ...user, token: r.body.access_token, at: Date.now() };
}

async function nearbyIds(user) {
  const r = await call("GET", "/v1/nearby?radius_m=10000", user);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.items.map((i) => i.user_id);
}

describe("the operator console", { timeout: 240_000 }, () => {
  let browser;
  let context;
  let page;
  let admin;
  let alice;
  let bruno;
  let carol;
  const problems = []; // uncaught errors and CSP refusals seen by the page
  const refreshes = []; // statuses of the page's token refreshes
  let signedInAt = 0;

  async function shot(name) {
    if (!SHOTS) return;
    mkdirSync(SHOTS, { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(SHOTS, `${name}.png`) });
  }

  async function go(label, heading) {
    await page.getByRole("navigation", { name: "Console sections" }).getByRole("link", { name: label }).click();
    await page.getByRole("heading", { level: 1, name: heading }).waitFor();
  }

  /** Every form control on the page has a label (its own, aria-label or aria-labelledby). */
  async function assertLabelled() {
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll("main input, main select, main textarea")]
        .filter((c) => c.type !== "hidden" && !(c.labels?.length || c.getAttribute("aria-label") || c.getAttribute("aria-labelledby")))
        .map((c) => c.outerHTML),
    );
    assert.deepEqual(unlabelled, []);
  }

  before(async () => {
    admin = await register("operator");
    execFileSync(BIN, ["admin", "grant", admin.email], { timeout: 30_000, stdio: "pipe", env: process.env });
    admin = await login(admin); // a token that carries the role
    alice = await register("alice");
    bruno = await register("bruno");
    carol = await register("carol");
    const req = await call("POST", "/v1/connections/requests", alice, { to_user_id: bruno.id });
    assert.equal(req.status, 201, JSON.stringify(req.body));
    assert.equal((await call("POST", `/v1/connections/requests/${req.body.id}/accept`, bruno)).status, 200);
    for (const [u, at] of [[alice, ALICE_AT], [bruno, BRUNO_AT]]) {
      assert.equal((await call("PATCH", "/v1/me/privacy", u, { sharing: true, precision: "exact" })).status, 200);
      const c = await call("POST", "/v1/checkins", u, at);
      assert.equal(c.status, 201, JSON.stringify(c.body));
    }
    assert.deepEqual(await nearbyIds(bruno), [alice.id], "bruno sees alice before the zone");

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, chromiumSandbox: false, timeout: 60_000 });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true, locale: "en-GB", timezoneId: "UTC" });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("response", (r) => {
      if (new URL(r.url()).pathname === "/v1/auth/refresh") refreshes.push(r.status());
    });
    page.on("console", (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
    });
  });

  after(async () => {
    await browser?.close();
  });

  it("signs in with an administrator account and keeps the tokens out of storage", async () => {
    const res = await page.goto(`${BASE}/admin`);
    assert.equal(new URL(page.url()).pathname, "/admin/");
    assert.match(res.headers()["content-security-policy"], /script-src 'self'/);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await assertLabelled();
    await page.getByLabel("Email").fill(admin.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await shot("login");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { level: 1, name: "Policy" }).waitFor();
    signedInAt = Date.now();
    const stored = await page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length, cookies: document.cookie }));
    assert.deepEqual(stored, { local: 0, session: 0, cookies: "" });
  });

  it("is usable from the keyboard, with a visible focus", async () => {
    const focused = () =>
      page.evaluate(() => {
        const el = document.activeElement;
        const s = getComputedStyle(el);
        const r = el.getBoundingClientRect();
        return { text: el.textContent.trim(), tag: el.tagName, outline: s.outlineStyle, width: parseFloat(s.outlineWidth), top: r.top };
      });
    // the page has finished loading once the router has put focus on its heading; a Tab
    // before then would be undone by that move
    await page.waitForFunction(() => document.activeElement?.tagName === "H1", null, { timeout: WAIT });
    await page.locator(".skip-link").focus();
    const skip = await focused();
    assert.equal(skip.text, "Skip to content");
    assert.ok(skip.top >= 0, "the skip link shows when focused");
    await page.keyboard.press("Tab");
    const link = await focused();
    assert.equal(link.text, "Policy");
    assert.equal(link.outline, "solid");
    assert.ok(link.width >= 2, `outline ${link.width}px`);
    await page.keyboard.press("Tab");
    assert.equal((await focused()).text, "Restricted zones");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { level: 1, name: "Restricted zones" }).waitFor();
    await page.waitForFunction(() => document.activeElement?.tagName === "H1", null, { timeout: WAIT });
    assert.deepEqual(await focused().then((f) => [f.tag, f.text]), ["H1", "Restricted zones"], "focus moves to the new page's heading");
    await go("Policy", "Policy");
  });

  it("changes the policy, shows the effect, and asks before the kill switch", async () => {
    await assertLabelled();
    await page.getByLabel("Maximum check-in lifetime (seconds)").fill("7200");
    await page.getByLabel("Retention (days)").fill("45");
    await page.getByRole("button", { name: "Save policy" }).click();
    await page.locator("#policy-effect").getByText("2 re-published").waitFor();
    const p = await call("GET", "/v1/admin/policy", admin);
    assert.equal(p.body.max_ttl_s, 7200);
    assert.equal(p.body.retention_days, 45);

    await page.getByLabel("Location sharing enabled").uncheck();
    await page.getByRole("button", { name: "Save policy" }).click();
    const dialog = page.getByRole("dialog", { name: "Turn location sharing off for everyone?" });
    await dialog.waitFor();
    await dialog.getByText("Every live check-in ends now").waitFor();
    await shot("policy-kill-switch");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await page.getByText("Kill switch not used").waitFor();
    assert.equal((await call("GET", "/v1/admin/policy", admin)).body.location_sharing_enabled, true);
    await page.getByLabel("Location sharing enabled").check();
    await shot("policy");
  });

  it("draws a zone by clicking around a live user, who leaves the index", async () => {
    await go("Restricted zones", "Restricted zones");
    await page.locator(".leaflet-control-scale-line").waitFor(); // no tiles, and still a scale
    await page.getByLabel("Latitude").fill(String(ALICE_AT.lat));
    await page.getByLabel("Longitude").fill(String(ALICE_AT.lng));
    await page.getByLabel("Zoom", { exact: true }).fill("16");
    await page.getByRole("button", { name: "Go", exact: true }).click();
    await page.getByText(`Map centre ${ALICE_AT.lat.toFixed(5)}, ${ALICE_AT.lng.toFixed(5)} · zoom 16`).waitFor();
    await page.getByRole("button", { name: "Draw a new zone" }).click();
    await assertLabelled();
    await page.getByLabel("Name").fill(`Test zone ${run}`);
    const box = await page.locator("#zone-map").boundingBox();
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    for (const [dx, dy] of [[-70, -60], [70, -60], [70, 60], [-70, 60]]) await page.mouse.click(cx + dx, cy + dy);
    await page.locator("#vertex-count").getByText("4 points.").waitFor();
    await page.getByRole("button", { name: "Save zone" }).click();
    await page.getByRole("status").getByText("1 live user(s) are now out of the index").waitFor();
    await page.getByRole("heading", { name: "Zones (1)" }).waitFor();

    assert.deepEqual(await nearbyIds(bruno), [], "alice left bruno's nearby");
    const cur = await call("GET", "/v1/checkins/current", alice);
    assert.equal(cur.body.indexed, false);
    assert.equal(cur.body.reason, "restricted_zone");
    const zones = (await call("GET", "/v1/admin/restricted-zones", admin)).body.items;
    assert.equal(zones.length, 1);
    assert.equal(zones[0].geometry.type, "Polygon");
    assert.equal(zones[0].geometry.coordinates[0].length, 5, "four corners, closed");
    await page.locator(".leaflet-overlay-pane path").first().waitFor();
    await shot("zones");

    // rename it and drag a corner outwards through the editor
    await page.getByRole("button", { name: `Edit Test zone ${run}` }).click();
    const handle = page.locator(".vertex-handle").first();
    await handle.waitFor();
    assert.equal(await page.locator(".vertex-handle").count(), 4);
    const hb = await handle.boundingBox();
    await page.mouse.move(hb.x + hb.width / 2, hb.y + hb.height / 2);
    await page.mouse.down();
    await page.mouse.move(hb.x + hb.width / 2 - 20, hb.y + hb.height / 2 - 20, { steps: 5 });
    await page.mouse.up();
    await page.getByLabel("Name").fill(`Renamed zone ${run}`);
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").getByText(`Zone \u201cRenamed zone ${run}\u201d updated.`).waitFor();
    const renamed = (await call("GET", "/v1/admin/restricted-zones", admin)).body.items;
    assert.equal(renamed[0].name, `Renamed zone ${run}`);
    assert.notDeepEqual(renamed[0].geometry.coordinates, zones[0].geometry.coordinates, "the dragged corner moved");
    assert.equal(renamed[0].geometry.coordinates[0].length, 5);
    assert.deepEqual(await nearbyIds(bruno), [], "alice is still out of the index");
  });

  it("finds a user, downloads the export and suspends them", async () => {
    await go("Users", "Users");
    await assertLabelled();
    await page.getByLabel("Email starts with").fill(`bruno-${run}`);
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByRole("link", { name: bruno.email }).click();
    await page.getByRole("heading", { level: 1, name: bruno.email }).waitFor();

    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export (download)" }).click()]);
    assert.equal(download.suggestedFilename(), `hereabouts-export-${bruno.id}.json`);
    const doc = JSON.parse(readFileSync(await download.path(), "utf8"));
    assert.ok(JSON.stringify(doc).includes(bruno.id), "the export is about bruno");

    await page.getByRole("button", { name: "Suspend", exact: true }).click();
    const dialog = page.getByRole("dialog", { name: `Suspend ${bruno.email}?` });
    await dialog.getByRole("button", { name: "Suspend", exact: true }).click();
    await page.getByRole("status").getByText(`${bruno.email} is suspended.`).waitFor();
    await page.getByRole("button", { name: "Unsuspend" }).waitFor();
    const u = await call("GET", `/v1/admin/users/${bruno.id}`, admin);
    assert.equal(u.body.suspended, true);
    const locked = await call("POST", "/v1/auth/login", null, { email: bruno.email, password: PASSWORD });
    assert.ok([401, 403].includes(locked.status), `bruno cannot sign in: ${locked.status}`);
    await shot("users");
  });

  it("erases a user only once their email is typed", async () => {
    // by address, within the page (a reload would sign out: the session lives in memory only)
    await page.evaluate((id) => (location.hash = `#/users/${id}`), carol.id);
    await page.getByRole("heading", { level: 1, name: carol.email }).waitFor();
    await page.getByRole("button", { name: "Erase account" }).click();
    const dialog = page.getByRole("dialog", { name: `Erase ${carol.email}?` });
    const confirm = dialog.getByRole("button", { name: "Erase for good" });
    assert.equal(await confirm.isDisabled(), true);
    await dialog.getByLabel(/Type the email/).fill("someone@else.example");
    assert.equal(await confirm.isDisabled(), true);
    await dialog.getByLabel(/Type the email/).fill(carol.email);
    await confirm.click();
    await page.getByRole("status").getByText(`${carol.email} is erased.`).waitFor();
    await page.getByRole("heading", { level: 1, name: "Users" }).waitFor();
    assert.equal((await call("GET", `/v1/admin/users/${carol.id}`, admin)).status, 404);
  });

  it("finds the suspension in the audit log", async () => {
    await go("Audit log", "Audit log");
    await assertLabelled();
    await page.getByLabel("Action", { exact: true }).fill("user.suspend");
    await page.getByLabel("Target (user id)").fill(bruno.id);
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.getByRole("status").getByText("1 audit entry shown.").waitFor();
    const row = page.locator("table.audit tbody tr").filter({ hasText: "user.suspend" });
    assert.equal(await page.locator("table.audit tbody tr").count(), 1);
    assert.match(await row.textContent(), new RegExp(admin.id.slice(0, 8)));
    assert.match(page.url(), /#\/audit\?.*action=user.suspend/);
    // all entries, paged
    await page.getByRole("button", { name: "Clear" }).click();
    await page.getByRole("heading", { name: /^Entries 1–/ }).waitFor();
    await shot("audit");
  });

  it("shows live figures with rates", async () => {
    await go("Live figures", "Live figures");
    await page.locator("#fig-live-users .figure-value").waitFor();
    // the second reading (5 s later) gives rates
    await page.locator("#fig-checkins .figure-value").filter({ hasText: /^\d+\.\d\d$/ }).waitFor({ timeout: 20_000 });
    const live = Number(await page.locator("#fig-live-users .figure-value").textContent());
    assert.equal(live, 0, "alice is in a zone and bruno is suspended");
    await shot("live");
  });

  it("fits a tablet (768×1024) without sideways scrolling", async () => {
    await page.setViewportSize({ width: 768, height: 1024 });
    for (const [label, heading] of [["Policy", "Policy"], ["Restricted zones", "Restricted zones"], ["Users", "Users"], ["Audit log", "Audit log"]]) {
      await go(label, heading);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${label}: ${overflow}px wider than the screen`);
    }
    await go("Restricted zones", "Restricted zones");
    await page.locator(".leaflet-overlay-pane path").first().waitFor();
    const map = await page.locator("#zone-map").boundingBox();
    assert.ok(map.width > 600 && map.height > 300, `map ${map.width}×${map.height}`);
    await shot("zones-tablet");
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it("refreshes its token before it expires, uses the kill switch after confirmation, and signs out", async () => {
    // scripts/browser-test gives access tokens 30 s: the page refreshes after 22.5 s
    const ttl = Number(process.env.HB_ACCESS_TOKEN_TTL_S ?? 0);
    if (ttl > 0) await new Promise((r) => setTimeout(r, Math.max(0, signedInAt + ttl * 1000 - Date.now() - 5_000)));
    await go("Policy", "Policy");
    await page.getByLabel("Location sharing enabled").uncheck();
    await page.getByRole("button", { name: "Save policy" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Turn sharing off" }).click();
    await page.locator("#policy-effect").getByText("removed from the index").waitFor();
    const refused = await call("POST", "/v1/checkins", alice, ALICE_AT);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.code, "sharing_disabled");
    if (ttl > 0) {
      assert.ok(refreshes.length >= 1, "the page refreshed its token");
      assert.ok(refreshes.every((s) => s === 200), `refreshes: ${refreshes}`);
    }
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    assert.deepEqual(problems, [], "no script error and no CSP refusal");
  });
});
