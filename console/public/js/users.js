// Users: search by email, a user's detail, suspend and unsuspend, purge location, export, erase.
// Every read here is written to the audit log by the API.
import { api, query } from "./api.js";
import { alertError, clearNotices, confirmDialog, describe, field, h, pageHeading, replace, say, time } from "./ui.js";

const yes = (b) => (b ? "Yes" : "No");

export async function render(main, ctx) {
  if (ctx.rest[0]) return detail(main, ctx.rest[0]);
  return search(main, ctx.params);
}

async function search(main, params) {
  pageHeading(main, "Users");
  const email = h("input", { type: "search", autocomplete: "off", spellcheck: "false", value: params.get("email") ?? "" });
  const form = h(
    "form",
    { class: "card search", role: "search", "aria-label": "Search users" },
    field({ id: "user-email", label: "Email starts with", control: email, hint: "Case-insensitive. Leave empty to list everyone." }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Search")),
  );
  const results = h("section", { "aria-labelledby": "results-title", class: "results" });
  main.append(form, results);

  let cursor = null;
  let rows = null;
  async function run(more) {
    clearNotices();
    try {
      const page = await api("GET", `/v1/admin/users${query({ email: email.value.trim(), limit: 25, cursor: more ? cursor : null })}`);
      cursor = page.next_cursor;
      if (!more) {
        rows = h("tbody");
        replace(
          results,
          h("h2", { id: "results-title" }, "Results"),
          h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              {},
              h("caption", { class: "visually-hidden" }, "Users matching the search"),
              h("thead", {}, h("tr", {}, ["Email", "Name", "Role", "Suspended", "Sharing", "Live location"].map((t) => h("th", { scope: "col" }, t)))),
              rows,
            ),
          ),
        );
      }
      for (const u of page.items) {
        rows.append(
          h(
            "tr",
            {},
            h("th", { scope: "row" }, h("a", { href: `#/users/${u.id}` }, u.email)),
            h("td", {}, u.display_name),
            h("td", {}, u.role),
            h("td", { class: u.suspended ? "flag" : "" }, yes(u.suspended)),
            h("td", {}, yes(u.sharing)),
            h("td", {}, yes(u.has_live_location)),
          ),
        );
      }
      results.querySelector(".more")?.remove();
      if (!more && page.items.length === 0) rows.append(h("tr", {}, h("td", { colspan: 6 }, "No user matches.")));
      if (cursor) results.append(h("div", { class: "actions more" }, h("button", { type: "button", class: "secondary", onclick: () => run(true) }, "Show more")));
      say(`${rows.children.length} user(s) shown${cursor ? ", more available" : ""}.`);
    } catch (e) {
      alertError(e);
    }
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    history.replaceState(null, "", `#/users${query({ email: email.value.trim() })}`);
    run(false);
  });
  if (params.has("email")) await run(false);
  email.focus();
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const a = h("a", { href: url, download: name, class: "visually-hidden" }, name);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function detail(main, id) {
  const back = h("p", {}, h("a", { href: "#/users" }, "\u2190 All users"));
  main.append(back);
  const heading = pageHeading(main, "User");
  const body = h("div", { class: "user-detail" });
  main.append(body);

  async function refresh() {
    const u = await api("GET", `/v1/admin/users/${encodeURIComponent(id)}`);
    heading.textContent = u.email;
    document.title = `${u.email} · Hereabouts console`;
    const status = h("span", { class: `badge ${u.suspended ? "bad" : "good"}` }, u.suspended ? "Suspended" : "Active");
    const actions = h(
      "div",
      { class: "actions wrap" },
      u.suspended
        ? h("button", { type: "button", id: "unsuspend", onclick: () => act("unsuspend", u) }, "Unsuspend")
        : h("button", { type: "button", id: "suspend", class: "danger", onclick: () => act("suspend", u) }, "Suspend"),
      h("button", { type: "button", id: "purge", class: "secondary", onclick: () => act("purge", u), disabled: !u.has_live_location && undefined }, "Purge location"),
      h("button", { type: "button", id: "export", class: "secondary", onclick: () => act("export", u) }, "Export (download)"),
      h("button", { type: "button", id: "erase", class: "danger", onclick: () => act("erase", u) }, "Erase account"),
    );
    replace(
      body,
      h(
        "dl",
        { class: "card facts" },
        h("dt", {}, "Status"),
        h("dd", {}, status),
        h("dt", {}, "Name"),
        h("dd", {}, u.display_name),
        h("dt", {}, "Email"),
        h("dd", {}, u.email),
        h("dt", {}, "Role"),
        h("dd", {}, u.role),
        h("dt", {}, "Sharing"),
        h("dd", {}, yes(u.sharing)),
        h("dt", {}, "Live location"),
        h("dd", {}, yes(u.has_live_location)),
        h("dt", {}, "Created"),
        h("dd", {}, time(u.created_at)),
        h("dt", {}, "Id"),
        h("dd", { class: "mono" }, u.id),
      ),
      h("h2", {}, "Actions"),
      actions,
      h("p", {}, h("a", { href: `#/audit?target=${encodeURIComponent(u.id)}` }, "Audit entries about this user")),
    );
  }

  async function act(kind, u) {
    clearNotices();
    try {
      if (kind === "suspend") {
        const ok = await confirmDialog({
          title: `Suspend ${u.email}?`,
          body: "They leave the index at once, every session ends, they cannot sign in and nobody sees them anywhere until unsuspended.",
          confirmLabel: "Suspend",
          danger: true,
        });
        if (!ok) return;
        await api("POST", `/v1/admin/users/${u.id}/suspend`);
        say(`${u.email} is suspended.`);
      } else if (kind === "unsuspend") {
        await api("POST", `/v1/admin/users/${u.id}/unsuspend`);
        say(`${u.email} is no longer suspended.`);
      } else if (kind === "purge") {
        const ok = await confirmDialog({
          title: `Purge the location of ${u.email}?`,
          body: "Their live check-in and check-in history are deleted and they leave the index now. The account stays.",
          confirmLabel: "Purge location",
          danger: true,
        });
        if (!ok) return;
        await api("DELETE", `/v1/admin/users/${u.id}/location`);
        say(`The location of ${u.email} is purged.`);
      } else if (kind === "export") {
        const doc = await api("GET", `/v1/admin/users/${u.id}/export`);
        download(`hereabouts-export-${u.id}.json`, JSON.stringify(doc, null, 2));
        say(`Export of ${u.email} downloaded.`);
        return;
      } else if (kind === "erase") {
        const ok = await confirmDialog({
          title: `Erase ${u.email}?`,
          body: [
            "The account and every datum about it are deleted from both stores: profile, privacy settings, connections, devices, location, notifications. Audit entries keep only a pseudonym.",
            "This cannot be undone.",
          ],
          confirmLabel: "Erase for good",
          danger: true,
          requireText: u.email,
          requireLabel: `Type the email (${u.email}) to confirm`,
        });
        if (!ok) return;
        await api("DELETE", `/v1/admin/users/${u.id}`);
        say(`${u.email} is erased.`, true);
        location.hash = "#/users";
        return;
      }
      await refresh();
    } catch (e) {
      alertError(`Could not ${kind}: ${describe(e)}`);
    }
  }

  await refresh();
}
