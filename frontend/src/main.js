// The astroloc web app: map + photo page, upload panel, star-ID panel, API key.
import "leaflet/dist/leaflet.css";
import "./style.css";
import { apiKey, getJSON, request, setApiKey } from "./api.js";
import { createMap } from "./map.js";
import { catchUnhandled, showMessage } from "./messages.js";
import { createPhotoView } from "./photo.js";
import { createStarIdPanel } from "./starid.js";
import { createUploadPanel } from "./upload.js";

const $ = (id) => document.getElementById(id);

function selectTab(name) {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== `tab-${name}`;
}

function setKeyState(text, kind) {
  const badge = $("key-state");
  badge.textContent = text;
  badge.className = `badge ${kind}`;
  badge.dataset.state = kind;
}

// The key is asked once and kept for the browser session (sessionStorage); it is checked when
// entered, so that a wrong key is told at once, not at the first upload.
function setUpKey(required, readsNeedKey, onAccepted) {
  const form = $("key-form");
  form.hidden = !required;
  if (!required) return;
  if (apiKey()) setKeyState("key set", "ok");
  else if (readsNeedKey) {
    setKeyState("this service needs an API key", "warning");
    showMessage("this service shows its photos only with an API key: enter it above", "warning");
  } else setKeyState("this service needs an API key for uploads", "warning");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    try {
      await request("/app/key", { headers: { "X-API-Key": key } });
      setApiKey(key);
      $("key-input").value = "";
      setKeyState("key accepted", "ok");
      await onAccepted();
    } catch (error) {
      if (error.status === 401) {
        setApiKey("");
        setKeyState("wrong API key", "error");
        showMessage("wrong API key: the service refused it");
      } else {
        showMessage(`API key: ${error.message}`);
      }
    }
  });
}

function keyRejected(message) {
  setKeyState(apiKey() ? "wrong API key" : "API key needed", "error");
  setApiKey("");
  showMessage(message);
}

async function start() {
  catchUnhandled();
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => selectTab(button.dataset.tab));
  }

  let config = { api_keys_required: false };
  try {
    config = await getJSON("/app/config.json");
  } catch (error) {
    showMessage(`the service does not answer: ${error.message}`);
  }
  let reloadAfterKey = async () => {};
  setUpKey(config.api_keys_required, config.read_keys_required, () => reloadAfterKey());
  getJSON("/health")
    .then((health) => {
      const badge = $("health");
      badge.textContent = `${health.status} · v${health.version} · jobs ${health.queue.mode || ""}`;
      badge.className = `badge ${health.status === "ok" ? "ok" : "warning"}`;
    })
    .catch((error) => showMessage(`health: ${error.message}`));
  let spec = {};
  try {
    spec = await getJSON("/openapi.json");
  } catch (error) {
    showMessage(`API description: ${error.message}`, "warning");
  }

  let photoView;
  const { map, reloadFootprints } = await createMap($("map"), {
    onFootprintClick: (photoId) => {
      selectTab("photo");
      photoView.show(photoId, { fit: false });
    },
  });
  photoView = createPhotoView(map);
  reloadAfterKey = reloadFootprints;
  createUploadPanel({
    map,
    spec,
    onKeyRejected: keyRejected,
    onLocalized: async (photoId) => {
      await reloadFootprints();
      await photoView.show(photoId);
    },
  });
  createStarIdPanel({ spec, onKeyRejected: keyRejected });

  // Deep links: #photo=ID opens a photo's page; #bbox=W,S,E,N shows a region; #tab=upload|starid.
  async function follow() {
    const hash = new URLSearchParams(location.hash.slice(1));
    if (hash.get("photo")) {
      selectTab("photo");
      await photoView.show(hash.get("photo"));
    } else if (hash.get("bbox")) {
      const [west, south, east, north] = hash.get("bbox").split(",").map(Number);
      if ([west, south, east, north].every(Number.isFinite)) map.fitBounds([[south, west], [north, east]]);
      else showMessage(`bad #bbox=${hash.get("bbox")}: expected W,S,E,N in degrees`, "warning");
    }
    if (hash.get("tab")) selectTab(hash.get("tab"));
  }
  window.addEventListener("hashchange", () => follow());
  await follow();
  document.body.dataset.ready = "true";
}

start().catch((error) => showMessage(`the page could not start: ${error.message}`));
