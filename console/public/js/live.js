// Live figures: polls GET /v1/admin/stats (each read is audited) while this page is shown and the
// tab is visible, and computes rates from the counters' differences between two polls.
import { api } from "./api.js";
import { alertError, duration, h, pageHeading, replace } from "./ui.js";

const PERIOD_MS = 5000;

export async function render(main) {
  pageHeading(main, "Live figures");
  main.append(
    h("p", { class: "lede" }, `Refreshed every ${PERIOD_MS / 1000} s while this page is open. Rates and counters are this server instance's; live users and the push queue are the whole deployment's.`),
  );
  const grid = h("div", { class: "figures", id: "figures" });
  const updated = h("p", { class: "muted small", id: "figures-updated" });
  main.append(grid, updated);
  let prev = null;
  let timer = null;
  let stopped = false;

  const tile = (id, label, value, note) =>
    h("div", { class: "figure", id: `fig-${id}` }, h("p", { class: "figure-label" }, label), h("p", { class: "figure-value" }, value), note ? h("p", { class: "figure-note" }, note) : null);

  function rate(cur, key) {
    if (!prev) return "…";
    const dt = (Date.parse(cur.at) - Date.parse(prev.at)) / 1000;
    const d = cur[key] - prev[key];
    if (!(dt > 0) || d < 0) return "…"; // a restarted instance starts its counters again
    return (d / dt).toFixed(2);
  }

  async function poll() {
    if (stopped) return;
    if (document.visibilityState === "visible") {
      try {
        const s = await api("GET", "/v1/admin/stats");
        if (stopped) return;
        replace(
          grid,
          tile("live-users", "Live users", String(s.live_users), "in the index now"),
          tile("checkins", "Check-ins / s", rate(s, "checkins_total"), `${s.checkins_total} since start`),
          tile("nearby", "Nearby / s", rate(s, "nearby_total"), `${s.nearby_total} since start`),
          tile("queue", "Push queue depth", String(s.push_queue_depth), s.push_oldest_pending_age_s > 0 ? `oldest waiting ${duration(Math.round(s.push_oldest_pending_age_s))}` : "nothing waiting"),
          tile("failed", "Push failures", String(s.push_failed_total), `${s.push_failed_last_hour} in the last hour (all instances)`),
          tile("sent", "Pushes sent / s", rate(s, "push_sent_total"), `${s.push_sent_total} since start`),
        );
        updated.textContent = `Updated ${new Date(s.at).toLocaleTimeString()}.`;
        prev = s;
      } catch (e) {
        alertError(e);
      }
    }
    if (!stopped) timer = setTimeout(poll, PERIOD_MS);
  }
  await poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
