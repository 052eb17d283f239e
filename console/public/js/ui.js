// Small DOM helpers: elements are built with textContent only (never innerHTML from data), so
// nothing the API returns can become markup; no inline styles or scripts (the CSP forbids them).

/** Creates an element: attributes (`class`, `for`, `on*` handlers, booleans) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let statusTimer;
let carry = false;
/**
 * A polite announcement (screen readers read it; it fades after a while). With `acrossPages`,
 * it survives the next page change (said just before navigating).
 */
export function say(text, acrossPages = false) {
  const s = document.getElementById("status");
  clearTimeout(statusTimer);
  s.textContent = text;
  s.classList.toggle("shown", Boolean(text));
  carry = acrossPages && Boolean(text);
  if (text) statusTimer = setTimeout(() => say(""), 15000);
}

/** A new page: notices of the last one go, unless said to carry over. */
export function newPage() {
  if (!carry) say("");
  carry = false;
  alertError(null);
}

/** An error announcement; stays until the next action clears it. */
export function alertError(err) {
  const a = document.getElementById("alert");
  a.textContent = err ? describe(err) : "";
  a.classList.toggle("shown", Boolean(err));
}

export function clearNotices() {
  say("");
  alertError(null);
}

/** The human text of an API error (problem+json) or any other error. */
export function describe(err) {
  if (err && err.problem) {
    const p = err.problem;
    const fields = (p.errors ?? []).map((e) => `${e.field}: ${e.message}`).join("; ");
    return `${p.title ?? "Error"} (${p.status} ${p.code ?? ""})${p.detail ? `: ${p.detail}` : ""}${fields ? ` — ${fields}` : ""}`;
  }
  return String(err?.message ?? err);
}

/**
 * A modal confirmation (<dialog>: focus moves into it, Escape cancels). With `requireText`, the
 * confirm button is enabled only once the operator has typed that exact text.
 * Resolves true when confirmed.
 */
export function confirmDialog({ title, body, confirmLabel = "Confirm", danger = false, requireText = null, requireLabel = "" }) {
  const dialog = document.getElementById("dialog");
  const confirm = document.getElementById("dialog-confirm");
  const extra = document.getElementById("dialog-extra");
  document.getElementById("dialog-title").textContent = title;
  replace(document.getElementById("dialog-body"), ...(Array.isArray(body) ? body : [body]).map((p) => (p instanceof Node ? p : h("p", {}, p))));
  confirm.textContent = confirmLabel;
  confirm.classList.toggle("danger", danger);
  confirm.disabled = false;
  extra.replaceChildren();
  let input = null;
  if (requireText !== null) {
    input = h("input", { id: "dialog-input", type: "text", autocomplete: "off", spellcheck: "false", "aria-describedby": "dialog-input-hint" });
    extra.append(
      h("label", { for: "dialog-input" }, requireLabel || `Type ${requireText} to confirm`),
      input,
      h("p", { id: "dialog-input-hint", class: "hint" }, "The button is enabled once the text matches exactly."),
    );
    confirm.disabled = true;
    input.addEventListener("input", () => {
      confirm.disabled = input.value.trim() !== requireText;
    });
  }
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const ok = dialog.returnValue === "confirm" && (requireText === null || input.value.trim() === requireText);
        resolve(ok);
      },
      { once: true },
    );
    dialog.showModal();
    (input ?? document.getElementById("dialog-cancel")).focus();
  });
}

/** A labelled form field: label, control, optional hint, and an error slot. */
export function field({ id, label, control, hint }) {
  const hintId = hint ? `${id}-hint` : null;
  const errId = `${id}-error`;
  control.id = id;
  const described = [hintId, errId].filter(Boolean).join(" ");
  control.setAttribute("aria-describedby", described);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    h("p", { class: "field-error", id: errId }),
  );
}

/** Shows the 422 field errors next to their controls (`errors[].field` = control id suffix). */
export function showFieldErrors(form, prefix, err) {
  for (const c of form.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
  for (const e of form.querySelectorAll(".field-error")) e.textContent = "";
  for (const fe of err?.problem?.errors ?? []) {
    const control = form.querySelector(`#${prefix}${CSS.escape(fe.field)}`);
    if (!control) continue;
    control.setAttribute("aria-invalid", "true");
    const slot = form.querySelector(`#${prefix}${CSS.escape(fe.field)}-error`);
    if (slot) slot.textContent = fe.message;
  }
}

/** "3 h 20 min" for a number of seconds. */
export function duration(s) {
  s = Number(s);
  if (!Number.isFinite(s)) return "";
  const parts = [];
  for (const [unit, n] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]]) {
    if (s >= n) {
      parts.push(`${Math.floor(s / n)} ${unit}`);
      s %= n;
    }
  }
  return parts.slice(0, 2).join(" ") || "0 s";
}

/** A time as the operator reads it (local), with the UTC value in the title. */
export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return h("time", { datetime: iso, title: iso }, d.toLocaleString());
}

/** Sets document title and moves focus to the page heading (for keyboard and screen-reader users). */
export function pageHeading(main, text) {
  document.title = `${text} · Hereabouts console`;
  const h1 = h("h1", { tabindex: "-1" }, text);
  main.append(h1);
  return h1;
}
