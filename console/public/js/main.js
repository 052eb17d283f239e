// The console's shell: sign-in, the navigation and a hash router (#/policy, #/users/<id>, …).
// Every page module exports `render(main, params)`, which may return a cleanup function.
import { currentUser, login, logout, onSignedOut } from "./api.js";
import { alertError, clearNotices, describe, field, h, newPage, pageHeading, replace, say } from "./ui.js";
import * as policy from "./policy.js";
import * as zones from "./zones.js";
import * as users from "./users.js";
import * as audit from "./audit.js";
import * as live from "./live.js";

const pages = { policy, zones, users, audit, live };
let cleanup = null;
let config = { tile_url: "", tile_attribution: "" };

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, q = ""] = raw.split("?");
  const [page, ...rest] = path.split("/").filter(Boolean);
  return { page: page || "policy", rest, params: new URLSearchParams(q) };
}

function showChrome(signedIn) {
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("session").hidden = !signedIn;
  const user = currentUser();
  replace(document.getElementById("session-user"), user ? [h("span", { class: "session-label" }, "Signed in as "), user.email] : "");
}

function renderLogin(main, message) {
  showChrome(false);
  document.title = "Sign in · Hereabouts console";
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    h("p", { class: "muted" }, "Use an administrator account. The session is kept in this tab's memory only: reloading signs you out."),
    field({ id: "login-email", label: "Email", control: email }),
    field({ id: "login-password", label: "Password", control: password }),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearNotices();
    submit.disabled = true;
    try {
      await login(email.value.trim(), password.value);
      password.value = "";
      showChrome(true);
      if (!location.hash || location.hash === "#/login") location.hash = "#/policy";
      else route();
    } catch (e) {
      alertError(e.status === 401 ? "Wrong email or password." : describe(e));
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  replace(main, form);
  if (message) say(message);
  email.focus();
}

async function route() {
  const main = document.getElementById("main");
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a page's cleanup must not stop navigation */
    }
    cleanup = null;
  }
  if (!currentUser()) return renderLogin(main);
  const { page, rest, params } = parseHash();
  const mod = pages[page];
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  newPage();
  main.replaceChildren();
  if (!mod) {
    pageHeading(main, "Not found");
    main.append(h("p", {}, "No such page. ", h("a", { href: "#/policy" }, "Go to the policy.")));
    return;
  }
  try {
    cleanup = (await mod.render(main, { rest, params, config })) ?? null;
  } catch (e) {
    if (!currentUser()) return;
    main.append(h("p", { class: "error-text" }, `This page could not be loaded: ${describe(e)}`));
    alertError(e);
  }
  const heading = main.querySelector("h1");
  if (heading && document.activeElement !== document.getElementById("dialog")) heading.focus({ preventScroll: true });
}

async function boot() {
  try {
    const res = await fetch("config.json", { cache: "no-store", credentials: "omit" });
    if (res.ok) config = await res.json();
  } catch {
    /* defaults: no tiles */
  }
  onSignedOut(() => {
    if (cleanup) {
      try {
        cleanup();
      } catch {
        /* ignore */
      }
      cleanup = null;
    }
    renderLogin(document.getElementById("main"), "Signed out.");
  });
  document.getElementById("logout").addEventListener("click", () => logout());
  // the skip link moves focus without touching the route in the address
  document.querySelector(".skip-link").addEventListener("click", (ev) => {
    ev.preventDefault();
    document.getElementById("main").focus();
  });
  window.addEventListener("hashchange", () => route());
  route();
}


boot();
