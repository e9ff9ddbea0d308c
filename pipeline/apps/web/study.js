// HuEv study page: join (cookie), then one trial at a time; a vote names the trial and A / B.
"use strict";
let current = null;   // {trial, shownAt}
let busy = false;

const $ = (id) => document.getElementById(id);
function show(section) {
  for (const id of ["welcome", "trial", "finished"]) {
    $(id).classList.toggle("hidden", id !== section);
  }
}
function fail(message) {
  $("error").textContent = message;
  $("error").classList.remove("hidden");
}
async function call(method, url, body) {
  const headers = body ? {"Content-Type": "application/json"} : {};
  const response = await fetch(url, {method, headers, credentials: "same-origin",
                                     body: body ? JSON.stringify(body) : undefined});
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}
function render(progress) {
  const item = Math.min(progress.done + 1, progress.total);
  $("progress-text").textContent =
    `Item ${item} of ${progress.total} (${progress.done} answered)`;
  $("progress-bar").style.width = `${100 * progress.done / progress.total}%`;
  if (progress.finished) { current = null; show("finished"); return; }
  const trial = progress.trial;
  let pending = 4;
  const loaded = () => {  // all four pictures shown: the response time starts now
    if (--pending > 0) return;
    current = {trial, shownAt: performance.now()};
    busy = false;
    document.body.dataset.ready = trial;
  };
  current = null;
  for (const kind of ["complete", "incomplete", "A", "B"]) {
    const img = $(`img-${kind}`);
    img.onload = loaded;
    img.onerror = () => fail(`could not load image ${kind}`);
    img.src = `/api/study/images/${encodeURIComponent(trial)}/${kind}`;
  }
  show("trial");
}
async function vote(choice) {
  if (!current || busy) return;
  busy = true;
  const elapsed = Math.round(performance.now() - current.shownAt);
  try {
    const body = {trial: current.trial, choice, response_ms: elapsed};
    render(await call("POST", "/api/study/vote", body));
  } catch (err) { busy = false; fail(err.message); }
}
async function start() {
  $("error").classList.add("hidden");
  const code = $("code").value.trim();  // none: the cookie's participant continues
  try { render(await call("POST", "/api/study/join", code ? {code} : {})); }
  catch (err) { fail(err.message); }
}
async function init() {
  const info = await call("GET", "/api/study/info");
  $("instructions").textContent = info.instructions;
  // an invitation link (/study?code=xxxxx-xxxxx) fills in the code
  $("code").value = new URLSearchParams(window.location.search).get("code") || "";
  $("question").textContent = `Task: ${info.question}`;
  try {  // a returning participant (cookie) continues where they stopped
    const progress = await call("GET", "/api/study/next");
    render(progress);
  } catch (err) { show("welcome"); }
}
$("start").addEventListener("click", start);
$("choose-A").addEventListener("click", () => vote("A"));
$("choose-B").addEventListener("click", () => vote("B"));
$("code").addEventListener("keydown", (event) => { if (event.key === "Enter") start(); });
document.addEventListener("keydown", (event) => {
  if (!current) return;  // typing the code is not a vote
  if (event.key === "a" || event.key === "A") vote("A");
  if (event.key === "b" || event.key === "B") vote("B");
});
init().catch((err) => fail(err.message));
