// Showing text that users and models wrote, safely.
//
// Plain text goes in with textContent (never parsed as HTML). Markdown goes through marked with
// raw HTML escaped — markup a model writes shows as text — and then through DOMPurify, whose
// Trusted Types policy is the only one the chat pages' CSP allows to produce HTML.

import DOMPurify from "../vendor/dompurify/purify.es.mjs";
import { Marked } from "../vendor/marked/marked.esm.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const markdown = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    // Raw HTML in the text is shown, not interpreted.
    html({ text, block }) {
      const shown = escapeHtml(block ? text.replace(/\n+$/, "") : text);
      return block ? `<p>${shown.replace(/\n/g, "<br>")}</p>\n` : shown;
    },
    // Images would load from anywhere the text points (tracking pixels): show them as links.
    image({ href, text }) {
      return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`;
    },
  },
});

const PURIFY_CONFIG = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "img", "svg", "math", "form", "input", "button", "textarea", "select", "iframe", "video", "audio"],
  FORBID_ATTR: ["style", "id", "name"],
  RETURN_TRUSTED_TYPE: true,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** Render `text` into `element`: Markdown (sanitised) or plain text with its line breaks. */
export function renderText(element, text, { markdown: asMarkdown = true } = {}) {
  if (asMarkdown) {
    element.classList.add("markdown");
    element.classList.remove("plain");
    element.innerHTML = DOMPurify.sanitize(markdown.parse(text), PURIFY_CONFIG);
  } else {
    element.classList.add("plain");
    element.classList.remove("markdown");
    element.textContent = text;
  }
}
