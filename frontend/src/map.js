// The map: the service's own tiles as basemap, the stored footprints in view (by bbox, as the map
// moves), coloured by method and confidence.
import L from "leaflet";
import { getJSON } from "./api.js";
import { showMessage } from "./messages.js";

const FOOTPRINT_LIMIT = 2000;

// Refinement footprints go from orange (confidence 0.5: just accepted) to green (1.0); the
// catalogue's reference footprints are cyan outlines; any other method is violet.
export function footprintColour(method, confidence) {
  if (method === "catalogue") return "#22d3ee";
  const c = Math.max(0, Math.min(1, ((confidence ?? 0.5) - 0.5) / 0.5));
  if (method && method.startsWith("earthmatch")) return `hsl(${Math.round(25 + 110 * c)}, 90%, 52%)`;
  return `hsl(275, ${Math.round(45 + 45 * c)}%, 65%)`;
}

export function footprintStyle(properties, { selected = false } = {}) {
  const colour = footprintColour(properties.method, properties.confidence);
  const reference = properties.method === "catalogue";
  return {
    color: selected ? "#ffffff" : colour,
    weight: selected ? 3 : 1.5,
    fillColor: colour,
    fillOpacity: reference ? 0 : selected ? 0.05 : 0.25,
    dashArray: reference ? "4 4" : null,
    className: `footprint method-${(properties.method || "unknown").split("-")[0]}`,
  };
}

// W,S,E,N for GET /photos?bbox=: longitudes wrapped into [-180, 180] (W > E crosses 180).
export function bboxParam(bounds) {
  let west = bounds.getWest();
  let east = bounds.getEast();
  if (east - west >= 360) {
    west = -180;
    east = 180;
  } else {
    const wrap = (lon) => ((((lon + 180) % 360) + 360) % 360) - 180;
    west = wrap(west);
    east = wrap(east);
    if (east === -180) east = 180;
  }
  const south = Math.max(-90, bounds.getSouth());
  const north = Math.min(90, bounds.getNorth());
  return [west, south, east, north].map((v) => v.toFixed(4)).join(",");
}

export async function createMap(element, { onFootprintClick }) {
  const map = L.map(element, { worldCopyJump: true, minZoom: 1, maxZoom: 10, zoomSnap: 0.5 });
  map.attributionControl.setPrefix(false);
  map.setView([20, 0], 2);

  let info = { zooms: [], url: "/tiles/{z}/{x}/{y}.jpg" };
  try {
    info = await getJSON("/tiles.json");
  } catch (error) {
    showMessage(`basemap: ${error.message}`);
  }
  if (info.zooms.length) {
    L.tileLayer(info.url, {
      minNativeZoom: Math.min(...info.zooms),
      maxNativeZoom: Math.max(...info.zooms),
      tileSize: info.tile_size || 256,
      attribution: "tiles: the service's tile database",
    }).addTo(map);
  } else {
    showMessage(`no basemap: ${info.reason || "the tile database is empty"}`, "warning");
  }

  const footprints = L.geoJSON(null, {
    style: (feature) => footprintStyle(feature.properties),
    onEachFeature: (feature, layer) => {
      const p = feature.properties;
      layer.bindTooltip(`${p.photo_id}${p.confidence != null ? ` · confidence ${p.confidence.toFixed(2)}` : ""}`, { sticky: true });
      layer.on("click", () => onFootprintClick(p.photo_id));
    },
  }).addTo(map);

  let pending = null;
  async function reload() {
    if (pending) pending.abort();
    pending = new AbortController();
    try {
      const collection = await getJSON(`/photos?bbox=${bboxParam(map.getBounds())}&limit=${FOOTPRINT_LIMIT}`, { signal: pending.signal });
      footprints.clearLayers();
      footprints.addData(collection);
      const count = collection.features.length;
      const counter = document.getElementById("footprint-count");
      counter.textContent = `${count}${count >= FOOTPRINT_LIMIT ? "+" : ""} footprints in view`;
      counter.dataset.count = String(count);
    } catch (error) {
      if (error.name !== "AbortError") showMessage(`footprints: ${error.message}`);
    }
  }
  map.on("moveend", reload);
  addLegend(map);
  await reload();
  return { map, reloadFootprints: reload };
}

function addLegend(map) {
  const legend = L.control({ position: "bottomleft" });
  legend.onAdd = () => {
    const div = L.DomUtil.create("div", "legend");
    const swatch = (colour, label, dashed = false) =>
      `<div><i style="border-color:${colour};background:${dashed ? "transparent" : colour}${dashed ? ";border-style:dashed" : ""}"></i>${label}</div>`;
    div.innerHTML =
      "<strong>footprints</strong>" +
      swatch(footprintColour("earthmatch", 1.0), "EarthMatch, confidence 1.0") +
      swatch(footprintColour("earthmatch", 0.75), "EarthMatch, 0.75") +
      swatch(footprintColour("earthmatch", 0.5), "EarthMatch, 0.5") +
      swatch(footprintColour("catalogue"), "catalogue reference", true) +
      swatch(footprintColour("other", 0.75), "other method");
    return div;
  };
  legend.addTo(map);
}
