// The star-ID panel: a frame's centroids (JSON) in; the attitude and the identified stars on a
// small sky chart (the frame as the camera saw it, stars labelled with their HIP numbers) out.
import { request } from "./api.js";
import { formFields, jsonExample, multipartPath } from "./openapi.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Frame positions of the stars, in the frame's pixels (x right, y down), with their HIP numbers.
function framePoints(frame, result) {
  const hips = new Map((result.stars || []).map((s, i) => [s.index ?? i, s.hip]));
  if (Array.isArray(result.centroids) && result.detection) {
    // A frame the service detected the stars of: its centroids.
    const points = result.centroids.map((c) => ({ x: c.x, y: c.y, mag: c.mag, hip: c.hip }));
    return { points, width: result.detection.width, height: result.detection.height };
  }
  const named = (points) => points.map((p, i) => ({ ...p, hip: hips.get(i) }));
  if (Array.isArray(frame.stars)) return { points: named(frame.stars), width: frame.image_width, height: frame.image_height };
  if (Array.isArray(frame.vectors)) {
    // Unit vectors (z boresight): gnomonic projection, the frame fitted around them.
    const points = frame.vectors.map(([x, y, z], i) => ({ x: x / z, y: y / z, mag: frame.mags ? frame.mags[i] : null }));
    const extent = Math.max(...points.map((p) => Math.max(Math.abs(p.x), Math.abs(p.y))), 1e-6) * 1.1;
    return { points: named(points.map((p) => ({ ...p, x: p.x + extent, y: p.y + extent }))), width: 2 * extent, height: 2 * extent };
  }
  return { points: [], width: 1, height: 1 };
}

export function drawSkyChart(chart, frame, result, imageUrl = null) {
  chart.replaceChildren();
  const { points, width, height } = framePoints(frame, result);
  const side = 280;
  const scale = side / Math.max(width || 1, height || 1);
  const ox = 10 + (side - (width || 1) * scale) / 2;
  const oy = 10 + (side - (height || 1) * scale) / 2;
  const box = { x: ox, y: oy, width: (width || 1) * scale, height: (height || 1) * scale };
  chart.append(svg("rect", { ...box, class: "frame" }));
  if (imageUrl) {
    // The uploaded frame under its detections (a format the browser cannot show is left out).
    const picture = svg("image", { ...box, href: imageUrl, opacity: 0.8, preserveAspectRatio: "none" });
    picture.addEventListener("error", () => picture.remove());
    chart.append(picture);
  }
  points.forEach((p) => {
    const hip = p.hip;
    const radius = p.mag == null ? 2.5 : Math.max(1.5, Math.min(6, 6 - 0.8 * (p.mag - 1)));
    const cx = ox + p.x * scale;
    const cy = oy + p.y * scale;
    chart.append(svg("circle", { cx, cy, r: radius, class: hip ? "star identified" : "star" }));
    if (hip) chart.append(svg("text", { x: cx + radius + 2, y: cy + 3, class: "hip" }, `HIP ${hip}`));
  });
  chart.removeAttribute("hidden");
}

function describe(result) {
  const lines = [`status: ${result.status}${result.reason ? ` (${result.reason})` : ""}`];
  const a = result.attitude;
  if (a) {
    lines.push(`boresight RA ${a.ra_deg.toFixed(3)}°, Dec ${a.dec_deg.toFixed(3)}°, roll ${a.roll_deg.toFixed(2)}°`);
    lines.push(`quaternion (w, x, y, z) camera → ICRS: ${a.quaternion_wxyz.map((q) => q.toFixed(5)).join(", ")}`);
  }
  const named = (result.stars || []).filter((s) => s.hip);
  if (result.detection) lines.push(`${(result.centroids || []).length} stars detected in the ${result.detection.width} × ${result.detection.height} frame`);
  lines.push(`${named.length} of ${(result.stars || []).length} stars identified${result.matched != null ? `, ${result.matched} matched` : ""}${result.runtime_ms != null ? ` in ${result.runtime_ms.toFixed(0)} ms` : ""}`);
  const listed = named.slice(0, 10).map((s) => `#${s.index} HIP ${s.hip}`).join(" · ");
  if (named.length) lines.push(named.length > 10 ? `${listed} · … and ${named.length - 10} more (on the chart)` : listed);
  return lines;
}

export function createStarIdPanel({ spec, onKeyRejected }) {
  const form = $("starid-form");
  const text = $("starid-json");
  const output = $("starid-result");
  const chart = $("sky");
  const example = jsonExample(spec, "/star-id");
  if (example) text.value = JSON.stringify(example, null, 1);
  $("starid-example").addEventListener("click", () => {
    text.value = example ? JSON.stringify(example, null, 1) : text.value;
  });
  const imagePath = multipartPath(spec, "/star-id");
  const imageField = imagePath ? (formFields(spec, imagePath).find((f) => f.includes("image")) || "image") : null;
  $("starid-image-row").hidden = !imagePath;

  function show(kind, lines) {
    output.className = `outcome ${kind}`;
    output.replaceChildren(...lines.map((line) => Object.assign(document.createElement("div"), { textContent: line })));
  }

  let imageUrl = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    chart.setAttribute("hidden", "");
    const image = imagePath && $("starid-image").files[0];
    let frame = {};
    let options;
    if (image) {
      const fov = $("starid-fov").value.trim();
      if (!fov) {
        show("refused", ["give the frame's field of view (degrees) with the image"]);
        return;
      }
      const data = new FormData();
      data.append(imageField, image, image.name);
      data.append("fov_deg", fov);
      options = { method: "POST", body: data };
    } else {
      try {
        frame = JSON.parse(text.value);
      } catch (error) {
        show("refused", [`the centroids are not JSON: ${error.message}`]);
        return;
      }
      options = { method: "POST", json: frame };
    }
    show("running", ["identifying …"]);
    try {
      const result = (await request(image ? imagePath : "/star-id", options)).body;
      show(result.status === "identified" ? "localized" : "not-localized", describe(result));
      if (imageUrl) URL.revokeObjectURL(imageUrl);
      imageUrl = image ? URL.createObjectURL(image) : null;
      drawSkyChart(chart, frame, result, imageUrl);
    } catch (error) {
      if (error.status === 401) onKeyRejected(error.message);
      show("refused", [`refused (${error.status || "no answer"}): ${error.message}`]);
    }
  });
}
