// Upload by drag-and-drop (files and folders) or the file and folder pickers: one POST /upload per file, through XMLHttpRequest
// because fetch cannot report upload progress. Two files travel at once; each has its own progress
// bar, outcome and cancel button, and an overall bar counts bytes and files.

import { credentialHeaders } from "./api.js";

const PARALLEL = 2;

/** Every file under a dropped entry (folders walked; readEntries answers in batches until empty). */
async function filesUnder(entry) {
  if (entry.isFile) return [await new Promise((resolve, reject) => entry.file(resolve, reject))];
  const reader = entry.createReader();
  const found = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return found;
    for (const child of batch) found.push(...(await filesUnder(child)));
  }
}

async function droppedFiles(transfer) {
  const entries = [...transfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (entries.length === 0) return [...transfer.files];
  return (await Promise.all(entries.map(filesUnder))).flat();
}

function outcome(status, body) {
  if (status === 201 && body.files === undefined) return { ok: true, text: `Stored as ${body.name}` };
  if (status === 200 && body.files === undefined) return { ok: true, text: body.message ?? "Already stored" };
  if (Array.isArray(body.files)) {
    const refused = body.files.filter((file) => file.status >= 400);
    const details = refused.map((file) => `${file.file}: ${file.error ?? file.status}`).join("; ");
    return { ok: refused.length === 0, text: details ? `${body.message}. Refused: ${details}` : body.message };
  }
  return { ok: false, text: `Refused: ${body.error ?? `HTTP ${status}`}` };
}

function row(file) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.className = "file";
  name.textContent = file.name;
  const progress = document.createElement("progress");
  progress.max = file.size || 1;
  progress.value = 0;
  progress.dataset.testid = "upload-progress";
  progress.setAttribute("aria-label", `Upload of ${file.name}`);
  const result = document.createElement("span");
  result.className = "result";
  result.dataset.testid = "upload-result";
  result.setAttribute("role", "status");
  result.textContent = "Waiting";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = "Cancel";
  cancel.setAttribute("aria-label", `Cancel the upload of ${file.name}`);
  item.append(name, progress, result, cancel);
  return { item, progress, result, cancel };
}

function send(file, view, onBytes) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    let sent = 0;
    const finish = (ok, text) => {
      view.cancel.remove();
      view.result.textContent = text;
      view.item.classList.add(ok ? "ok" : "failed");
      onBytes(file.size - sent);
      resolve(ok);
    };
    xhr.open("POST", "/upload");
    for (const [name, value] of Object.entries(credentialHeaders(true))) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (event) => {
      const loaded = Math.min(event.loaded, file.size);
      view.progress.value = loaded;
      onBytes(loaded - sent);
      sent = loaded;
    };
    xhr.onload = () => {
      view.progress.value = view.progress.max;
      let body = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = {};
      }
      const { ok, text } = outcome(xhr.status, body);
      finish(ok, text);
    };
    xhr.onerror = () => finish(false, "Failed: the connection was lost");
    xhr.onabort = () => finish(false, "Cancelled");
    view.cancel.addEventListener("click", () => xhr.abort());
    view.result.textContent = "Uploading";
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

export function setUpUpload({ onDone }) {
  const input = document.getElementById("upload-input");
  const zone = document.getElementById("drop-zone");
  const list = document.getElementById("upload-list");
  const overall = document.getElementById("upload-overall");
  const total = document.getElementById("upload-total");
  const summary = document.getElementById("upload-summary");

  async function upload(files) {
    if (files.length === 0) return;
    const views = files.map((file) => ({ file, view: row(file) }));
    list.replaceChildren(...views.map(({ view }) => view.item));
    const bytes = files.reduce((sum, file) => sum + file.size, 0) || 1;
    let sent = 0;
    let done = 0;
    let stored = 0;
    overall.hidden = false;
    total.max = bytes;
    total.value = 0;
    const update = () => {
      total.value = Math.min(sent, bytes);
      summary.textContent = `${done} of ${files.length} files done, ${stored} stored`;
    };
    update();
    const queue = [...views];
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const ok = await send(next.file, next.view, (delta) => {
          sent += delta;
          update();
        });
        done += 1;
        stored += ok ? 1 : 0;
        update();
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    onDone();
  }

  for (const picker of [input, document.getElementById("upload-folder")]) {
    picker.addEventListener("change", () => {
      upload([...picker.files]);
      picker.value = "";
    });
  }
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    droppedFiles(event.dataTransfer).then(upload);
  });
}
