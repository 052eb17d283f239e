// Restricted zones on a Leaflet map: draw a polygon by clicking its vertices (or by adding the map
// centre, for keyboard use), edit one by dragging its vertices or editing its GeoJSON, delete.
// Works without tiles: the zones, a scale and the centre's coordinates still draw.
import * as L from "../vendor/leaflet-1.9.4/leaflet-src.esm.js";
import { api } from "./api.js";
import { alertError, clearNotices, confirmDialog, describe, field, h, pageHeading, replace, say, showFieldErrors, time } from "./ui.js";

const ZONE_STYLE = { color: "#b00020", weight: 2, fillColor: "#b00020", fillOpacity: 0.18 };
const SELECTED_STYLE = { color: "#5a0010", weight: 4, fillColor: "#b00020", fillOpacity: 0.3 };
const DRAFT_STYLE = { color: "#0b5cad", weight: 3, dashArray: "6 4", fillColor: "#0b5cad", fillOpacity: 0.15 };

function effectText(effect) {
  if (!effect) return "";
  return ` ${effect.removed} live user(s) are now out of the index; ${effect.republished} stay published.`;
}

function fmt(n, d = 5) {
  return Number(n).toFixed(d);
}

/** The rings of a Polygon or MultiPolygon as Leaflet lat/lng arrays, without the closing vertex. */
function ringsOf(geometry) {
  const polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  return polys.map((poly) => poly.map((ring) => ring.slice(0, -1).map(([lng, lat]) => L.latLng(lat, lng))));
}

function geometryOf(polys) {
  const close = (ring) => {
    const c = ring.map((p) => [Number(p.lng.toFixed(7)), Number(p.lat.toFixed(7))]);
    return [...c, c[0]];
  };
  const coords = polys.map((poly) => poly.map(close));
  return coords.length === 1 ? { type: "Polygon", coordinates: coords[0] } : { type: "MultiPolygon", coordinates: coords };
}

