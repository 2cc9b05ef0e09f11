// The documents page: add files (POST /api/v1/embed/files, with upload progress) or pasted text
// (POST /api/v1/embed/add) to a collection, list collections and their documents, delete documents
// and whole collections.

import { api, csrfToken, errorFrom, errorTitle, networkError } from "./api.js";
import { confirmDialog, setBusy } from "./ui.js";

const $ = (id) => document.getElementById(id);
const root = $("documents");
const MAX_CHARS = Number(root.dataset.maxTextChars) || 100_000;
const MAX_FILE_BYTES = Number(root.dataset.maxFileBytes) || 20 * 1024 * 1024;

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
  progress: $("upload-progress"),
  progressLabel: $("upload-label"),
  progressBar: $("upload-bar"),
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
// Files go one request each to POST /api/v1/embed/files (the server reads PDF, DOCX, HTML, Markdown
// and text, and refuses a bad file saying why); pasted text goes to POST /api/v1/embed/add.

function pastedDocument() {
  const pasted = els.pasteText.value;
  if (!pasted.trim()) return null;
  if (pasted.length > MAX_CHARS) {
    throw new Error(`The pasted text has ${pasted.length.toLocaleString()} characters; the limit is ${MAX_CHARS.toLocaleString()}.`);
  }
  const title = els.pasteTitle.value.trim() || pasted.trim().split("\n")[0].slice(0, 80);
  return { text: pasted, metadata: { title } };
}

function megabytes(bytes) {
  return `${(bytes / (1024 * 1024)).toLocaleString(undefined, { maximumFractionDigits: 1 })} MB`;
}

function showProgress(label, fraction) {
  els.progress.hidden = false;
  els.progressLabel.textContent = label;
  if (fraction === null) els.progressBar.removeAttribute("value"); // indeterminate: the server is working
  else els.progressBar.value = Math.round(fraction * 100);
}

/** POST one file as multipart with upload progress (fetch cannot report it); resolves to the JSON body. */
function sendFile(file, collection, uploadId, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("collection", collection);
    form.append("upload_id", uploadId);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/embed/files");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.upload.addEventListener("load", () => onProgress(1));
    xhr.addEventListener("error", () => reject(networkError()));
    xhr.addEventListener("load", async () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(JSON.parse(xhr.responseText));
        return;
      }
      const headers = { "Content-Type": xhr.getResponseHeader("Content-Type") || "text/plain" };
      const retryAfter = xhr.getResponseHeader("Retry-After");
      if (retryAfter) headers["Retry-After"] = retryAfter;
      reject(await errorFrom(new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText, headers })));
    });
    xhr.send(form);
  });
}

const STAGES = { extracting: "Reading", encoding: "Indexing", storing: "Saving", done: "Saving" };

/** While the server works on an upload, show how far it is (GET /api/v1/embed/files/progress/{id}). */
function watchServer(uploadId, name) {
  let stopped = false;
  const poll = async () => {
    while (!stopped) {
      await new Promise((resolve) => setTimeout(resolve, 700));
      if (stopped) return;
      let state;
      try {
        state = await api(`/api/v1/embed/files/progress/${encodeURIComponent(uploadId)}`);
      } catch {
        continue; // not started yet, or another worker holds it: keep the indeterminate bar
      }
      if (stopped) return;
      const label = `${STAGES[state.stage] ?? "Indexing"} “${name}”`;
      if (state.stage === "encoding" && state.total) {
        showProgress(`${label}: ${state.done.toLocaleString()} of ${plural(state.total, "passage")}…`, state.done / state.total);
      } else {
        showProgress(`${label}…`, null);
      }
    }
  };
  poll();
  return () => {
    stopped = true;
  };
}

// crypto.randomUUID needs a secure context; a site served over plain HTTP on a LAN has none.
function newUploadId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function fileOutcome(result) {
  const parts = [plural(result.chunks, "passage")];
  if (result.pages) parts.push(plural(result.pages, "page"));
  if (!result.created) return `“${result.filename}” is already there`;
  const replaced = result.replaced.length ? ", replacing the earlier upload" : "";
  return `Added “${result.filename}” (${parts.join(", ")})${replaced}`;
}

async function upload(event) {
  event.preventDefault();
  const collection = els.collection.value.trim();
  if (!collection) {
    status(els.uploadStatus, "Name the collection to add to.", "error");
    els.collection.focus();
    return;
  }
  const files = [...els.files.files];
  let pasted;
  try {
    pasted = pastedDocument();
  } catch (error) {
    status(els.uploadStatus, error.message, "error");
    return;
  }
  if (!files.length && !pasted) {
    status(els.uploadStatus, "Choose a file or paste some text first.", "error");
    return;
  }
  setBusy(els.button, true);
  status(els.uploadStatus, "");
  const done = [];
  const failed = [];
  for (const [i, file] of files.entries()) {
    const of = files.length > 1 ? ` (${i + 1} of ${files.length})` : "";
    if (file.size > MAX_FILE_BYTES) {
      failed.push(`“${file.name}” has ${megabytes(file.size)}; the limit is ${megabytes(MAX_FILE_BYTES)}.`);
      continue;
    }
    showProgress(`Uploading “${file.name}”${of}…`, 0);
    const uploadId = newUploadId();
    let stopWatching = () => {};
    try {
      const result = await sendFile(file, collection, uploadId, (fraction) => {
        if (fraction < 1) {
          showProgress(`Uploading “${file.name}”${of}… ${Math.round(fraction * 100)}%`, fraction);
          return;
        }
        // Sent: the server now extracts the text and encodes it (the first upload also loads the model).
        showProgress(`Reading and indexing “${file.name}”${of}…`, null);
        stopWatching();
        stopWatching = watchServer(uploadId, file.name);
      });
      done.push(fileOutcome(result));
    } catch (error) {
      failed.push(error.field === "file" ? `${error.message}.` : `“${file.name}”: ${errorTitle(error)}: ${error.message}`);
    } finally {
      stopWatching();
    }
  }
  if (pasted) {
    showProgress("Adding the pasted text…", null);
    try {
      const result = await api("/api/v1/embed/add", { method: "POST", body: { documents: [pasted], collection } });
      done.push(result.created.length ? "Added the pasted text" : "The pasted text is already there");
    } catch (error) {
      failed.push(`The pasted text: ${errorTitle(error)}: ${error.message}`);
    }
  }
  els.progress.hidden = true;
  if (done.length) {
    els.form.reset();
    els.collection.value = collection;
    await loadCollections();
    await showDocuments({ name: collection, owner: null, mine: true });
  }
  const summary = [...done.map((line) => `${line}.`), ...failed].join(" ");
  status(els.uploadStatus, summary, failed.length ? "error" : "ok");
  setBusy(els.button, false);
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
  const pages = doc.metadata?.pages ? ` · ${plural(doc.metadata.pages, "page")}` : "";
  meta.textContent = `${doc.chars.toLocaleString()} characters${pages} · ${plural(Math.max(doc.chunks, 1), "passage")} · added ${added}`;
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
