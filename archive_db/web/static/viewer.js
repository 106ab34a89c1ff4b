// The IIIF viewer of the item page: OpenSeadragon (installed by the Makefile from the npm
// registry into /static/vendor, never fetched from a CDN) showing the layers of the item's
// IIIF manifest, deep-zoomed from the catalogue's own Image API. The master lies underneath;
// one derived layer at a time lies over it, at the opacity the slider sets, so the two can be
// compared at any zoom. Each layer's button says how it was made (its label in the manifest).
"use strict";

async function setupViewer() {
  const box = document.getElementById("iiif-viewer");
  if (!box || typeof OpenSeadragon === "undefined") return;
  const status = document.getElementById("iiif-status");
  let manifest;
  try {
    const response = await fetch(box.dataset.manifest);
    if (!response.ok) throw new Error(`manifest: ${response.status}`);
    manifest = await response.json();
  } catch (err) {
    status.textContent = `The viewer could not read the manifest: ${err}`;
    return;
  }
  const body = manifest.items[0].items[0].items[0].body;
  const layers = (body.type === "Choice" ? body.items : [body]).map((image) => ({
    label: (image.label && (image.label.en || image.label.none || [])[0]) || image.id,
    info: `${image.service[0].id}/info.json`,
  }));
  const viewer = OpenSeadragon({
    element: box,
    prefixUrl: "/static/vendor/openseadragon/images/",
    showNavigator: true,
    crossOriginPolicy: false,
  });
  const opacity = document.getElementById("iiif-opacity");
  const buttons = document.getElementById("iiif-layers");
  let over = null;  // the derived layer shown over the master
  const items = [];
  const show = (index) => {
    items.forEach((item, i) => { if (i > 0) item.setOpacity(i === index ? Number(opacity.value) / 100 : 0); });
    over = index;
    buttons.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(Number(b.dataset.layer) === index)));
  };
  layers.forEach((layer, index) => {
    viewer.addTiledImage({
      tileSource: layer.info,
      index,
      opacity: index === 1 ? Number(opacity.value) / 100 : index === 0 ? 1 : 0,
      success: (event) => {
        items[index] = event.item;
        box.dataset.loaded = String(items.filter(Boolean).length);
      },
      error: (event) => { status.textContent = `Layer ${layer.label} failed: ${event.message}`; },
    });
    if (index > 0) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.layer = String(index);
      button.textContent = layer.label;
      button.addEventListener("click", () => show(index));
      buttons.appendChild(button);
    }
  });
  if (layers.length > 1) over = 1;
  opacity.addEventListener("input", () => { if (over !== null && items[over]) items[over].setOpacity(Number(opacity.value) / 100); });
  status.textContent = `${layers.length} layer(s) from the IIIF manifest; drag to pan, scroll to zoom.`;
}

document.addEventListener("DOMContentLoaded", setupViewer);