export async function render(main, { config, params }) {
  pageHeading(main, "Restricted zones");
  main.append(h("p", { class: "lede" }, "Places where nobody is indexed: a check-in inside a zone is accepted but not shown to anyone."));

  const mapEl = h("div", {
    id: "zone-map",
    class: `map${config.tile_url ? "" : " no-tiles"}`,
    "aria-label": "Map of restricted zones. Arrow keys pan, plus and minus zoom.",
    "aria-describedby": "map-centre",
  });
  const centreText = h("p", { id: "map-centre", class: "map-centre" });
  const panel = h("aside", { class: "panel", "aria-label": "Zones and drawing tools" });
  const layout = h(
    "div",
    { class: "zones-layout" },
    h(
      "div",
      { class: "map-column" },
      h("div", { class: "map-wrap" }, mapEl, h("div", { class: "crosshair", "aria-hidden": "true" })),
      centreText,
      config.tile_url
        ? null
        : h("p", { class: "hint" }, "No map tiles are configured (HEREABOUTS_ADMIN_TILE_URL is empty): the zones, the scale and the coordinates still work."),
    ),
    panel,
  );
  main.append(layout);

  // no zoom animation: Leaflet 1.9 finishes one on a timer that outlives map.remove() (leaving
  // the page mid-zoom threw), and operators lose nothing by an instant zoom
  const map = L.map(mapEl, { zoomControl: true, keyboard: true, attributionControl: Boolean(config.tile_url), zoomAnimation: false });
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { maxZoom: 19, attribution: config.tile_attribution || "" }).addTo(map);
    map.attributionControl.setPrefix(false);
  }
  L.control.scale({ imperial: false, maxWidth: 160 }).addTo(map);
  const zonesLayer = L.layerGroup().addTo(map);
  const draftLayer = L.layerGroup().addTo(map);
  const showCentre = () => {
    const c = map.getCenter();
    centreText.textContent = `Map centre ${fmt(c.lat)}, ${fmt(c.lng)} · zoom ${map.getZoom()}`;
  };
  map.on("moveend zoomend", showCentre);

  let zones = [];
  let layers = new Map(); // zone id -> Leaflet layer
  let mode = { kind: "idle" };

  async function load() {
    const page = await api("GET", "/v1/admin/restricted-zones");
    zones = page.items;
    drawZones();
  }

  function drawZones() {
    zonesLayer.clearLayers();
    layers = new Map();
    for (const z of zones) {
      if (mode.kind === "edit" && mode.zone.id === z.id) continue;
      const layer = L.geoJSON(z.geometry, { style: ZONE_STYLE });
      layer.bindTooltip(h("span", {}, z.name), { sticky: true });
      layer.on("click", () => {
        if (mode.kind === "idle") select(z.id);
      });
      layer.addTo(zonesLayer);
      layers.set(z.id, layer);
    }
  }

  function select(id) {
    for (const [zid, layer] of layers) layer.setStyle(zid === id ? SELECTED_STYLE : ZONE_STYLE);
    const item = panel.querySelector(`[data-zone="${CSS.escape(id)}"]`);
    item?.classList.add("selected");
    for (const el of panel.querySelectorAll("[data-zone]")) if (el !== item) el.classList.remove("selected");
  }

  function showZone(z) {
    const layer = layers.get(z.id);
    if (layer) map.fitBounds(layer.getBounds(), { padding: [40, 40], maxZoom: 17 });
    select(z.id);
  }

  // ----- the panel

  function goToForm() {
    const lat = h("input", { type: "number", step: "any", min: -90, max: 90, required: true });
    const lng = h("input", { type: "number", step: "any", min: -180, max: 180, required: true });
    const zoom = h("input", { type: "number", step: 1, min: 1, max: 19, value: 15, required: true });
    const form = h(
      "form",
      { class: "goto", "aria-labelledby": "goto-title" },
      h("h2", { id: "goto-title" }, "Go to a place"),
      h("div", { class: "row" }, field({ id: "goto-lat", label: "Latitude", control: lat }), field({ id: "goto-lng", label: "Longitude", control: lng }), field({ id: "goto-zoom", label: "Zoom", control: zoom })),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "secondary" }, "Go")),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const a = Number(lat.value);
      const b = Number(lng.value);
      if (lat.value === "" || lng.value === "" || !(Math.abs(a) <= 90) || !(Math.abs(b) <= 180)) {
        alertError("Latitude must be in [-90, 90] and longitude in [-180, 180].");
        return;
      }
      map.setView([a, b], Number(zoom.value) || 15);
      say(`Map moved to ${fmt(a)}, ${fmt(b)}.`);
    });
    return form;
  }

  function idlePanel() {
    mode = { kind: "idle" };
    mapEl.classList.remove("drawing");
    draftLayer.clearLayers();
    const list = h("ul", { class: "zone-list" });
    if (zones.length === 0) list.append(h("li", { class: "muted" }, "No restricted zones yet."));
    for (const z of zones) {
      list.append(
        h(
          "li",
          { "data-zone": z.id },
          h("p", { class: "zone-name" }, z.name),
          h("p", { class: "muted small" }, "Created ", time(z.created_at)),
          h(
            "div",
            { class: "actions compact" },
            h("button", { type: "button", class: "secondary", onclick: () => showZone(z), "aria-label": `Show ${z.name} on the map` }, "Show"),
            h("button", { type: "button", class: "secondary", onclick: () => editPanel(z), "aria-label": `Edit ${z.name}` }, "Edit"),
            h("button", { type: "button", class: "danger", onclick: () => remove(z), "aria-label": `Delete ${z.name}` }, "Delete"),
          ),
        ),
      );
    }
    replace(
      panel,
      h("div", { class: "actions" }, h("button", { type: "button", id: "draw-zone", onclick: () => drawPanel() }, "Draw a new zone")),
      h("h2", {}, `Zones (${zones.length})`),
      list,
      goToForm(),
    );
    drawZones();
  }

  // ----- drawing

  function drawPanel() {
    clearNotices();
    mode = { kind: "draw", points: [] };
    mapEl.classList.add("drawing");
    const name = h("input", { type: "text", maxlength: 200, required: true, autocomplete: "off" });
    const count = h("p", { class: "vertex-count", id: "vertex-count", "aria-live": "polite" });
    const save = h("button", { type: "submit", id: "save-zone" }, "Save zone");
    const undo = h("button", { type: "button", class: "secondary", id: "undo-vertex" }, "Undo last point");
    const addCentre = h("button", { type: "button", class: "secondary", id: "add-centre" }, "Add point at map centre");
    const form = h(
      "form",
      { class: "draw", "aria-labelledby": "draw-title", novalidate: true },
      h("h2", { id: "draw-title" }, "New zone"),
      h("p", {}, "Click the map at each corner of the zone, in order (or pan with the arrow keys and add the centre, marked by the cross). Three points at least."),
      field({ id: "zone-name", label: "Name", control: name }),
      count,
      h("div", { class: "actions" }, addCentre, undo),
      h("div", { class: "actions" }, save, h("button", { type: "button", class: "secondary", onclick: () => idlePanel() }, "Cancel")),
    );
    const redraw = () => {
      draftLayer.clearLayers();
      const pts = mode.points;
      if (pts.length >= 3) L.polygon(pts, { ...DRAFT_STYLE, interactive: false }).addTo(draftLayer);
      else if (pts.length === 2) L.polyline(pts, { ...DRAFT_STYLE, interactive: false }).addTo(draftLayer);
      pts.forEach((p, i) =>
        L.circleMarker(p, { radius: 6, color: "#0b5cad", weight: 2, fillColor: "#fff", fillOpacity: 1, bubblingMouseEvents: false })
          .bindTooltip(`Point ${i + 1}`)
          .addTo(draftLayer),
      );
      count.textContent = `${pts.length} point${pts.length === 1 ? "" : "s"}${pts.length < 3 ? ` — ${3 - pts.length} more needed` : ""}.`;
      undo.disabled = pts.length === 0;
    };
    mode.add = (latlng) => {
      mode.points.push(latlng);
      redraw();
    };
    addCentre.addEventListener("click", () => mode.add(map.getCenter()));
    undo.addEventListener("click", () => {
      mode.points.pop();
      redraw();
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearNotices();
      showFieldErrors(form, "zone-", null);
      if (!name.value.trim()) {
        showFieldErrors(form, "zone-", { problem: { errors: [{ field: "name", message: "a name is needed" }] } });
        name.focus();
        return;
      }
      if (mode.points.length < 3) {
        alertError("A zone needs at least three points.");
        return;
      }
      save.disabled = true;
      try {
        const z = await api("POST", "/v1/admin/restricted-zones", { name: name.value.trim(), geometry: geometryOf([[mode.points]]) });
        say(`Zone \u201c${z.name}\u201d saved.${effectText(z.effect)}`);
        await load();
        idlePanel();
        select(z.id);
      } catch (e) {
        showFieldErrors(form, "zone-", e);
        alertError(e);
      } finally {
        save.disabled = false;
      }
    });
    replace(panel, form, goToForm());
    redraw();
    name.focus();
  }

  map.on("click", (e) => {
    if (mode.kind === "draw") mode.add(e.latlng);
  });

  // ----- editing

  function editPanel(z) {
    clearNotices();
    mode = { kind: "edit", zone: z, polys: ringsOf(z.geometry) };
    drawZones();
    const name = h("input", { type: "text", maxlength: 200, required: true, value: z.name, autocomplete: "off" });
    const geo = h("textarea", { rows: 8, spellcheck: "false" });
    const save = h("button", { type: "submit" }, "Save changes");
    const form = h(
      "form",
      { class: "edit", "aria-labelledby": "edit-title", novalidate: true },
      h("h2", { id: "edit-title" }, `Edit \u201c${z.name}\u201d`),
      h("p", {}, "Drag the square handles on the map, or edit the coordinates below ([longitude, latitude] pairs)."),
      field({ id: "edit-name", label: "Name", control: name }),
      field({ id: "edit-geometry", label: "Geometry (GeoJSON)", control: geo }),
      h("div", { class: "actions" }, save, h("button", { type: "button", class: "secondary", onclick: () => idlePanel() }, "Cancel")),
    );
    let shape;
    const redraw = (fromText = false) => {
      draftLayer.clearLayers();
      shape = L.polygon(mode.polys, { ...DRAFT_STYLE, interactive: false }).addTo(draftLayer);
      mode.polys.forEach((poly, pi) =>
        poly.forEach((ring, ri) =>
          ring.forEach((p, vi) => {
            const m = L.marker(p, {
              draggable: true,
              keyboard: false,
              icon: L.divIcon({ className: "vertex-handle", iconSize: [14, 14] }),
              title: `Vertex ${vi + 1}`,
            });
            m.on("drag", (e) => {
              mode.polys[pi][ri][vi] = e.target.getLatLng();
              shape.setLatLngs(mode.polys);
            });
            m.on("dragend", () => {
              geo.value = JSON.stringify(geometryOf(mode.polys));
            });
            m.addTo(draftLayer);
          }),
        ),
      );
      if (!fromText) geo.value = JSON.stringify(geometryOf(mode.polys));
    };
    geo.addEventListener("change", () => {
      try {
        const g = JSON.parse(geo.value);
        mode.polys = ringsOf(g);
        redraw(true);
        showFieldErrors(form, "edit-", null);
      } catch {
        showFieldErrors(form, "edit-", { problem: { errors: [{ field: "geometry", message: "not a GeoJSON Polygon or MultiPolygon" }] } });
      }
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearNotices();
      let geometry;
      try {
        geometry = JSON.parse(geo.value);
      } catch {
        showFieldErrors(form, "edit-", { problem: { errors: [{ field: "geometry", message: "not valid JSON" }] } });
        return;
      }
      save.disabled = true;
      try {
        const updated = await api("PUT", `/v1/admin/restricted-zones/${z.id}`, { name: name.value.trim(), geometry });
        say(`Zone \u201c${updated.name}\u201d updated.${effectText(updated.effect)}`);
        mode = { kind: "idle" };
        await load();
        idlePanel();
        select(updated.id);
      } catch (e) {
        showFieldErrors(form, "edit-", e);
        alertError(e);
      } finally {
        save.disabled = false;
      }
    });
    replace(panel, form);
    redraw();
    map.fitBounds(L.polygon(mode.polys).getBounds(), { padding: [40, 40], maxZoom: 17 });
    name.focus();
  }

  async function remove(z) {
    const ok = await confirmDialog({
      title: `Delete the zone \u201c${z.name}\u201d?`,
      body: "Live users inside it are indexed again at once and become visible to their connections.",
      confirmLabel: "Delete zone",
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", `/v1/admin/restricted-zones/${z.id}`);
      say(`Zone \u201c${z.name}\u201d deleted.`);
      await load();
      idlePanel();
    } catch (e) {
      alertError(e);
    }
  }

  await load();
  idlePanel();
  const lat = Number(params.get("lat"));
  const lng = Number(params.get("lng"));
  if (params.has("lat") && params.has("lng") && Number.isFinite(lat) && Number.isFinite(lng)) {
    map.setView([lat, lng], Number(params.get("z")) || 15);
  } else if (zones.length) {
    map.fitBounds(L.featureGroup([...layers.values()]).getBounds(), { padding: [40, 40], maxZoom: 15 });
  } else {
    map.setView([30, 0], 2);
  }
  showCentre();
  // the container got its size from CSS after Leaflet measured it
  let removed = false;
  setTimeout(() => removed || map.invalidateSize(), 0);
  return () => {
    removed = true;
    map.stop();
    map.remove();
  };
}
