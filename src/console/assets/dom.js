// dom.js: building the page from data without HTML strings: text always goes in as text
// (never parsed), events are listeners (the CSP forbids inline handlers).

// h("button", {class: "x", onclick: fn}, "text", child, ...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v);
    } else if (k === "value") {
      el.value = v;
    } else if (k === "checked") {
      el.checked = Boolean(v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// An SVG element (the chart).
export function svg(tag, attrs = {}) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

// Replaces the content of `main` and moves focus to its heading (screen readers and keyboards
// land on the new page, not on the link that led there).
export function mount(main, ...children) {
  main.replaceChildren();
  append(main, children);
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

// A labelled status badge.
export function badge(status) {
  return h("span", { class: `badge badge-${status}` }, status);
}

// An error box with an optional retry.
export function errorBox(message, retry) {
  return h(
    "div",
    { class: "error-box", role: "alert" },
    h("p", {}, message),
    retry ? h("button", { type: "button", onclick: retry }, "Try again") : null,
  );
}

// Unix seconds as a local date and time.
export function when(secs) {
  if (!secs) return "";
  return new Date(secs * 1000).toLocaleString();
}

// Copies `text`; falls back to selecting `input` when the clipboard API is not allowed.
export async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (input) {
      input.focus();
      input.select();
      try {
        return document.execCommand("copy");
      } catch {
        return false;
      }
    }
    return false;
  }
}
