// A photo's page: the photo warped onto the map (server-rendered overlay), its details and links.
import L from "leaflet";
import { apiKey, fetchObjectUrl, getJSON } from "./api.js";
import { footprintStyle } from "./map.js";
import { showMessage } from "./messages.js";

const $ = (id) => document.getElementById(id);

function formatValue(key, value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number") {
    if (key.endsWith("_km2")) return `${Math.round(value).toLocaleString("en")} km²`;
    if (key.endsWith("_km")) return `${value.toFixed(1)} km`;
    if (key.endsWith("_m")) return `${value.toFixed(0)} m`;
    return Number.isInteger(value) ? String(value) : value.toFixed(3);
  }
  if (Array.isArray(value)) return value.map((v) => formatValue(key, v)).join(", ");
  if (typeof value === "object") return Object.entries(value).map(([k, v]) => `${k} ${formatValue(k, v)}`).join(", ");
  return String(value);
}

function row(label, value) {
  const tr = document.createElement("tr");
  const th = document.createElement("th");
  th.textContent = label;
  const td = document.createElement("td");
  td.textContent = value;
  tr.append(th, td);
  return tr;
}

export function createPhotoView(map) {
  // The selected photo lies above every footprint's fill, its outline above the photo.
  map.createPane("photo").style.zIndex = 450;
  map.createPane("selected").style.zIndex = 460;
  let overlay = null;
  let outline = null;
  const opacity = $("overlay-opacity");
  opacity.addEventListener("input", () => overlay && overlay.setOpacity(Number(opacity.value)));

  let overlayUrl = null;
  function clear() {
    if (overlay) overlay.remove();
    if (outline) outline.remove();
    if (overlayUrl) URL.revokeObjectURL(overlayUrl);
    overlay = outline = overlayUrl = null;
  }

  async function show(photoId, { fit = true } = {}) {
    const id = encodeURIComponent(photoId);
    let photo;
    let placement = null;
    let imageUrl = null;
    try {
      photo = await getJSON(`/photos/${id}`);
      if (photo.footprint) {
        placement = await getJSON(`/photos/${id}/overlay.json`);
        // Through fetch, so that the API key goes with it when the service guards its photos.
        imageUrl = await fetchObjectUrl(placement.image_url);
      }
    } catch (error) {
      showMessage(`photo ${photoId}: ${error.message}`);
      return;
    }
    clear();
    overlayUrl = imageUrl;
    const details = $("photo-details");
    $("photo-empty").hidden = true;
    details.hidden = false;
    details.dataset.photoId = photo.photo_id;
    $("photo-title").textContent = photo.photo_id;

    const table = $("photo-table");
    table.replaceChildren();
    const props = photo.footprint ? photo.footprint.properties : {};
    table.append(row("status", photo.status));
    table.append(row("captured", photo.captured_at ? new Date(photo.captured_at).toISOString().replace(".000", "") : "unknown"));
    if (photo.nadir) table.append(row("nadir", `${photo.nadir.lat.toFixed(3)}, ${photo.nadir.lon.toFixed(3)}`));
    if (placement) table.append(row("area", formatValue("area_km2", placement.area_km2)));
    const corners = placement && placement.corner_uncertainty_km;
    if (Array.isArray(corners) && corners.length === 4) {
      // Photo corners top-left, top-right, bottom-right, bottom-left (90% of answers lie within).
      const names = ["TL", "TR", "BR", "BL"];
      table.append(row("corner uncertainty", corners.map((km, i) => `${names[i]} ${km == null ? "?" : km.toFixed(1)}`).join(", ") + " km"));
    }
    if (props.confidence != null) table.append(row("confidence", props.confidence.toFixed(3)));
    if (props.inliers != null) table.append(row("inliers", String(props.inliers)));
    if (props.method) table.append(row("method", props.method));
    // Corner uncertainty, and whatever else a newer service reports about the footprint.
    const shown = new Set(["photo_id", "captured_at", "method", "confidence", "inliers", "model_version", "created_at"]);
    for (const [key, value] of Object.entries(props)) {
      if (shown.has(key)) continue;
      const text = formatValue(key, value);
      if (text !== null) table.append(row(key.replaceAll("_", " "), text));
    }
    if (props.model_version) table.append(row("model", props.model_version.replace(/^(.*:[0-9a-f]{12})[0-9a-f]+$/, "$1")));
    if (photo.reference_footprint) table.append(row("reference", "catalogue footprint (dashed)"));

    const links = $("photo-links");
    links.replaceChildren();
    const link = (href, text) => {
      const a = document.createElement("a");
      a.href = href;
      a.target = "_blank";
      a.textContent = text;
      // With a key, the document is fetched with it and opened as a blob: a new tab sends no header.
      a.addEventListener("click", async (event) => {
        if (!apiKey()) return;
        event.preventDefault();
        try {
          window.open(await fetchObjectUrl(href), "_blank");
        } catch (error) {
          showMessage(`${text}: ${error.message}`);
        }
      });
      links.append(a, " ");
    };
    link(`/photos/${id}`, "JSON");
    if (photo.footprint) {
      link(`/photos/${id}/footprint.geojson`, "GeoJSON");
      link(`/photos/${id}/footprint.png`, "PNG");
    }
    if (placement && placement.job_id) link(`/jobs/${encodeURIComponent(placement.job_id)}`, "job");

    if (placement) {
      const b = placement.bounds;
      const bounds = L.latLngBounds([b.south, b.west], [b.north, b.east]);
      overlay = L.imageOverlay(imageUrl, bounds, { opacity: Number(opacity.value), className: "photo-overlay", pane: "photo" }).addTo(map);
      overlay.once("error", () => showMessage(`photo ${photoId}: its overlay image could not be drawn`));
      outline = L.geoJSON(photo.footprint, { style: (f) => footprintStyle(f.properties, { selected: true }), interactive: false, pane: "selected" }).addTo(map);
      if (fit) map.fitBounds(bounds.pad(1.5), { maxZoom: 7 });
    } else {
      showMessage(`photo ${photoId} has no footprint yet (status ${photo.status})`, "warning");
    }
    history.replaceState(null, "", `#photo=${id}`);
  }

  return { show, clear };
}
