// The audit log: filters (actor, target, action, time) kept in the address, newest first, paged.
import { api, query } from "./api.js";
import { alertError, clearNotices, field, h, pageHeading, replace, say, time } from "./ui.js";

const ACTIONS = [
  "policy.read", "policy.update", "zone.create", "zone.update", "zone.delete", "zone.list",
  "user.search", "user.read", "user.suspend", "user.unsuspend", "user.purge_location", "user.export",
  "user.erase", "audit.read", "stats.read",
];

/** datetime-local (local time) to RFC 3339 UTC, and back. */
function toIso(local) {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}
function toLocal(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export async function render(main, { params }) {
  pageHeading(main, "Audit log");
  main.append(h("p", { class: "lede" }, "Every administrator action and every read of personal data, newest first."));
  const actor = h("input", { type: "text", spellcheck: "false", autocomplete: "off", value: params.get("actor") ?? "", placeholder: "user id" });
  const target = h("input", { type: "text", spellcheck: "false", autocomplete: "off", value: params.get("target") ?? "", placeholder: "user id" });
  const action = h("input", { type: "text", list: "audit-actions", spellcheck: "false", autocomplete: "off", value: params.get("action") ?? "" });
  const since = h("input", { type: "datetime-local", value: toLocal(params.get("since")) });
  const until = h("input", { type: "datetime-local", value: toLocal(params.get("until")) });
  const form = h(
    "form",
    { class: "card filters", "aria-label": "Filter the audit log" },
    h("datalist", { id: "audit-actions" }, ACTIONS.map((a) => h("option", { value: a }))),
    h(
      "div",
      { class: "row" },
      field({ id: "audit-actor", label: "Actor (user id)", control: actor }),
      field({ id: "audit-target", label: "Target (user id)", control: target }),
      field({ id: "audit-action", label: "Action", control: action, hint: "e.g. user.suspend" }),
    ),
    h("div", { class: "row" }, field({ id: "audit-since", label: "From (local time)", control: since }), field({ id: "audit-until", label: "Until (local time)", control: until })),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Apply filters"),
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: () => {
            for (const c of [actor, target, action, since, until]) c.value = "";
            apply();
          },
        },
        "Clear",
      ),
    ),
  );
  const results = h("section", { class: "results", "aria-labelledby": "audit-results" });
  main.append(form, results);

  const filters = () => ({
    actor_user_id: actor.value.trim(),
    target_user_id: target.value.trim(),
    action: action.value.trim(),
    since: toIso(since.value),
    until: toIso(until.value),
  });
  let stack = []; // cursors of the pages before the current one
  let current = null;

  async function show(cursor) {
    clearNotices();
    try {
      const page = await api("GET", `/v1/admin/audit${query({ ...filters(), limit: 25, cursor })}`);
      current = cursor;
      const rows = page.items.map((e) =>
        h(
          "tr",
          {},
          h("td", {}, time(e.at)),
          h("td", { class: "mono" }, e.actor_user_id ? h("a", { href: `#/users/${e.actor_user_id}` }, e.actor_user_id.slice(0, 8)) : "—"),
          h("td", {}, h("code", {}, e.action)),
          h("td", { class: "mono" }, e.target_user_id ? h("a", { href: `#/users/${e.target_user_id}` }, e.target_user_id.slice(0, 8)) : e.target_ref ?? "—"),
          h("td", { class: "detail" }, Object.keys(e.detail ?? {}).length ? h("code", {}, JSON.stringify(e.detail)) : ""),
        ),
      );
      const newer = h("button", { type: "button", class: "secondary", disabled: stack.length === 0, onclick: () => show(stack.pop()) }, "\u2190 Newer");
      const older = h(
        "button",
        {
          type: "button",
          class: "secondary",
          disabled: !page.next_cursor,
          onclick: () => {
            stack.push(current);
            show(page.next_cursor);
          },
        },
        "Older \u2192",
      );
      replace(
        results,
        h("h2", { id: "audit-results" }, `Entries ${stack.length * 25 + 1}\u2013${stack.length * 25 + page.items.length}`),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "audit" },
            h("caption", { class: "visually-hidden" }, "Audit entries, newest first"),
            h("thead", {}, h("tr", {}, ["Time", "Actor", "Action", "Target", "Detail"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5 }, "No entry matches."))),
          ),
        ),
        h("nav", { class: "actions pager", "aria-label": "Audit pages" }, newer, older),
      );
      say(`${page.items.length} audit entr${page.items.length === 1 ? "y" : "ies"} shown.`);
    } catch (e) {
      alertError(e);
    }
  }
  function apply() {
    stack = [];
    const f = filters();
    history.replaceState(null, "", `#/audit${query({ actor: f.actor_user_id, target: f.target_user_id, action: f.action, since: f.since, until: f.until })}`);
    show(null);
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    apply();
  });
  await show(null);
}
