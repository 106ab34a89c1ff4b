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

async function act(button) {
  const status = document.getElementById("action-status");
  const user = document.getElementById("user").value.trim();
  const token = document.getElementById("token").value;
  const note = document.getElementById("note").value;
  if (!user) { show(status, "Give your name first: every change is recorded under it.", false); return; }
  const id = button.dataset.derivative;
  const action = button.dataset.action;
  const body = action === "review" ? { user, note, state: button.dataset.state } : { user, note };
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const response = await fetch(`/api/derivatives/${id}/${action}`, { method: "POST", headers, body: JSON.stringify(body) });
    const data = await response.json();
    if (!response.ok) { show(status, `Refused (${response.status}): ${data.error || JSON.stringify(data.detail)}`, false); return; }
    show(status, action === "review" ? `Recorded: ${data.review} (event ${data.event}).` : `Recorded: ${data.action} (event ${data.event}).`, true);
    if (action === "review") {
      const cell = document.querySelector(`#version-${id} td.review`);
      cell.textContent = data.review;
      cell.dataset.review = data.review;
    } else {
      setTimeout(() => window.location.reload(), 600);
    }
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
});
