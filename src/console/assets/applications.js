// applications.js: OAuth clients and API-key apps in one searchable, paginated list
// (GET /admin/v1/applications), with status and source.

import { api, query } from "./api.js";
import { badge, h, mount } from "./dom.js";

const PAGE = 20;
// Cursors of the pages before this one, for "Previous" (reset by a new search).
let earlier = [];

function link(params) {
  return `#/applications${query(params)}`;
}

function row(item) {
  const kind = item.kind === "app" ? "API-key app" : `OAuth client (${item.type})`;
  return h(
    "tr",
    {},
    h(
      "td",
      { "data-label": "Name" },
      h("a", { href: `#/applications/${item.kind}/${encodeURIComponent(item.client_id)}` }, item.name || item.client_id),
    ),
    h("td", { "data-label": "Client ID" }, h("code", {}, item.client_id)),
    h("td", { "data-label": "Kind" }, kind),
    h("td", { "data-label": "Status" }, badge(item.status)),
    h("td", { "data-label": "Source" }, item.source === "config" ? "config file" : "run time"),
  );
}

function searchForm(ctx, q, kind) {
  const input = h("input", { id: "search", name: "q", type: "search", value: q, autocomplete: "off" });
  const select = h(
    "select",
    { id: "kind", name: "kind" },
    h("option", { value: "" }, "all"),
    h("option", { value: "client" }, "OAuth clients"),
    h("option", { value: "app" }, "API-key apps"),
  );
  select.value = kind;
  const form = h(
    "form",
    { class: "toolbar", role: "search" },
    h("div", { class: "field" }, h("label", { for: "search" }, "Search by name or client ID"), input),
    h("div", { class: "field" }, h("label", { for: "kind" }, "Kind"), select),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    earlier = [];
    ctx.go(link({ q: input.value.trim(), kind: select.value }));
  });
  return form;
}

function pager(ctx, q, kind, cursor, next) {
  const prev = earlier.length ? earlier[earlier.length - 1] : null;
  const nav = h("nav", { class: "pager", "aria-label": "Pages of applications" });
  if (cursor) {
    nav.append(
      h("button", {
        type: "button",
        onclick: () => {
          earlier.pop();
          ctx.go(link({ q, kind, cursor: prev }));
        },
      }, "Previous page"),
    );
  }
  if (next) {
    nav.append(
      h("button", {
        type: "button",
        onclick: () => {
          earlier.push(cursor || "");
          ctx.go(link({ q, kind, cursor: next }));
        },
      }, "Next page"),
    );
  }
  return nav;
}

function empty(q) {
  return q
    ? h("p", { class: "empty" }, `Nothing matches “${q}”. Try part of a name or a client ID.`)
    : h("p", { class: "empty" }, "No applications yet. Create one to get a client ID and its secret.");
}

export async function applicationsPage(ctx, params) {
  const q = params.get("q") || "";
  const kind = params.get("kind") || "";
  const cursor = params.get("cursor") || "";
  if (!cursor) earlier = [];
  const page = await api.get(`/admin/v1/applications${query({ q, kind, cursor, limit: PAGE })}`);
  if (!ctx.alive()) return;
  const create = ctx.canWrite()
    ? h("a", { class: "button primary", href: "#/applications/new" }, "New application")
    : h("p", { class: "hint" }, "Read-only token: creating needs a write token.");
  const table = page.items.length
    ? h(
        "table",
        { class: "list" },
        h("caption", {}, q ? `Applications matching “${q}”` : "Applications"),
        h(
          "thead",
          {},
          h("tr", {}, ...["Name", "Client ID", "Kind", "Status", "Source"].map((c) => h("th", { scope: "col" }, c))),
        ),
        h("tbody", {}, page.items.map(row)),
      )
    : empty(q);
  mount(
    ctx.main,
    h("div", { class: "page-head" }, h("h1", {}, "Applications"), create),
    searchForm(ctx, q, kind),
    table,
    pager(ctx, q, kind, cursor, page.next_cursor),
  );
}
