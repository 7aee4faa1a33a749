// create.js: the form that creates an OAuth client or an API-key app, with the API's validation
// messages beside the field they name, and the one-time view of the new secret (copy button and
// an explicit "I have stored it" step), shared with rotation.

import { api, ApiError } from "./api.js";
import { copy, h, mount } from "./dom.js";

const GRANTS = [
  ["client_credentials", "client_credentials (server to server)"],
  ["authorization_code", "authorization_code (users sign in, PKCE)"],
  ["refresh_token", "refresh_token"],
];

function field(id, label, control, hint) {
  control.setAttribute("aria-describedby", `${id}-error${hint ? ` ${id}-hint` : ""}`);
  return h(
    "div",
    { class: "field", "data-field": id },
    h("label", { for: id }, label),
    control,
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
    h("p", { class: "field-error", id: `${id}-error` }),
  );
}

function words(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

function lines(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean);
}

// The form's controls, by API field name.
function controls() {
  return {
    name: h("input", { id: "name", type: "text", autocomplete: "off", "aria-required": "true" }),
    client_id: h("input", { id: "client_id", type: "text", autocomplete: "off", spellcheck: "false" }),
    scopes: h("input", { id: "scopes", type: "text", autocomplete: "off", spellcheck: "false" }),
    type: h(
      "select",
      { id: "type" },
      h("option", { value: "confidential" }, "confidential (has a secret)"),
      h("option", { value: "public" }, "public (no secret: browser or mobile app, PKCE)"),
    ),
    redirect_uris: h("textarea", { id: "redirect_uris", rows: 3, spellcheck: "false" }),
  };
}

function grantBoxes() {
  return GRANTS.map(([value, label]) =>
    h(
      "label",
      { class: "check" },
      h("input", { type: "checkbox", name: "grant_types", value, checked: value === "client_credentials" }),
      label,
    ),
  );
}

function body(kind, c, form) {
  const out = { name: c.name.value.trim() };
  if (c.client_id.value.trim()) out.client_id = c.client_id.value.trim();
  out.scopes = words(c.scopes.value);
  if (kind === "client") {
    out.type = c.type.value;
    out.grant_types = [...form.querySelectorAll("input[name=grant_types]:checked")].map((b) => b.value);
    out.redirect_uris = lines(c.redirect_uris.value);
  }
  return out;
}

