// The study list: QIDO-RS Search Studies (PS3.18 §10.6.1) with the search keys of the form,
// paged by the server (limit/offset; one extra row asked for tells whether a next page exists).

import { DICOMWEB, getJson, imageUrl } from "./api.js";
import { TAG, date, number, text } from "./dicom.js";

const PAGE = 20;

function wildcard(value) {
  const trimmed = value.trim();
  if (!trimmed) return "";
  return /[*?]/.test(trimmed) ? trimmed : `*${trimmed}*`;
}

function dicomDate(value) {
  return value ? value.replaceAll("-", "") : "";
}

export function searchParams(form, offset) {
  const params = new URLSearchParams();
  const name = wildcard(form.name.value);
  const id = wildcard(form.id.value);
  const modality = form.modality.value.trim().toUpperCase();
  const from = dicomDate(form.from.value);
  const to = dicomDate(form.to.value);
  if (name) params.set("PatientName", name);
  if (id) params.set("PatientID", id);
  if (modality) params.set("ModalitiesInStudy", modality);
  if (from || to) params.set("StudyDate", from === to ? from : `${from}-${to}`);
  params.set("limit", String(PAGE + 1));
  params.set("offset", String(offset));
  return params;
}

/** A cell; its column's name goes in data-label, which the phone layout shows before the value. */
function cell(label, value) {
  const td = document.createElement("td");
  td.textContent = value;
  td.dataset.label = label;
  return td;
}

function studyRow(study, open) {
  const uid = text(study, TAG.StudyInstanceUID);
  const patient = text(study, TAG.PatientName) || "(no name)";
  const tr = document.createElement("tr");
  tr.dataset.testid = "study-row";
  const thumb = document.createElement("td");
  const img = document.createElement("img");
  img.className = "thumb";
  img.alt = "";
  img.width = 64;
  img.height = 64;
  thumb.append(img);
  const name = document.createElement("td");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link";
  button.textContent = patient;
  button.setAttribute("aria-label", `Open the study of ${patient}, ${date(text(study, TAG.StudyDate))}`);
  button.addEventListener("click", () => open(uid));
  name.append(button);
  tr.append(
    thumb,
    name,
    cell("ID", text(study, TAG.PatientID)),
    cell("Date", date(text(study, TAG.StudyDate))),
    cell("Description", text(study, TAG.StudyDescription)),
    cell("Modalities", text(study, TAG.ModalitiesInStudy).replaceAll("\\", ", ")),
    cell("Series", String(number(study, TAG.NumberOfStudyRelatedSeries))),
    cell("Instances", String(number(study, TAG.NumberOfStudyRelatedInstances))),
  );
  tr.addEventListener("click", (event) => {
    if (event.target === tr || event.target.tagName === "TD" || event.target === img) open(uid);
  });
  imageUrl(`${DICOMWEB}/studies/${encodeURIComponent(uid)}/thumbnail?viewport=64,64`, "image/jpeg")
    .then((url) => {
      img.src = url;
    })
    .catch(() => img.classList.add("missing"));
  return tr;
}

export function setUpStudies({ open, fail }) {
  const formElement = document.getElementById("search-form");
  const form = {
    name: document.getElementById("search-name"),
    id: document.getElementById("search-id"),
    modality: document.getElementById("search-modality"),
    from: document.getElementById("search-from"),
    to: document.getElementById("search-to"),
  };
  const rows = document.getElementById("study-rows");
  const empty = document.getElementById("study-empty");
  const prev = document.getElementById("page-prev");
  const next = document.getElementById("page-next");
  const info = document.getElementById("page-info");
  let offset = 0;

  async function load() {
    try {
      const studies = await getJson(`${DICOMWEB}/studies?${searchParams(form, offset)}`);
      const page = studies.slice(0, PAGE);
      for (const img of rows.querySelectorAll("img[src^='blob:']")) URL.revokeObjectURL(img.src);
      rows.replaceChildren(...page.map((study) => studyRow(study, open)));
      empty.hidden = page.length > 0;
      prev.disabled = offset === 0;
      next.disabled = studies.length <= PAGE;
      info.textContent = page.length ? `Studies ${offset + 1}–${offset + page.length}` : "";
    } catch (error) {
      fail(error);
    }
  }

  formElement.addEventListener("submit", (event) => {
    event.preventDefault();
    offset = 0;
    load();
  });
  prev.addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE);
    load();
  });
  next.addEventListener("click", () => {
    offset += PAGE;
    load();
  });
  return { load };
}
