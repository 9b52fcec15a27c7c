// One study: its series and instances from QIDO-RS (PS3.18 §10.6.1), the first instance opened in
// the viewer. Rows are buttons, so the keyboard reaches every one.

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
  let study = null;

  async function openSeries(series) {
    instanceList.replaceChildren();
    viewer.clear();
    try {
      const path = `${DICOMWEB}/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(series)}/instances`;
      const instances = await getJson(`${path}?includefield=${TAG.NumberOfFrames}`);
      instances.sort((a, b) => number(a, TAG.InstanceNumber) - number(b, TAG.InstanceNumber));
      const rows = instances.map((instance, position) => {
        const uid = text(instance, TAG.SOPInstanceUID);
        const frames = number(instance, TAG.NumberOfFrames, 1);
        const label = `Instance ${text(instance, TAG.InstanceNumber) || position + 1}${frames > 1 ? ` (${frames} frames)` : ""}`;
        return rowButton("instance-row", label, () => viewer.show(study, series, uid, frames, label));
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