function clearErrors(form) {
  for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function showError(form, err, summary) {
  const box = err.field ? form.querySelector(`[data-field="${CSS.escape(err.field)}"]`) : null;
  if (box) {
    box.querySelector(".field-error").textContent = `${err.message}${err.fix ? `: ${err.fix}` : ""}`;
    const control = box.querySelector("input, select, textarea");
    control.setAttribute("aria-invalid", "true");
    control.focus();
  } else {
    summary.textContent = `${err.message}${err.fix ? `: ${err.fix}` : ""}`;
    summary.focus();
  }
}

export async function createPage(ctx) {
  if (!ctx.canWrite()) {
    mount(ctx.main, h("h1", {}, "New application"), h("p", { class: "error-box", role: "alert" }, "This token is read-only: creating needs a write token."));
    return;
  }
  const c = controls();
  const clientOnly = h(
    "div",
    { id: "client-fields" },
    field("type", "Client type", c.type),
    h(
      "fieldset",
      { class: "field", "data-field": "grant_types", "aria-describedby": "grant_types-error" },
      h("legend", {}, "Grant types"),
      grantBoxes(),
      h("p", { class: "field-error", id: "grant_types-error" }),
    ),
    field("redirect_uris", "Redirect URIs", c.redirect_uris, "One per line; exact match, https (http only on 127.0.0.1 or localhost). Needed for authorization_code."),
  );
  const kinds = h(
    "fieldset",
    { class: "field kinds" },
    h("legend", {}, "What to create"),
    h("label", { class: "check" }, h("input", { type: "radio", name: "kind", value: "client", checked: true }), "OAuth client (client ID + secret, gets tokens)"),
    h("label", { class: "check" }, h("input", { type: "radio", name: "kind", value: "app" }), "API-key app (client ID + API key)"),
  );
  const summary = h("p", { class: "field-error", role: "alert", tabindex: "-1", id: "form-error" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create");
  const form = h(
    "form",
    { class: "card", novalidate: true, "aria-labelledby": "create-title" },
    kinds,
    field("name", "Name", c.name, "Shown to operators, e.g. Acme reporting."),
    field("client_id", "Client ID (optional)", c.client_id, "Leave empty for a generated one (pc_… or app_…)."),
    field("scopes", "Scopes", c.scopes, "Separated by spaces, e.g. meetings:read reports:read."),
    clientOnly,
    summary,
    h("div", { class: "actions" }, submit, h("a", { href: "#/applications", class: "button" }, "Cancel")),
  );
  const kind = () => form.querySelector("input[name=kind]:checked").value;
  form.addEventListener("change", (e) => {
    if (e.target.name === "kind") clientOnly.hidden = kind() === "app";
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    summary.textContent = "";
    const k = kind();
    submit.disabled = true;
    try {
      const created = await api.post(k === "app" ? "/admin/v1/apps" : "/admin/v1/clients", body(k, c, form));
      showSecret(ctx, { kind: k, id: created.client_id, name: created.name, secret: created.client_secret || created.api_key, public: !created.client_secret && k === "client" });
    } catch (err) {
      submit.disabled = false;
      if (err instanceof ApiError && err.status === 401) return ctx.fail(err);
      showError(form, err, summary);
    }
  });
  mount(ctx.main, h("h1", { id: "create-title" }, "New application"), form);
}

function copyRow(id, label, value) {
  const input = h("input", { id, type: "text", readonly: true, value, spellcheck: "false", class: "secret" });
  const status = h("span", { class: "copied", role: "status", id: `${id}-copied` });
  const button = h("button", {
    type: "button",
    "aria-describedby": `${id}-copied`,
    onclick: async () => {
      status.textContent = (await copy(value, input)) ? "Copied" : "Select the text and copy it";
    },
  }, `Copy ${label === "Client ID" ? label : label.toLowerCase()}`);
  return h("div", { class: "field" }, h("label", { for: id }, label), h("div", { class: "copy-row" }, input, button), status);
}

// The one-time view of a new secret: it leaves the screen only after "I have stored it".
export function showSecret(ctx, { kind, id, name, secret, public: isPublic, rotated }) {
  const done = h("button", { type: "button", class: "primary", disabled: true }, "Done");
  const stored = h("input", { type: "checkbox", id: "stored" });
  const detail = `#/applications/${kind}/${encodeURIComponent(id)}`;
  const secretName = kind === "app" ? "API key" : "Client secret";
  const parts = [h("h1", {}, rotated ? `New ${secretName.toLowerCase()} for ${name || id}` : `${name || id} is created`)];
  if (isPublic) {
    parts.push(h("p", {}, "A public client has no secret: it gets tokens with authorization_code and PKCE."));
    parts.push(copyRow("new-id", "Client ID", id));
    parts.push(h("a", { class: "button primary", href: detail }, "Done"));
    mount(ctx.main, ...parts);
    return;
  }
  ctx.session.guard = { message: `Leave without storing the ${secretName.toLowerCase()}? It is not shown again.`, hash: location.hash };
  const usage =
    kind === "app"
      ? `curl -H 'X-Client-ID: ${id}' -H 'X-API-Key: ${secret}' "$GATEWAY/your/api-key/route"`
      : `curl -u '${id}:${secret}' -d grant_type=client_credentials "$GATEWAY/oauth2/token"`;
  parts.push(
    h("p", { class: "warning", role: "alert" }, `This ${secretName.toLowerCase()} is shown once and cannot be retrieved again: only its hash is kept. Store it now.`),
    h(
      "div",
      { class: "card" },
      copyRow("new-id", "Client ID", id),
      copyRow("new-secret", secretName, secret),
      h("p", { class: "hint" }, "Try it ($GATEWAY is the gateway's public address, e.g. http://127.0.0.1:8080):"),
      h("pre", {}, h("code", {}, usage)),
      h("label", { class: "check" }, stored, `I have stored the ${secretName.toLowerCase()}`),
      h("div", { class: "actions" }, done),
    ),
  );
  stored.addEventListener("change", () => {
    done.disabled = !stored.checked;
  });
  done.addEventListener("click", () => {
    ctx.session.guard = null;
    ctx.go(detail);
  });
  mount(ctx.main, ...parts);
}

