// The documents page: add text/Markdown files or pasted text to a collection
// (POST /api/v1/embed/add), list collections and their documents, delete documents and whole collections.

import { api, errorTitle } from "./api.js";
import { confirmDialog, setBusy } from "./ui.js";

const $ = (id) => document.getElementById(id);
const root = $("documents");
const MAX_CHARS = Number(root.dataset.maxTextChars) || 100_000;
const MAX_BATCH = Number(root.dataset.maxBatch) || 64;
const TEXT_FILE = /\.(txt|md|markdown)$/i;

const els = {
  form: $("upload-form"),
  collection: $("collection-name"),
  names: $("collection-names"),
  files: $("files"),
  dropZone: $("drop-zone"),
  pasteTitle: $("paste-title"),
  pasteText: $("paste-text"),
  button: $("upload-button"),
  uploadStatus: $("upload-status"),
  collections: $("collection-list"),
  collectionsEmpty: $("collections-empty"),
  documentsCard: $("documents-card"),
  documentsTitle: $("documents-title"),
  documents: $("document-list"),
  documentsEmpty: $("documents-empty"),
  documentsStatus: $("documents-status"),
};

let shown = null; // {name, owner, mine} of the collection whose documents are listed

function status(element, text, kind = "") {
  element.textContent = text;
  element.className = `status ${kind}`.trim();
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

// --- adding ------------------------------------------------------------------------------------
async function readDocuments() {
  const documents = [];
  for (const file of els.files.files) {
    if (!TEXT_FILE.test(file.name) && !file.type.startsWith("text/")) {
      throw new Error(`“${file.name}” is not a text or Markdown file (.txt, .md).`);
    }
    const text = await file.text();
    if (!text.trim()) throw new Error(`“${file.name}” is empty.`);
    if (text.length > MAX_CHARS) {
      throw new Error(`“${file.name}” has ${text.length.toLocaleString()} characters; the limit is ${MAX_CHARS.toLocaleString()}.`);
    }
    documents.push({ text, metadata: { title: file.name, filename: file.name } });
  }
  const pasted = els.pasteText.value;
  if (pasted.trim()) {
    if (pasted.length > MAX_CHARS) {
      throw new Error(`The pasted text has ${pasted.length.toLocaleString()} characters; the limit is ${MAX_CHARS.toLocaleString()}.`);
    }
    const title = els.pasteTitle.value.trim() || pasted.trim().split("\n")[0].slice(0, 80);
    documents.push({ text: pasted, metadata: { title } });
  }
  if (!documents.length) throw new Error("Choose a file or paste some text first.");
  if (documents.length > MAX_BATCH) throw new Error(`Add at most ${MAX_BATCH} documents at once.`);
  return documents;
}

async function upload(event) {
  event.preventDefault();
  const collection = els.collection.value.trim();
  if (!collection) {
    status(els.uploadStatus, "Name the collection to add to.", "error");
    els.collection.focus();
    return;
  }
  let documents;
  try {
    documents = await readDocuments();
  } catch (error) {
    status(els.uploadStatus, error.message, "error");
    return;
  }
  setBusy(els.button, true);
  status(els.uploadStatus, `Adding ${plural(documents.length, "document")}… (the first upload also loads the embedding model)`);
  try {
    const result = await api("/api/v1/embed/add", { method: "POST", body: { documents, collection } });
    const added = result.created.length;
    const skipped = result.skipped.length;
    let text = `Added ${plural(added, "document")} to “${result.collection}”`;
    if (result.chunks) text += ` (${plural(result.chunks, "passage")})`;
    if (skipped) text += `; ${plural(skipped, "document")} already there`;
    els.form.reset();
    els.collection.value = result.collection;
    await loadCollections();
    await showDocuments({ name: result.collection, owner: null, mine: true });
    status(els.uploadStatus, `${text}.`, "ok");
  } catch (error) {
    status(els.uploadStatus, `${errorTitle(error)}: ${error.message}`, "error");
  } finally {
    setBusy(els.button, false);
  }
}

// --- listing -----------------------------------------------------------------------------------
async function loadCollections() {
  let body;
  try {
    body = await api("/api/v1/embed/collections");
  } catch (error) {
    status(els.documentsStatus, `${errorTitle(error)}: ${error.message}`, "error");
    return;
  }
  els.collections.replaceChildren();
  els.names.replaceChildren();
  els.collectionsEmpty.hidden = body.results.length > 0;
  for (const collection of body.results) {
    if (collection.mine) els.names.append(Object.assign(document.createElement("option"), { value: collection.name }));
    const item = document.createElement("li");
    const name = Object.assign(document.createElement("span"), { className: "name", textContent: collection.name });
    const info = document.createElement("span");
    info.className = "muted small";
    info.textContent = `${plural(collection.documents, "document")}${collection.mine ? "" : ` · shared by ${collection.owner}`}`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = "Show documents";
    button.setAttribute("aria-label", `Show documents of ${collection.name}`);
    const ref = { name: collection.name, owner: collection.mine ? null : collection.owner, mine: collection.mine };
    button.setAttribute("aria-pressed", String(shown?.name === ref.name && shown?.owner === ref.owner));
    button.addEventListener("click", () => showDocuments(ref));
    item.append(name, info, button);
    if (collection.mine) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "danger subtle";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", `Delete collection ${collection.name}`);
      remove.addEventListener("click", () => deleteCollection(collection));
      item.append(remove);
    }
    els.collections.append(item);
  }
}

