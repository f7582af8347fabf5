// The upload panel: a photo and its capture time in; the search region, the ISS position, a live
// progress bar (candidate k of n), then the footprint drawn, or the reason it was not localized.
import L from "leaflet";
import { getJSON, request } from "./api.js";
import { showMessage } from "./messages.js";
import { formFields } from "./openapi.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 400;

export function createUploadPanel({ map, spec, onLocalized, onKeyRejected }) {
  const form = $("upload-form");
  const fileInput = $("upload-file");
  const drop = $("drop");
  const status = $("upload-status");
  const progress = $("upload-progress");
  const label = $("upload-progress-label");
  const outcome = $("upload-outcome");
  const fields = new Set(formFields(spec, "/localize"));
  const focalField = [...fields].find((name) => name.includes("focal"));
  const focal = $("upload-focal");
  if (!focalField) {
    focal.disabled = true;
    focal.placeholder = "not taken by this service";
    focal.title = "this service's POST /localize has no focal-length field";
  }
  const context = L.layerGroup().addTo(map);
  map.createPane("iss").style.zIndex = 470; // above the photo laid on the map
  let droppedFile = null;

  fileInput.addEventListener("change", () => {
    droppedFile = null;
    $("upload-file-name").textContent = fileInput.files[0] ? fileInput.files[0].name : "";
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    droppedFile = event.dataTransfer.files[0] || null;
    $("upload-file-name").textContent = droppedFile ? droppedFile.name : "";
  });

  function setState(state, text = "") {
    status.dataset.state = state;
    outcome.className = `outcome ${state}`;
    outcome.textContent = text;
  }

  function drawSearch(search, candidates) {
    context.clearLayers();
    if (!search) return;
    if (search.region) {
      L.geoJSON(search.region, { style: { color: "#60a5fa", weight: 1.5, fillOpacity: 0.06, dashArray: "6 4", className: "search-region" }, interactive: false })
        .addTo(context);
    }
    for (const candidate of candidates || []) {
      if (candidate.footprint) {
        L.geoJSON(candidate.footprint, { style: { color: "#94a3b8", weight: 1, fillOpacity: 0, className: "candidate-tile" }, interactive: false }).addTo(context);
      }
    }
    const iss = search.iss_position;
    if (iss && iss.lat != null) {
      L.circleMarker([iss.lat, iss.lon], { radius: 7, color: "#fff", weight: 2, fillColor: "#ef4444", fillOpacity: 1, className: "iss-position", pane: "iss" })
        .bindTooltip(`ISS at capture time (${iss.source || "TLE"}${iss.alt_km ? `, ${Math.round(iss.alt_km)} km` : ""})`)
        .addTo(context);
    }
  }

  async function follow(jobId) {
    progress.hidden = false;
    progress.value = 0;
    for (;;) {
      const job = await getJSON(`/jobs/${encodeURIComponent(jobId)}`);
      progress.value = job.progress || 0;
      const detail = job.detail || {};
      label.textContent =
        job.status === "queued" ? "queued" :
        detail.candidates ? `refining: candidate ${detail.candidate} of ${detail.candidates}` :
        job.status;
      if (job.status === "finished" || job.status === "failed") return job;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  async function submit(event) {
    event.preventDefault();
    const file = droppedFile || fileInput.files[0];
    if (!file) {
      setState("refused", "choose or drop a photo first");
      return;
    }
    const data = new FormData();
    data.append("image", file, file.name);
    const value = (id) => $(id).value.trim();
    if (value("upload-time")) data.append("timestamp", value("upload-time"));
    if (value("upload-nadir-lat") || value("upload-nadir-lon")) {
      data.append("nadir_lat", value("upload-nadir-lat"));
      data.append("nadir_lon", value("upload-nadir-lon"));
    }
    if (focalField && value("upload-focal")) data.append(focalField, value("upload-focal"));
    if (value("upload-photo-id")) data.append("photo_id", value("upload-photo-id"));

    $("upload-submit").disabled = true;
    progress.hidden = true;
    label.textContent = "";
    context.clearLayers();
    setState("sending", `sending ${file.name} …`);
    try {
      let answer;
      try {
        answer = (await request("/localize", { method: "POST", body: data })).body;
      } catch (error) {
        if (error.status === 401) onKeyRejected(error.message);
        setState("refused", `refused (${error.status || "no answer"}): ${error.message}`);
        return;
      }
      drawSearch(answer.search, answer.candidates);
      const search = answer.search;
      const where = search ? (search.mode === "worldwide" ? `worldwide (${search.reason})` : `ISS visibility region (${search.reason})`) : "as before";
      setState("running", `${answer.duplicate ? "already submitted; following its job. " : ""}photo ${answer.photo_id}: searching ${where}; ${answer.candidates.length} candidate tiles`);
      const job = await follow(answer.job_id);
      const result = job.result || {};
      if (job.status === "finished" && result.localized) {
        setState("localized", `localized ${answer.photo_id}: ${Math.round(result.area_km2).toLocaleString("en")} km², confidence ${result.confidence.toFixed(2)}, candidate #${result.candidate ? result.candidate.rank : "?"}`);
        await onLocalized(answer.photo_id);
      } else {
        setState("not-localized", `not localized: ${job.error || result.reason || "no reason given"}`);
      }
    } catch (error) {
      setState("refused", error.message);
      showMessage(error.message);
    } finally {
      $("upload-submit").disabled = false;
    }
  }

  form.addEventListener("submit", submit);
}

