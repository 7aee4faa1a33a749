// app.js: the console's entry: sign-in with an operator token, the hash router
// (#/dashboard, #/applications, #/applications/new, #/applications/KIND/ID, #/audit) and the
// error states every page shares (API down, token refused, read-only token).

import { api, ApiError, clearToken, setToken, token } from "./api.js";
import { h, mount, errorBox } from "./dom.js";
import { applicationsPage } from "./applications.js";
import { createPage } from "./create.js";
import { detailPage } from "./detail.js";
import { auditPage } from "./audit.js";
import { dashboardPage, startSampling, stopSampling } from "./dashboard.js";

const main = document.getElementById("main");
const session = { operator: null, guard: null, generation: 0 };

// What every page gets: where to draw, who is signed in, how to move on and how to fail.
function context() {
  const generation = ++session.generation;
  return {
    main,
    session,
    canWrite: () => session.operator && session.operator.scope === "write",
    alive: () => generation === session.generation,
    go: (hash) => {
      if (location.hash === hash) route();
      else location.hash = hash;
    },
    fail: (err, retry) => fail(err, retry),
  };
}

function fail(err, retry) {
  if (err instanceof ApiError && err.status === 401) {
    signOut("The gateway no longer accepts this token. Sign in again.");
    return;
  }
  mount(main, h("h1", {}, "Something went wrong"), errorBox(err.message || String(err), retry));
}

function signInPage(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "token-help token-error",
  });
  const error = h("p", { id: "token-error", class: "field-error", role: "alert" }, message || "");
  const form = h(
    "form",
    { class: "card narrow", novalidate: true, "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to the console"),
    h("label", { for: "token" }, "Operator token"),
    input,
    h(
      "p",
      { id: "token-help", class: "hint" },
      "A token from [[admin.tokens]] (portcullis new-admin-token). It is kept in this tab only and sent as Authorization: Bearer.",
    ),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) {
      error.textContent = "Paste an operator token first.";
      input.focus();
      return;
    }
    setToken(t);
    try {
      await signIn();
      if (!location.hash || location.hash === "#/signin") location.hash = "#/dashboard";
      else route();
    } catch (err) {
      clearToken();
      error.textContent = err.message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  });
  mount(main, form);
  input.focus();
}

async function signIn() {
  session.operator = await api.get("/admin/v1/operator");
  document.getElementById("who-name").textContent =
    `${session.operator.name} (${session.operator.scope === "write" ? "read and write" : "read only"})`;
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  const banner = document.getElementById("banner");
  banner.hidden = session.operator.scope === "write";
  banner.textContent =
    "Read-only token: you can look at everything here; creating, rotating, suspending and deleting need a write token.";
  startSampling();
}

function signOut(message) {
  clearToken();
  stopSampling();
  session.operator = null;
  document.getElementById("banner").hidden = true;
  signInPage(message);
}

const PAGES = [
  [/^#\/dashboard$/, (ctx) => dashboardPage(ctx)],
  [/^#\/applications\/new$/, (ctx) => createPage(ctx)],
  [/^#\/applications\/(client|app)\/([^/?]+)$/, (ctx, m) => detailPage(ctx, m[1], decodeURIComponent(m[2]))],
  [/^#\/applications(?:\?(.*))?$/, (ctx, m) => applicationsPage(ctx, new URLSearchParams(m[1] || ""))],
  [/^#\/audit$/, (ctx) => auditPage(ctx)],
];

async function route() {
  if (!token()) return signInPage();
  if (!session.operator) {
    try {
      await signIn();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return signOut(err.message);
      if (err instanceof ApiError && err.status === 0) {
        // The gateway did not answer: keep the token and offer to try again.
        return mount(main, h("h1", {}, "The admin API is not answering"), errorBox(err.message, () => route()));
      }
      clearToken();
      return signInPage(err.message);
    }
  }
  const hash = location.hash || "#/dashboard";
  for (const link of document.querySelectorAll("#nav a")) {
    const here = hash.startsWith(`#/${link.dataset.page}`);
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [re, page] of PAGES) {
    const m = re.exec(hash);
    if (m) {
      const ctx = context();
      try {
        await page(ctx, m);
      } catch (err) {
        if (ctx.alive()) ctx.fail(err, () => route());
      }
      return;
    }
  }
  location.hash = "#/dashboard";
}

// session.guard = {message, hash} while a secret is on screen and not yet acknowledged.
window.addEventListener("hashchange", () => {
  if (session.guard && !window.confirm(session.guard.message)) {
    history.replaceState(null, "", session.guard.hash);
    return;
  }
  session.guard = null;
  route();
});
window.addEventListener("beforeunload", (e) => {
  if (session.guard) e.preventDefault();
});
document.getElementById("signout").addEventListener("click", () => signOut("Signed out."));
route();
