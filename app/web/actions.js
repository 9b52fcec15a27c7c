// What a person does with the instance on screen: download the stored file (GET /dicomFile/{name}?download,
// fetched with the credentials into a blob: URL) and delete it (DELETE /dicomFile/{name}, confirmed in
// the page). The stored name comes from the public list (GET /dicomFile?SOPInstanceUID=...).

import { call } from "./api.js";

async function storedName(instance) {
  const page = await (await call(`/dicomFile?SOPInstanceUID=${encodeURIComponent(instance)}&limit=1`)).json();
  const [row] = page.data;
  if (!row) throw new Error("this instance is no longer stored");
  return row.name;
}

export function setUpActions({ currentInstance, onDeleted, fail }) {
  const download = document.getElementById("download-button");
  const remove = document.getElementById("delete-button");
  const ask = document.getElementById("delete-ask");
  const confirm = document.getElementById("delete-confirm");
  const cancel = document.getElementById("delete-cancel");

  download.addEventListener("click", async () => {
    try {
      const name = await storedName(currentInstance());
      const response = await call(`/dicomFile/${encodeURIComponent(name)}?download`, { accept: "application/dicom" });
      const url = URL.createObjectURL(await response.blob());
      const link = Object.assign(document.createElement("a"), { href: url, download: name });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
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
