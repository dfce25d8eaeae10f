// impasto web page: pick a photo and a style, POST /stylize, show both side by side.
"use strict";
const $ = (id) => document.getElementById(id);
// inner: the styles inside each multi-style model (what its blend sliders name)
const state = { file: null, style: null, resultUrl: null, originalUrl: null, inner: {} };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function updateButton() { $("go").disabled = !(state.file && state.style && (blendSliders().length === 0 || blendTotal() > 0)); }

// ---- blending a multi-style model: one slider per style inside it, weights normalised by the server
function blendSliders() { return [...document.querySelectorAll("#blend-sliders input")]; }
function blendTotal() { return blendSliders().reduce((t, s) => t + Number(s.value), 0); }
function blendText() {
  return blendSliders().filter((s) => Number(s.value) > 0).map((s) => `${s.dataset.style}:${s.value}`).join(",");
}

function renderBlend(names) {
  const box = $("blend-sliders");
  box.innerHTML = "";
  $("blend").hidden = names.length === 0;
  names.forEach((name, i) => {
    const label = document.createElement("label");
    label.className = "blend-style";
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: "0", max: "1", step: "0.05", value: i === 0 ? "1" : "0" });
    input.dataset.style = name;
    input.setAttribute("aria-label", `weight of ${name.replace(/_/g, " ")}`);
    input.addEventListener("input", updateBlend);
    const out = document.createElement("output");
    label.append(document.createTextNode(name.replace(/_/g, " ")), input, out);
    box.append(label);
  });
  updateBlend();
}

function updateBlend() {
  const total = blendTotal();
  for (const s of blendSliders()) {
    s.nextElementSibling.textContent = total > 0 ? `${Math.round((100 * Number(s.value)) / total)}%` : "0%";
  }
  $("blend-hint").textContent = blendSliders().length && total === 0 ? "Give at least one style a weight." : "";
  updateButton();
}

async function loadStyles() {
  try {
    const res = await fetch("/styles");
    const data = await res.json();
    if (!res.ok) throw new Error(data.error || res.statusText);
    const box = $("styles");
    box.innerHTML = "";
    for (const s of data.styles) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "style";
      b.dataset.style = s.name;
      b.setAttribute("role", "radio");
      b.setAttribute("aria-checked", "false");
      const img = document.createElement("img");
      img.alt = "";
      if (s.preview) img.src = s.preview;
      b.append(img, document.createTextNode(s.name.replace(/_/g, " ")));
      b.title = s.card && s.card.style_image ? `trained on ${s.card.style_image}` : s.name;
      b.addEventListener("click", () => selectStyle(s.name));
      box.append(b);
      state.inner[s.name] = s.styles || [];
    }
    if (data.default) selectStyle(data.default);
    if (!data.styles.length) setStatus("This server has no styles installed.", true);
  } catch (e) {
    setStatus(`Cannot list styles: ${e.message}`, true);
  }
}

function selectStyle(name) {
  state.style = name;
  for (const b of document.querySelectorAll(".style")) b.setAttribute("aria-checked", String(b.dataset.style === name));
  renderBlend(state.inner[name] || []);
}

function setFile(file) {
  if (!file) return;
  state.file = file;
  if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
  state.originalUrl = URL.createObjectURL(file);
  $("original").src = state.originalUrl;
  $("drop-text").textContent = file.name;
  setStatus("");
  updateButton();
}

async function paint() {
  if (!state.file || !state.style) return;
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("style", state.style);
  form.append("size", $("size").value);
  form.append("strength", $("strength").value);
  form.append("preserve_color", $("preserve").checked ? "true" : "false");
  form.append("format", $("format").value);
  const mix = blendSliders().length ? blendText() : "";
  if (mix) form.append("blend", mix);
  $("go").disabled = true;
  setStatus(`Painting in ${state.style.replace(/_/g, " ")}${mix ? ` (${mix.replace(/,/g, ", ")})` : ""}…`);
  const t0 = performance.now();
  try {
    const res = await fetch("/stylize", { method: "POST", body: form });
    if (!res.ok) {
      let msg = res.statusText;
      try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
      if (res.status === 503) msg += " (the server is busy)";
      throw new Error(msg);
    }
    const blob = await res.blob();
    const total = performance.now() - t0;
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = URL.createObjectURL(blob);
    $("result").src = state.resultUrl;
    const inference = res.headers.get("X-Inference-Ms");
    const backend = res.headers.get("X-Backend") || "";
    $("timing").textContent = `${(total / 1000).toFixed(2)} s` +
      (inference ? ` (network ${Math.round(inference)} ms, ${backend})` : "");
    const painted = res.headers.get("X-Blend");
    $("painted").textContent = painted ? `blend ${painted.replace(/,/g, ", ")}` : "";
    const ext = (blob.type.split("/")[1] || "jpg").replace("jpeg", "jpg");
    const stem = state.file.name.replace(/\.[^.]+$/, "");
    $("download").href = state.resultUrl;
    $("download").download = `${stem}-${state.style}.${ext}`;
    $("download").hidden = false;
    setStatus("Done.");
  } catch (e) {
    setStatus(`Failed: ${e.message}`, true);
  } finally {
    updateButton();
  }
}

function init() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => setFile(e.target.files[0]));
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  drop.addEventListener("drop", (e) => setFile(e.dataTransfer.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  $("strength").addEventListener("input", (e) => { $("strength-value").textContent = Number(e.target.value).toFixed(2); });
  $("go").addEventListener("click", paint);
  loadStyles();
}

init();