async function showDocuments(collection) {
  shown = collection;
  status(els.documentsStatus, "");
  for (const button of els.collections.querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.getAttribute("aria-label") === `Show documents of ${collection.name}`));
  }
  const query = collection.owner ? `?owner=${encodeURIComponent(collection.owner)}&limit=100` : "?limit=100";
  let body;
  try {
    body = await api(`/api/v1/embed/collections/${encodeURIComponent(collection.name)}/documents${query}`);
  } catch (error) {
    els.documentsCard.hidden = false;
    status(els.documentsStatus, `${errorTitle(error)}: ${error.message}`, "error");
    return;
  }
  els.documentsCard.hidden = false;
  els.documentsTitle.textContent = `Documents in “${collection.name}”`;
  els.documents.replaceChildren();
  els.documentsEmpty.hidden = body.results.length > 0;
  for (const doc of body.results) els.documents.append(documentItem(doc, collection));
  if (body.count > body.results.length) {
    status(els.documentsStatus, `Showing the newest ${body.results.length} of ${body.count}.`);
  }
}

function documentItem(doc, collection) {
  const item = document.createElement("li");
  item.dataset.id = doc.id;
  const title = Object.assign(document.createElement("span"), { className: "document-title", textContent: doc.title });
  const actions = document.createElement("span");
  if (collection.mine) {
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger subtle";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete ${doc.title}`);
    remove.addEventListener("click", () => deleteDocument(doc, collection));
    actions.append(remove);
  }
  const snippet = Object.assign(document.createElement("p"), { className: "document-snippet", textContent: doc.snippet });
  const meta = document.createElement("span");
  meta.className = "document-meta";
  const added = new Date(doc.created).toLocaleString();
  meta.textContent = `${doc.chars.toLocaleString()} characters · ${plural(Math.max(doc.chunks, 1), "passage")} · added ${added}`;
  item.append(title, actions, snippet, meta);
  return item;
}

async function deleteDocument(doc, collection) {
  const ok = await confirmDialog({
    title: "Delete this document?",
    text: `“${doc.title}” will be removed from “${collection.name}” and from search.`,
  });
  if (!ok) return;
  let outcome;
  try {
    await api(`/api/v1/embed/documents/${doc.id}`, { method: "DELETE" });
    outcome = [`Deleted “${doc.title}”.`, "ok"];
  } catch (error) {
    outcome = [`${errorTitle(error)}: ${error.message}`, "error"];
  }
  await loadCollections();
  await showDocuments(collection);
  status(els.documentsStatus, ...outcome);
}

async function deleteCollection(collection) {
  const ok = await confirmDialog({
    title: "Delete this collection?",
    text: `“${collection.name}” and its ${plural(collection.documents, "document")} will be deleted and removed from search.`,
  });
  if (!ok) return;
  let outcome;
  try {
    const result = await api(`/api/v1/embed/collections/${encodeURIComponent(collection.name)}`, { method: "DELETE" });
    outcome = [`Deleted “${result.collection}” and ${plural(result.documents, "document")}.`, "ok"];
    if (shown?.mine && shown.name === collection.name) {
      shown = null;
      els.documentsCard.hidden = true;
    }
  } catch (error) {
    outcome = [`${errorTitle(error)}: ${error.message}`, "error"];
  }
  await loadCollections();
  // The card may be hidden now: the outcome shows in the upload form's status, which is always visible.
  status(els.documentsCard.hidden ? els.uploadStatus : els.documentsStatus, ...outcome);
}

// --- drag and drop -----------------------------------------------------------------------------
function wireDropZone() {
  const zone = els.dropZone;
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer?.files?.length) els.files.files = event.dataTransfer.files;
  });
}

els.form.addEventListener("submit", upload);
wireDropZone();
loadCollections().then(() => {
  root.dataset.ready = "true";
});
