// The web catalogue's few behaviours: the before/after slider and the curator's write actions.
// Loaded from /static (the Content-Security-Policy allows no inline script).
"use strict";

function setupSlider() {
  const slider = document.getElementById("slider");
  const after = document.getElementById("after");
  if (!slider || !after) return;
  const divider = document.getElementById("divider");
  const apply = () => {
    after.style.clipPath = `inset(0 ${100 - Number(slider.value)}% 0 0)`;
    if (divider) divider.style.left = `${slider.value}%`;
  };
  slider.addEventListener("input", apply);
  apply();
}

// Sends a write with the curator's name and token; returns the answer's data, or null (shown).
async function send(method, url, body) {
  const status = document.getElementById("action-status");
  const user = document.getElementById("user").value.trim();
  const token = document.getElementById("token").value;
  if (!user) { show(status, "Give your name first: every change is recorded under it.", false); return null; }
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const response = await fetch(url, { method, headers, body: JSON.stringify({ user, ...body }) });
    const data = await response.json();
    if (!response.ok) { show(status, `Refused (${response.status}): ${data.error || JSON.stringify(data.detail)}`, false); return null; }
    return data;
  } catch (err) {
    show(status, `The catalogue did not answer: ${err}`, false);
    return null;
  }
}

async function act(button) {
  const status = document.getElementById("action-status");
  const note = document.getElementById("note").value;
  const id = button.dataset.derivative;
  const action = button.dataset.action;
  const body = action === "review" ? { note, state: button.dataset.state } : { note };
  const data = await send("POST", `/api/derivatives/${id}/${action}`, body);
  if (data) {
    show(status, action === "review" ? `Recorded: ${data.review} (event ${data.event}).` : `Recorded: ${data.action} (event ${data.event}).`, true);
    if (action === "review") {
      const cell = document.querySelector(`#version-${id} td.review`);
      cell.textContent = data.review;
      cell.dataset.review = data.review;
    } else {
      setTimeout(() => window.location.reload(), 600);
    }
  }
}

async function editMetadata(form) {
  const fields = Object.fromEntries(new FormData(form).entries());
  const data = await send("PATCH", `/api/items/${form.dataset.item}/metadata`, { fields });
  if (data) {
    const changed = Object.keys(data.changes);
    show(document.getElementById("action-status"), changed.length ? `Saved: ${changed.join(", ")}.` : "Nothing changed.", true);
    if (changed.length) setTimeout(() => window.location.reload(), 800);
  }
}

// A corrected damage mask: the file's bytes as the body, the curator's name in the query.
async function uploadMask(form) {
  const status = document.getElementById("action-status");
  const user = document.getElementById("user").value.trim();
  const token = document.getElementById("token").value;
  const file = document.getElementById("mask-file").files[0];
  if (!user) { show(status, "Give your name first: every change is recorded under it.", false); return; }
  if (!file) { show(status, "Choose the mask's file first.", false); return; }
  const headers = { "Content-Type": file.type || "application/octet-stream" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const query = new URLSearchParams({ user, name: file.name });
  try {
    const response = await fetch(`/api/items/${form.dataset.item}/mask?${query}`, { method: "POST", headers, body: file });
    const data = await response.json();
    if (!response.ok) { show(status, `Refused (${response.status}): ${data.error || JSON.stringify(data.detail)}`, false); return; }
    show(status, `Recorded: mask v${data.version} (${(100 * data.marked).toFixed(2)}% of the pixels marked); the next restore with a staged model uses it.`, true);
    setTimeout(() => window.location.reload(), 1200);
  } catch (err) {
    show(status, `The catalogue did not answer: ${err}`, false);
  }
}

function show(output, message, ok) {
  output.textContent = message;
  output.className = ok ? "ok" : "bad";
}

document.addEventListener("DOMContentLoaded", () => {
  setupSlider();
  document.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", () => act(b)));
  const edit = document.getElementById("edit-metadata");
  if (edit) edit.addEventListener("submit", (e) => { e.preventDefault(); editMetadata(edit); });
  const upload = document.getElementById("upload-mask");
  if (upload) upload.addEventListener("submit", (e) => { e.preventDefault(); uploadMask(upload); });
});
