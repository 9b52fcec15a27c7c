// Reading the DICOM JSON model (PS3.18 Annex F) that QIDO-RS and WADO-RS metadata answer with.

export const TAG = {
  StudyDate: "00080020",
  Modality: "00080060",
  ModalitiesInStudy: "00080061",
  StudyDescription: "00081030",
  SeriesDescription: "0008103E",
  PatientName: "00100010",
  PatientID: "00100020",
  StudyInstanceUID: "0020000D",
  SeriesInstanceUID: "0020000E",
  SOPInstanceUID: "00080018",
  SeriesNumber: "00200011",
  InstanceNumber: "00200013",
  NumberOfStudyRelatedSeries: "00201206",
  NumberOfStudyRelatedInstances: "00201208",
  NumberOfSeriesRelatedInstances: "00201209",
  NumberOfFrames: "00280008",
};

/** A short keyword for the elements most people look for; the rest show their tag only. */
export const KEYWORDS = Object.fromEntries([
  ...Object.entries(TAG).map(([keyword, tag]) => [tag, keyword]),
  ["00020010", "TransferSyntaxUID"], ["00080016", "SOPClassUID"], ["00080030", "StudyTime"],
  ["00080050", "AccessionNumber"], ["00080070", "Manufacturer"], ["00080090", "ReferringPhysicianName"],
  ["00100030", "PatientBirthDate"], ["00100040", "PatientSex"], ["00180050", "SliceThickness"],
  ["00200010", "StudyID"], ["00200032", "ImagePositionPatient"], ["00200037", "ImageOrientationPatient"],
  ["00280002", "SamplesPerPixel"], ["00280004", "PhotometricInterpretation"], ["00280010", "Rows"],
  ["00280011", "Columns"], ["00280030", "PixelSpacing"], ["00280100", "BitsAllocated"],
  ["00280101", "BitsStored"], ["00280103", "PixelRepresentation"], ["00281050", "WindowCenter"],
  ["00281051", "WindowWidth"], ["00281052", "RescaleIntercept"], ["00281053", "RescaleSlope"],
  ["7FE00010", "PixelData"],
]);

function show(item) {
  if (item === null || item === undefined) return "";
  if (typeof item === "object" && "Alphabetic" in item) return item.Alphabetic ?? "";
  if (typeof item === "object") return "(item)";
  return String(item);
}

/** The element's values as text (several joined by a backslash, as DICOM writes them). */
export function text(dataset, tag) {
  const element = dataset?.[tag];
  if (!element) return "";
  if (element.vr === "SQ") return `${(element.Value ?? []).length} item(s)`;
  if (element.InlineBinary !== undefined) return `${element.vr} binary`;
  if (element.BulkDataURI !== undefined) return "(bulk data)";
  return (element.Value ?? []).map(show).join("\\");
}

export function number(dataset, tag, fallback = 0) {
  const value = Number.parseInt(text(dataset, tag), 10);
  return Number.isFinite(value) ? value : fallback;
}

/** ``20240131`` as ``2024-01-31`` (PS3.5 DA), anything else as written. */
export function date(value) {
  return /^\d{8}$/.test(value) ? `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6)}` : value;
}

export function tagLabel(tag) {
  return `(${tag.slice(0, 4)},${tag.slice(4)})`;
}
