// detail.js: one application: its settings, rotate with overlap, suspend and reactivate, delete
// behind a confirmation that names what stops working, and its audit trail.

import { api, ApiError, itemPath } from "./api.js";
import { badge, h, mount, when } from "./dom.js";
import { loadTrail } from "./audit.js";
import { showSecret } from "./create.js";

const OVERLAPS = [
  ["0", "no overlap: the old one stops now"],
  ["3600", "1 hour"],
  ["86400", "1 day"],
  ["604800", "7 days"],
];

function facts(kind, item) {
  const rows = [
    ["Client ID", h("code", {}, item.client_id)],
    ["Kind", kind === "app" ? "API-key app" : `OAuth client (${item.type})`],
    ["Status", badge(item.status)],
    ["Source", item.source === "config" ? "config file" : "run time (admin API)"],
    ["Scopes", item.scopes && item.scopes.length ? item.scopes.join(" ") : "none"],
  ];
  if (kind === "client") {
    rows.push(["Grant types", (item.grant_types || []).join(", ") || "none"]);
    rows.push(["Redirect URIs", (item.redirect_uris || []).join(" ") || "none"]);
  }
  if (item.created_at) rows.push(["Created", when(item.created_at)]);
  if (item.updated_at) rows.push(["Updated", when(item.updated_at)]);
  const previous = item.previous_secret_expires_at || item.previous_key_expires_at;
  if (previous) rows.push(["Previous secret works until", when(previous)]);
  return h("dl", { class: "facts" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// What deleting or suspending stops, in words.
function consequences(kind, id) {
  return kind === "app"
    ? `Requests with client ID ${id} and its API key are refused (401) from the next request on, on every instance.`
    : `Client ${id} can no longer get tokens: its secret, its live access tokens and its refresh tokens are refused from the next request on, on every instance.`;
}

function deleteDialog(ctx, kind, item, report) {
  const id = item.client_id;
  const typed = h("input", { id: "confirm-id", type: "text", autocomplete: "off", spellcheck: "false" });
  const confirm = h("button", { type: "submit", class: "danger", disabled: true }, `Delete ${id}`);
  const cancel = h("button", { type: "button" }, "Cancel");
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", { id: "delete-title" }, `Delete ${item.name || id}?`),
    h("p", { id: "delete-what" }, consequences(kind, id), " The ID is never reused. This cannot be undone."),
    h("label", { for: "confirm-id" }, `Type ${id} to confirm`),
    typed,
    h("div", { class: "actions" }, confirm, cancel),
  );
  const dialog = h("dialog", { "aria-labelledby": "delete-title", "aria-describedby": "delete-what" }, form);
  typed.addEventListener("input", () => {
    confirm.disabled = typed.value.trim() !== id;
  });
  cancel.addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.del(itemPath(kind, id));
      dialog.close();
      ctx.go("#/applications");
    } catch (err) {
      dialog.close();
      report(err);
    }
  });
  return dialog;
}

function actions(ctx, kind, item, report) {
  const id = item.client_id;
  if (item.source === "config") {
    return h("p", { class: "note" }, "Defined in the config file: read-only here. Change it in the file and reload.");
  }
  if (!ctx.canWrite()) {
    return h("p", { class: "note" }, "Read-only token: rotating, suspending and deleting need a write token.");
  }
  const box = h("section", { class: "card", "aria-labelledby": "actions-title" }, h("h2", { id: "actions-title" }, "Actions"));
  if (!(kind === "client" && item.type === "public")) {
    const overlap = h("select", { id: "overlap" }, OVERLAPS.map(([v, l]) => h("option", { value: v }, l)));
    overlap.value = "3600";
    const rotate = h("button", { type: "button", id: "rotate" }, kind === "app" ? "Rotate API key" : "Rotate secret");
    rotate.addEventListener("click", async () => {
      rotate.disabled = true;
      try {
        const r = await api.post(`${itemPath(kind, id)}/rotate`, { overlap_seconds: Number(overlap.value) });
        showSecret(ctx, { kind, id, name: item.name, secret: r.client_secret || r.api_key, rotated: true });
      } catch (err) {
        rotate.disabled = false;
        report(err);
      }
    });
    box.append(h("div", { class: "field inline" }, h("label", { for: "overlap" }, "Keep the old one working for"), overlap, rotate));
  }
  const suspended = item.status === "suspended";
  const toggle = h("button", { type: "button", id: "toggle-status", class: suspended ? "" : "warn" }, suspended ? "Reactivate" : "Suspend");
  toggle.addEventListener("click", async () => {
    toggle.disabled = true;
    try {
      await api.patch(itemPath(kind, id), { status: suspended ? "active" : "suspended" });
      ctx.go(location.hash);
    } catch (err) {
      toggle.disabled = false;
      report(err);
    }
  });
  const dialog = deleteDialog(ctx, kind, item, report);
  const del = h("button", { type: "button", id: "delete", class: "danger", onclick: () => dialog.showModal() }, "Delete…");
  box.append(
    h("p", { class: "hint" }, suspended ? "Suspended: every request with this credential is refused until it is reactivated." : `Suspend refuses it at once and can be undone. ${consequences(kind, id)}`),
    h("div", { class: "actions" }, toggle, del),
    dialog,
  );
  return box;
}

export async function detailPage(ctx, kind, id) {
  const item = await api.get(itemPath(kind, id));
  if (!ctx.alive()) return;
  const status = h("div", { id: "action-status", role: "alert" });
  const report = (err) => {
    if (err instanceof ApiError && err.status === 401) return ctx.fail(err);
    status.replaceChildren(h("p", { class: "error-box" }, err.message));
  };
  const trail = h("section", { "aria-labelledby": "trail-title" }, h("h2", { id: "trail-title" }, "Audit trail"));
  const trailBody = h("div", { id: "trail" });
  trail.append(trailBody);
  if (item.source !== "config") {
    await loadTrail(ctx, trailBody, { kind, id }, `Changes to ${id}, oldest first`);
  } else {
    trailBody.append(h("p", { class: "empty" }, "Config-file entries change by editing the file; the audit trail records run-time changes."));
  }
  if (!ctx.alive()) return;
  mount(
    ctx.main,
    h("p", { class: "crumbs" }, h("a", { href: "#/applications" }, "← Applications")),
    h("h1", {}, item.name || id),
    facts(kind, item),
    status,
    actions(ctx, kind, item, report),
    trail,
  );
}
