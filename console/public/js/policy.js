// Policy: the kill switch, minimum precision, maximum TTL, notification cooldown, retention.
import { api } from "./api.js";
import { alertError, clearNotices, confirmDialog, describe, duration, field, h, pageHeading, say, showFieldErrors } from "./ui.js";

const PRECISIONS = [
  ["exact", "Exact — users may publish their point itself"],
  ["approximate", "Approximate — at least the centre of a ~5 km² cell (H3 resolution 7)"],
  ["city", "City — at least the centre of a ~250 km² cell (H3 resolution 5)"],
];

function effectText(effect) {
  if (!effect) return "No live user was affected.";
  const r = effect.republished;
  const m = effect.removed;
  return `Live users: ${r} re-published under the new policy, ${m} removed from the index.`;
}

export async function render(main) {
  pageHeading(main, "Policy");
  main.append(h("p", { class: "lede" }, "The rules every user's location sharing is held to. Changes apply to live users at once."));
  let policy = await api("GET", "/v1/admin/policy");

  const sharing = h("input", { type: "checkbox", role: "switch" });
  const precision = h("select", {}, PRECISIONS.map(([v, label]) => h("option", { value: v }, label)));
  const ttl = h("input", { type: "number", min: 60, max: 604800, step: 1, required: true, inputmode: "numeric" });
  const cooldown = h("input", { type: "number", min: 0, max: 2592000, step: 1, required: true, inputmode: "numeric" });
  const retention = h("input", { type: "number", min: 1, max: 3650, step: 1, required: true, inputmode: "numeric" });
  const ttlHuman = h("span", { class: "human" });
  const cooldownHuman = h("span", { class: "human" });
  const state = h("p", { class: "switch-state", id: "policy-sharing-state" });
  const effect = h("p", { class: "effect", id: "policy-effect", "aria-live": "polite" });
  const save = h("button", { type: "submit" }, "Save policy");

  function fill(p) {
    sharing.checked = p.location_sharing_enabled;
    precision.value = p.min_precision;
    ttl.value = p.max_ttl_s;
    cooldown.value = p.notification_cooldown_s;
    retention.value = p.retention_days;
    update();
  }
  function update() {
    ttlHuman.textContent = `= ${duration(ttl.value)}`;
    cooldownHuman.textContent = `= ${duration(cooldown.value)}`;
    state.textContent = sharing.checked
      ? "Location sharing is ON: users who opted in can check in and appear in nearby."
      : "Location sharing is OFF for everyone: check-ins are refused and nobody is in the index.";
    state.classList.toggle("off", !sharing.checked);
  }
  for (const c of [sharing, ttl, cooldown]) c.addEventListener("input", update);

  const form = h(
    "form",
    { class: "card policy", novalidate: true },
    h(
      "fieldset",
      { class: "kill-switch" },
      h("legend", {}, "Kill switch"),
      h("div", { class: "switch-row" }, sharing, h("label", { for: "policy-location_sharing_enabled" }, "Location sharing enabled")),
      state,
      h("p", { class: "field-error", id: "policy-location_sharing_enabled-error" }),
    ),
    field({ id: "policy-min_precision", label: "Minimum precision", control: precision, hint: "Users who chose a finer precision are published at this one." }),
    field({ id: "policy-max_ttl_s", label: "Maximum check-in lifetime (seconds)", control: ttl, hint: h("span", {}, "60 to 604,800. Lowering it shortens live check-ins at once. ", ttlHuman) }),
    field({ id: "policy-notification_cooldown_s", label: "Notification cooldown (seconds)", control: cooldown, hint: h("span", {}, "0 to 2,592,000: one \u201cnearby\u201d push per pair per cooldown. ", cooldownHuman) }),
    field({ id: "policy-retention_days", label: "Retention (days)", control: retention, hint: "1 to 3,650: how long notifications and history are kept." }),
    h("div", { class: "actions" }, save),
    effect,
  );
  sharing.id = "policy-location_sharing_enabled";
  sharing.setAttribute("aria-describedby", "policy-sharing-state");
  fill(policy);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearNotices();
    showFieldErrors(form, "policy-", null);
    const patch = {};
    if (sharing.checked !== policy.location_sharing_enabled) patch.location_sharing_enabled = sharing.checked;
    if (precision.value !== policy.min_precision) patch.min_precision = precision.value;
    for (const [key, c] of [["max_ttl_s", ttl], ["notification_cooldown_s", cooldown], ["retention_days", retention]]) {
      const v = Number(c.value);
      if (c.value === "" || !Number.isInteger(v)) {
        showFieldErrors(form, "policy-", { problem: { errors: [{ field: key, message: "a whole number is needed" }] } });
        c.focus();
        return;
      }
      if (v !== policy[key]) patch[key] = v;
    }
    if (Object.keys(patch).length === 0) {
      say("Nothing changed.");
      return;
    }
    if (patch.location_sharing_enabled === false) {
      const ok = await confirmDialog({
        title: "Turn location sharing off for everyone?",
        body: [
          "This is the kill switch. Every live check-in ends now and leaves the index: nobody appears in anyone's nearby list, and no arrival notifications are sent.",
          "New check-ins are refused until sharing is turned back on. Turning it back on does not bring anyone back: users appear again only when they check in anew.",
        ],
        confirmLabel: "Turn sharing off",
        danger: true,
      });
      if (!ok) {
        say("Kill switch not used: nothing changed.");
        return;
      }
    }
    save.disabled = true;
    try {
      const res = await api("PATCH", "/v1/admin/policy", patch);
      const { effect: eff, ...next } = res;
      policy = next;
      fill(policy);
      effect.textContent = `Saved. ${effectText(eff)}`;
      say(`Policy saved. ${effectText(eff)}`);
    } catch (e) {
      showFieldErrors(form, "policy-", e);
      alertError(e);
      effect.textContent = `Not saved: ${describe(e)}`;
    } finally {
      save.disabled = false;
    }
  });
  main.append(form);
}
