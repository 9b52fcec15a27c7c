// One instance on screen: the server renders each frame (WADO-RS rendered, PS3.18 §10.4.1.1.3) at the
// size of the stage with the chosen window, so what is seen is exactly what the renderer returns.
// Frames step with the buttons, the arrow keys and the wheel; dragging changes the window (up/down
// the centre, left/right the width, from the file's own window or the preset's); requests are
// debounced so a drag asks the server for a few renders, not one per mouse move. Zoom enlarges the
// picture in the page and the stage's scroll bars pan it.

import { DICOMWEB, getJson, imageUrl } from "./api.js";
import { KEYWORDS, tagLabel, text } from "./dicom.js";

const DEBOUNCE_MS = 120;
const ZOOMS = [1, 1.5, 2, 3, 4];
const FILE_WINDOW = ["00281050", "00281051"]; // Window Center, Window Width (PS3.3 C.11.2)

export function setUpViewer({ fail }) {
  const img = document.getElementById("viewer-image");
  const stage = document.getElementById("stage");
  const preset = document.getElementById("window-preset");
  const prev = document.getElementById("frame-prev");
  const next = document.getElementById("frame-next");
  const index = document.getElementById("frame-index");
  const status = document.getElementById("viewer-status");
  const tags = document.querySelector("#tags-table tbody");
  const filter = document.getElementById("tags-filter");
  let current = null; // {study, series, instance, frames, frame, label}
  let fileWindow = null; // [center, width] of the file's own first window, when it has one
  let dragged = null; // [center, width] chosen by dragging, until a preset is chosen
  let zoom = 0;
  let timer = null;
  let generation = 0;

  function base() {
    const { study, series, instance } = current;
    return `${DICOMWEB}/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(series)}/instances/${encodeURIComponent(instance)}`;
  }

  async function render() {
    if (!current) return;
    const mine = ++generation;
    const side = Math.max(64, Math.min(1024, Math.round(Math.min(stage.clientWidth || 512, 720))));
    const params = new URLSearchParams({ viewport: `${side},${side}` });
    const chosen = dragged ? dragged.map((v) => Math.round(v)).join(",") : preset.value;
    if (chosen) params.set("window", chosen);
    index.textContent = `Frame ${current.frame} of ${current.frames}`;
    prev.disabled = current.frame <= 1;
    next.disabled = current.frame >= current.frames;
    status.textContent = "Loading the image…";
    try {
      const url = await imageUrl(`${base()}/frames/${current.frame}/rendered?${params}`);
      if (mine !== generation) {
        URL.revokeObjectURL(url);
        return;
      }
      if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
      img.src = url;
      img.dataset.window = params.get("window") ?? "";
      img.alt = `${current.label}, frame ${current.frame} of ${current.frames}`;
      status.textContent = "";
    } catch (error) {
      if (mine === generation) status.textContent = `This image cannot be shown: ${error.message}`;
    }
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(render, DEBOUNCE_MS);
  }

  function step(delta) {
    if (!current) return;
    const frame = Math.min(current.frames, Math.max(1, current.frame + delta));
    if (frame === current.frame) return;
    current.frame = frame;
    index.textContent = `Frame ${current.frame} of ${current.frames}`;
    later();
  }

  function showTags() {
    const words = filter.value.trim().toLowerCase();
    for (const tr of tags.rows) tr.hidden = Boolean(words) && !tr.textContent.toLowerCase().includes(words);
  }

  async function loadTags() {
    tags.replaceChildren();
    try {
      const [dataset] = await getJson(`${base()}/metadata`);
      const [center, width] = FILE_WINDOW.map((tag) => Number.parseFloat(text(dataset, tag).split("\\")[0]));
      fileWindow = Number.isFinite(center) && width > 0 ? [center, width] : null;
      const rows = Object.keys(dataset ?? {})
        .sort()
        .map((tag) => {
          const tr = document.createElement("tr");
          for (const value of [tagLabel(tag), KEYWORDS[tag] ?? "", dataset[tag].vr ?? "", text(dataset, tag)]) {
            const td = document.createElement("td");
            td.textContent = value.length > 200 ? `${value.slice(0, 200)}…` : value;
            tr.append(td);
          }
          return tr;
        });
      tags.replaceChildren(...rows);
      showTags();
    } catch (error) {
      fail(error);
    }
  }

  prev.addEventListener("click", () => step(-1));
  next.addEventListener("click", () => step(1));
  preset.addEventListener("change", () => {
    dragged = null;
    render();
  });

  function setZoom(level) {
    zoom = Math.max(0, Math.min(ZOOMS.length - 1, level));
    stage.classList.toggle("zoomed", zoom > 0);
    img.style.width = zoom > 0 ? `${ZOOMS[zoom] * 100}%` : "";
    document.getElementById("zoom-out").disabled = zoom === 0;
    document.getElementById("zoom-in").disabled = zoom === ZOOMS.length - 1;
  }
  document.getElementById("zoom-in").addEventListener("click", () => setZoom(zoom + 1));
  document.getElementById("zoom-out").addEventListener("click", () => setZoom(zoom - 1));
  document.getElementById("zoom-fit").addEventListener("click", () => setZoom(0));
  setZoom(0);

  let origin = null;
  stage.addEventListener("pointerdown", (event) => {
    const start = dragged ?? (preset.value ? preset.value.split(",").map(Number) : fileWindow);
    if (!current || !start || event.button !== 0 || zoom > 0) return;
    event.preventDefault(); // no text selection or native image drag while windowing
    origin = { x: event.clientX, y: event.clientY, start };
    stage.setPointerCapture(event.pointerId);
  });
  stage.addEventListener("pointermove", (event) => {
    if (!origin) return;
    const [center, width] = origin.start;
    const scale = Math.max(width, 1) / 256;
    dragged = [center - (event.clientY - origin.y) * scale, Math.max(1, width + (event.clientX - origin.x) * scale)];
    status.textContent = `Window ${Math.round(dragged[0])} / ${Math.round(dragged[1])}`;
    later();
  });
  stage.addEventListener("pointerup", () => {
    origin = null;
  });
  stage.addEventListener("pointercancel", () => {
    origin = null;
  });
  filter.addEventListener("input", showTags);
  stage.addEventListener("keydown", (event) => {
    if (event.key === "ArrowRight" || event.key === "ArrowDown") step(1);
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") step(-1);
    else return;
    event.preventDefault();
  });
  stage.addEventListener(
    "wheel",
    (event) => {
      if (!current || current.frames < 2) return;
      event.preventDefault();
      step(event.deltaY > 0 ? 1 : -1);
    },
    { passive: false },
  );

  return {
    show(study, series, instance, frames, label) {
      current = { study, series, instance, frames: Math.max(1, frames), frame: 1, label };
      dragged = null;
      fileWindow = null;
      render();
      loadTags();
    },
    instance() {
      return current?.instance ?? null;
    },
    /** Forget the instance; ``fresh`` (a new study) also goes back to the file's own window, unzoomed. */
    clear(fresh = false) {
      current = null;
      if (fresh) {
        dragged = null;
        preset.value = "";
        setZoom(0);
      }
      generation += 1;
      if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
      img.removeAttribute("src");
      img.alt = "";
      index.textContent = "";
      status.textContent = "";
      tags.replaceChildren();
    },
  };
}
