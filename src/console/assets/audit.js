// audit.js: the audit trail (GET /admin/v1/audit): who changed which credential, how and when;
// the whole trail, or one application's (kind and id filters).

import { api, query } from "./api.js";
import { h, mount, when } from "./dom.js";

// A table of audit records, newest last (the API's order).
export function auditTable(items, caption) {
  if (!items.length) return h("p", { class: "empty" }, "No changes recorded yet.");
  return h(
    "table",
    { class: "list audit" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, ...["When", "Operator", "Action", "Application", "Changed"].map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      {},
      items.map((r) =>
        h(
          "tr",
          {},
          h("td", { "data-label": "When" }, when(r.at)),
          h("td", { "data-label": "Operator" }, r.actor),
          h("td", { "data-label": "Action" }, r.action),
          h("td", { "data-label": "Application" }, h("a", { href: `#/applications/${r.kind}/${encodeURIComponent(r.id)}` }, `${r.kind} ${r.id}`)),
          h("td", { "data-label": "Changed" }, (r.changed || []).join(", ")),
        ),
      ),
    ),
  );
}

// Loads pages of the trail into `box` with a "Show more" button while there are more.
export async function loadTrail(ctx, box, filters, caption) {
  const items = [];
  let cursor = "";
  const more = h("button", { type: "button" }, "Show more");
  const draw = () => box.replaceChildren(auditTable(items, caption), cursor ? more : "");
  const load = async () => {
    const page = await api.get(`/admin/v1/audit${query({ ...filters, cursor, limit: 50 })}`);
    items.push(...page.items);
    cursor = page.next_cursor || "";
    if (ctx.alive()) draw();
  };
  more.addEventListener("click", () => load().catch((err) => ctx.fail(err)));
  await load();
}

export async function auditPage(ctx) {
  const box = h("div", { id: "audit-body" });
  await loadTrail(ctx, box, {}, "Every change, oldest first");
  if (!ctx.alive()) return;
  mount(ctx.main, h("h1", {}, "Audit trail"), h("p", { class: "hint" }, "Who created, changed, rotated, suspended or deleted an application. Secrets never appear here."), box);
}
