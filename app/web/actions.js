// What a person does with the instance on screen: download the stored file (GET /dicomFile/{name}?download,
// fetched with the credentials into a blob: URL) and delete it (DELETE /dicomFile/{name}, confirmed in
// the page). The stored name comes from the public list (GET /dicomFile?SOPInstanceUID=...).
// And with the study: download it as one ZIP (WADO-RS retrieve as application/zip, PS3.18 §8.7.3).

import { DICOMWEB, call, isShare } from "./api.js";

function save(href, name) {
  const link = Object.assign(document.createElement("a"), { href, download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

async function saveBlob(response, fallback) {
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") ?? "");
  const url = URL.createObjectURL(await response.blob());
  save(url, named ? named[1] : fallback);
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The study as a ZIP. A session's cookie goes with a plain link, so the browser streams it to disk;
 * a share link's token must go in a header (never in a URL), so that ZIP is fetched into a blob. */
async function downloadStudy(study, status) {
  const path = `${DICOMWEB}/studies/${encodeURIComponent(study)}`;
  if (!isShare()) {
    save(`${path}?accept=${encodeURIComponent("application/zip")}`, "");
    return;
  }
  status.textContent = "Preparing the ZIP…";
  try {
    await saveBlob(await call(path, { accept: "application/zip" }), "study.zip");
  } finally {
    status.textContent = "";
  }
}

async function storedName(instance) {
  const page = await (await call(`/dicomFile?SOPInstanceUID=${encodeURIComponent(instance)}&limit=1`)).json();
  const [row] = page.data;
  if (!row) throw new Error("this instance is no longer stored");
  return row.name;
}

export function setUpActions({ currentInstance, currentStudy, onDeleted, fail }) {
  const download = document.getElementById("download-button");
  const downloadAll = document.getElementById("download-study");
  const downloadStatus = document.getElementById("download-study-status");
  const remove = document.getElementById("delete-button");
  const ask = document.getElementById("delete-ask");
  const confirm = document.getElementById("delete-confirm");
  const cancel = document.getElementById("delete-cancel");

  download.addEventListener("click", async () => {
    try {
      const name = await storedName(currentInstance());
      const response = await call(`/dicomFile/${encodeURIComponent(name)}?download`, { accept: "application/dicom" });
      await saveBlob(response, name);
    } catch (error) {
      fail(error);
    }
  });
  downloadAll.addEventListener("click", async () => {
    try {
      await downloadStudy(currentStudy(), downloadStatus);
    } catch (error) {
      fail(error);
    }
  });
  remove.addEventListener("click", () => {
    ask.hidden = false;
    cancel.focus();
  });
  cancel.addEventListener("click", () => {
    ask.hidden = true;
    remove.focus();
  });
  confirm.addEventListener("click", async () => {
    ask.hidden = true;
    try {
      const name = await storedName(currentInstance());
      await call(`/dicomFile/${encodeURIComponent(name)}`, { method: "DELETE" });
      onDeleted();
    } catch (error) {
      fail(error);
    }
  });
}
