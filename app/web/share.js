// Share links (POST/GET/DELETE /shares): the link carries its token in the URL fragment, which a
// browser never sends, so the token stays out of request lines and logs; the app opening the link
// sends it as Authorization: Bearer.

import { call } from "./api.js";

export function shareLink(token) {
  return `${location.origin}/ui/#share=${encodeURIComponent(token)}`;
}

export function setUpShare({ currentStudy, fail }) {
  const toggle = document.getElementById("share-button");
  const panel = document.getElementById("share-panel");
  const expiry = document.getElementById("share-expiry");
  const create = document.getElementById("share-create");
  const fresh = document.getElementById("share-new");
  const url = document.getElementById("share-url");
  const copy = document.getElementById("share-copy");
  const copied = document.getElementById("share-copied");
  const list = document.getElementById("share-list");

  async function refresh() {
    try {
      const { data } = await (await call("/shares")).json();
      const mine = data.filter((row) => row.study_instance_uid === currentStudy());
      list.replaceChildren(
        ...mine.map((row) => {
          const li = document.createElement("li");
          const label = document.createElement("span");
          label.textContent = `Link ${row.id}, expires ${new Date(row.expires_at).toLocaleString()}`;
          const revoke = document.createElement("button");
          revoke.type = "button";
          revoke.dataset.testid = "share-revoke";
          revoke.textContent = "Revoke";
          revoke.setAttribute("aria-label", `Revoke link ${row.id}`);
          revoke.addEventListener("click", async () => {
            try {
              await call(`/shares/${encodeURIComponent(row.id)}`, { method: "DELETE" });
              fresh.hidden = true;
              await refresh();
            } catch (error) {
              fail(error);
            }
          });
          li.append(label, revoke);
          return li;
        }),
      );
      if (mine.length === 0) list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "None" }));
    } catch (error) {
      fail(error);
    }
  }

  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    panel.hidden = !open;
    if (open) refresh();
  });
  create.addEventListener("click", async () => {
    try {
      const body = { study_instance_uid: currentStudy(), expires_in: Number(expiry.value) };
      const made = await (await call("/shares", { method: "POST", body })).json();
      url.value = shareLink(made.token);
      fresh.hidden = false;
      copied.textContent = "";
      url.focus();
      url.select();
      await refresh();
    } catch (error) {
      fail(error);
    }
  });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(url.value);
      copied.textContent = "Copied";
    } catch {
      url.select();
      copied.textContent = "Press Ctrl+C to copy";
    }
  });
  return {
    reset() {
      toggle.setAttribute("aria-expanded", "false");
      panel.hidden = true;
      fresh.hidden = true;
      url.value = "";
    },
  };
}
