// One study: its series and instances from QIDO-RS (PS3.18 §10.6.1), the first instance opened in
// the viewer. Rows are buttons, so the keyboard reaches every one. The previous and next instance of
// the series (in Instance Number order) are a button or Page Up / Page Down on the image away.

import { DICOMWEB, getJson } from "./api.js";
import { TAG, date, number, text } from "./dicom.js";

function rowButton(testid, label, onClick) {
  const li = document.createElement("li");
  li.dataset.testid = testid;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "row";
  button.textContent = label;
  button.addEventListener("click", () => {
    for (const other of li.parentElement.querySelectorAll("button[aria-current]")) other.removeAttribute("aria-current");
    button.setAttribute("aria-current", "true");
    onClick();
  });
  li.append(button);
  return { li, button };
}

export function setUpStudy({ viewer, fail, onGone }) {
  const title = document.getElementById("study-title");
  const meta = document.getElementById("study-meta");
  const seriesList = document.getElementById("series-list");
  const instanceList = document.getElementById("instance-list");
  const previous = document.getElementById("instance-prev");
  const next = document.getElementById("instance-next");
  const position = document.getElementById("instance-index");
  let study = null;
  let rows = []; // the instance rows of the open series, in order
  let shown = -1; // which of them is in the viewer

  function showPosition() {
    position.textContent = shown >= 0 ? `Instance ${shown + 1} of ${rows.length}` : "";
    previous.disabled = shown <= 0;
    next.disabled = shown < 0 || shown >= rows.length - 1;
  }

  function step(delta) {
    const row = rows[shown + delta];
    if (!row) return;
    row.button.click();
    row.button.scrollIntoView({ block: "nearest" });
  }

  previous.addEventListener("click", () => step(-1));
  next.addEventListener("click", () => step(1));
  for (const element of [document.getElementById("stage"), previous, next]) {
    element.addEventListener("keydown", (event) => {
      if (event.key === "PageDown") step(1);
      else if (event.key === "PageUp") step(-1);
      else return;
      event.preventDefault();
    });
  }

  async function openSeries(series) {
    instanceList.replaceChildren();
    rows = [];
    shown = -1;
    showPosition();
    viewer.clear();
    try {
      const path = `${DICOMWEB}/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(series)}/instances`;
      const instances = await getJson(`${path}?includefield=${TAG.NumberOfFrames}`);
      instances.sort((a, b) => number(a, TAG.InstanceNumber) - number(b, TAG.InstanceNumber));
      rows = instances.map((instance, place) => {
        const uid = text(instance, TAG.SOPInstanceUID);
        const frames = number(instance, TAG.NumberOfFrames, 1);
        const label = `Instance ${text(instance, TAG.InstanceNumber) || place + 1}${frames > 1 ? ` (${frames} frames)` : ""}`;
        return rowButton("instance-row", label, () => {
          shown = place;
          showPosition();
          viewer.show(study, series, uid, frames, label);
        });
      });
      instanceList.replaceChildren(...rows.map((row) => row.li));
      rows[0]?.button.click();
    } catch (error) {
      fail(error);
    }
  }

  return {
    async open(uid) {
      viewer.clear(uid !== study); // reopened after a delete: keep the window and zoom
      study = uid;
      seriesList.replaceChildren();
      instanceList.replaceChildren();
      rows = [];
      shown = -1;
      showPosition();
      try {
        const [found] = await getJson(`${DICOMWEB}/studies?StudyInstanceUID=${encodeURIComponent(uid)}`);
        if (!found) {
          onGone();
          return;
        }
        title.textContent = `${text(found, TAG.PatientName) || "(no name)"} — ${date(text(found, TAG.StudyDate)) || "no date"}`;
        meta.textContent = [
          text(found, TAG.PatientID) && `Patient ID ${text(found, TAG.PatientID)}`,
          text(found, TAG.StudyDescription),
          text(found, TAG.ModalitiesInStudy).replaceAll("\\", ", "),
        ]
          .filter(Boolean)
          .join(" · ");
        title.focus();
        const series = await getJson(`${DICOMWEB}/studies/${encodeURIComponent(uid)}/series`);
        series.sort((a, b) => number(a, TAG.SeriesNumber) - number(b, TAG.SeriesNumber));
        const rows = series.map((item) => {
          const seriesUid = text(item, TAG.SeriesInstanceUID);
          const label = [
            `Series ${text(item, TAG.SeriesNumber) || "?"}`,
            text(item, TAG.Modality),
            text(item, TAG.SeriesDescription),
            `${number(item, TAG.NumberOfSeriesRelatedInstances)} instance(s)`,
          ]
            .filter(Boolean)
            .join(" · ");
          return rowButton("series-row", label, () => openSeries(seriesUid));
        });
        seriesList.replaceChildren(...rows.map((row) => row.li));
        rows[0]?.button.click();
      } catch (error) {
        fail(error);
      }
    },
    current() {
      return study;
    },
  };
}
