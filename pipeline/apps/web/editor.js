// Editor page: a test map or an uploaded label PNG on a canvas, a dragged box, a target label;
// the server runs pipeline.apps.editing (the same code as the `edit` command).
"use strict";
const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
let source = null;    // {map: index} or {upload: dataURL}
let image = null;     // the input map as an Image
let box = null;       // [x1, y1, x2, y2] in map pixels, half-open
let drag = null;

function fail(message) { $("error").textContent = message; $("error").classList.remove("hidden"); }
function clearError() { $("error").classList.add("hidden"); }
async function call(method, url, body) {
  const headers = body ? {"Content-Type": "application/json"} : {};
  const response = await fetch(url, {method, headers,
                                     body: body ? JSON.stringify(body) : undefined});
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}
function draw() {
  if (!image) return;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(image, 0, 0);
  if (box) {
    ctx.strokeStyle = "#ffff00";
    ctx.lineWidth = 1;
    ctx.strokeRect(box[0] + 0.5, box[1] + 0.5, box[2] - box[0] - 1, box[3] - box[1] - 1);
  }
  $("box-text").textContent = box ? `Box ${box.join(", ")} (x1, y1, x2, y2)`
                                   : "Drag a box on the map.";
  $("run").disabled = !box;
}
function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("could not load the map"));
    img.src = url;
  });
}
async function useMap(url, newSource) {
  image = await loadImage(url);
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  source = newSource;
  box = null;
  $("results").classList.add("hidden");
  draw();
  document.body.dataset.mapReady = "1";
}
function mapPixel(event) {
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor((event.clientX - rect.left) * canvas.width / rect.width);
  const y = Math.floor((event.clientY - rect.top) * canvas.height / rect.height);
  return [Math.max(0, Math.min(canvas.width - 1, x)), Math.max(0, Math.min(canvas.height - 1, y))];
}
canvas.addEventListener("mousedown", (event) => { if (image) drag = mapPixel(event); });
window.addEventListener("mousemove", (event) => {
  if (!drag) return;
  const [x, y] = mapPixel(event);
  box = [Math.min(drag[0], x), Math.min(drag[1], y),
         Math.max(drag[0], x) + 1, Math.max(drag[1], y) + 1];
  draw();
});
window.addEventListener("mouseup", () => { drag = null; });

async function runEdit() {
  clearError();
  $("run").disabled = true;
  try {
    const result = await call("POST", "/api/editor/edit",
                              {...source, box, label: Number($("label-select").value)});
    $("img-incomplete").src = result.incomplete;
    $("img-edited").src = result.edited;
    if (result.photo) $("img-photo").src = result.photo;
    $("img-photo").parentElement.classList.toggle("hidden", !result.photo);
    $("result-text").textContent = `${result.changed_pixels} pixels changed inside the box.`;
    $("results").classList.remove("hidden");
    document.body.dataset.edited = String(Number(document.body.dataset.edited || 0) + 1);
  } catch (err) { fail(err.message); }
  $("run").disabled = !box;
}
$("run").addEventListener("click", runEdit);
$("map-select").addEventListener("change", (event) => {
  clearError();
  const index = Number(event.target.value);
  useMap(`/api/editor/maps/${index}`, {map: index}).catch((err) => fail(err.message));
});
$("upload").addEventListener("change", (event) => {
  clearError();
  const file = event.target.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = async () => {
    try {
      const preview = await call("POST", "/api/editor/preview", {upload: reader.result});
      await useMap(preview.image, {upload: reader.result});
    } catch (err) { fail(err.message); }
  };
  reader.readAsDataURL(file);
});

async function init() {
  const info = await call("GET", "/api/editor/info");
  $("about").textContent =
    `Model ${info.row} (${info.dataset}, runs at ${info.size[0]}x${info.size[1]}).`;
  const select = $("label-select");
  const first = info.edit_classes.length ? info.edit_classes : [];
  const order = [...first, ...info.labels.map((l) => l.id).filter((id) => !first.includes(id))];
  for (const id of order) {
    const label = info.labels[id];
    const option = document.createElement("option");
    option.value = String(id);
    option.textContent = `${label.name} (${id})` +
                         (first.includes(id) ? "" : " — not an edit class");
    option.style.background = `rgb(${label.colour.join(",")})`;
    select.appendChild(option);
  }
  const maps = $("map-select");
  for (const m of info.maps) {
    const option = document.createElement("option");
    option.value = String(m.index);
    option.textContent = `${m.name} (${m.width}x${m.height})`;
    maps.appendChild(option);
  }
  if (info.maps.length) await useMap("/api/editor/maps/0", {map: 0});
}
init().catch((err) => fail(err.message));
