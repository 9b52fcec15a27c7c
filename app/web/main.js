// Start-up and navigation: who is asking decides what is shown. A share link (#share=<token>) opens
// its one study read-only; otherwise GET /auth/me answers for the cookie (or single-user mode), and a
// 401 shows the sign-in form.

import { ApiError, DICOMWEB, getJson, isShare, login, logout, signedIn, useShareToken, whoAmI } from "./api.js";
import { setUpActions } from "./actions.js";
import { setUpShare } from "./share.js";
import { setUpStudies } from "./studies.js";
import { setUpStudy } from "./study.js";
import { setUpUpload } from "./upload.js";
import { setUpViewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const sections = ["login", "upload", "studies", "study"];

function only(...visible) {
  for (const id of sections) $(id).hidden = !visible.includes(id);
}

function notify(message) {
  $("notice").textContent = message;
  $("notice").hidden = !message;
}

function fail(error) {
  if (error instanceof ApiError && error.status === 401) {
    notify(isShare() ? "This link is no longer valid (it expired or was revoked)." : "Please sign in again.");
    if (!isShare()) showLogin();
    else only();
    return;
  }
  if (error instanceof ApiError && error.status === 403 && !isShare() && !signedIn()) {
    notify("This action needs a fresh sign-in: sign out and in again.");
    return;
  }
  notify(error instanceof ApiError ? error.message : `Something went wrong: ${error.message ?? error}`);
}

const viewer = setUpViewer({ fail });
const study = setUpStudy({ viewer, fail, onGone: () => showList("The study has no more instances.") });
setUpActions({
  currentInstance: () => viewer.instance(),
  currentStudy: () => study.current(),
  onDeleted: () => study.open(study.current()),
  fail,
});
const share = setUpShare({ currentStudy: () => study.current(), fail });
const studies = setUpStudies({
  fail,
  open: (uid) => {
    notify("");
    share.reset();
    only("study");
    study.open(uid);
  },
});
setUpUpload({ onDone: () => studies.load() });

function showLogin() {
  only("login");
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login-username").focus();
}

function showHome(me) {
  only("upload", "studies");
  $("who").textContent = me ? `Signed in as ${me.username}` : "";
  $("logout").hidden = !signedIn();
  studies.load();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await login($("login-username").value, $("login-password").value);
    $("login-password").value = "";
    notify("");
    showHome(await whoAmI());
  } catch (error) {
    $("login-error").textContent = error.status === 401 ? "Wrong user name or password." : error.message;
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await logout();
  } catch {
    // the session is dropped on this side either way
  }
  notify("");
  showLogin();
});

function showList(message = "") {
  viewer.clear();
  notify(message);
  only("upload", "studies");
  studies.load();
}

$("back").addEventListener("click", () => showList());

async function start() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("share");
  if (token) {
    useShareToken(token);
    document.body.classList.add("shared");
    $("who").textContent = "Shared study";
    try {
      const [first] = await getJson(`${DICOMWEB}/studies?limit=1`);
      if (!first) throw new ApiError(404, "The shared study is no longer available.");
      only("study");
      await study.open(first["0020000D"].Value[0]);
    } catch (error) {
      fail(error);
    }
    return;
  }
  try {
    const me = await whoAmI();
    if (me) showHome(me);
    else showLogin();
  } catch (error) {
    fail(error);
  }
}

start();
