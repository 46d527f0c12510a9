// doormail settings UI: live previews, placeholder insertion, Apply & Test with its live status,
// the camera snapshot and the certificate file picker. Every page works without this script,
// except the live parts.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  // fetch() on our own API with the session cookie; changes carry the CSRF header.
  function api(url, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("Accept", "application/json");
    if (options.method && options.method !== "GET") headers.set("X-CSRF-Token", csrf);
    return fetch(url, { ...options, headers, credentials: "same-origin" });
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (_) { /* not JSON */ }
    return { field: null, message: `${response.status} ${response.statusText}` };
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  // -- errors at their fields ------------------------------------------------------------------

  function clearErrors(form) {
    form.querySelectorAll("[data-error-for]").forEach((el) => {
      el.hidden = true;
      el.textContent = "";
    });
    form.querySelectorAll(".field.invalid").forEach((el) => el.classList.remove("invalid"));
    form.querySelectorAll('[aria-invalid="true"]').forEach((el) => el.removeAttribute("aria-invalid"));
  }

  function showError(form, field, message) {
    let target = field ? form.querySelector(`[data-error-for="${CSS.escape(field)}"]`) : null;
    let text = message;
    if (!target) {
      target = form.querySelector('[data-error-for="_form"]');
      text = field ? `${field}: ${message}` : message;
    }
    target.textContent = text;
    target.hidden = false;
    const box = target.closest(".field");
    if (box) {
      box.classList.add("invalid");
      const control = box.querySelector("input, select, textarea");
      if (control) {
        control.setAttribute("aria-invalid", "true");
        const details = control.closest("details");
        if (details) details.open = true;
        control.focus();
      }
    } else {
      target.focus?.();
    }
  }

  // -- preview and placeholders ----------------------------------------------------------------

  function setupMessage(box) {
    const kind = box.dataset.previewKind;
    const subject = box.querySelector('[data-editor="subject"]');
    const body = box.querySelector('[data-editor="body"]');
    const shownSubject = box.querySelector("[data-preview-subject]");
    const frame = box.querySelector("[data-preview-body]");
    const problem = box.querySelector("[data-preview-error]");
    let lastEditor = body;
    let generation = 0;

    async function refresh() {
      const mine = ++generation;
      const query = new URLSearchParams({ kind, subject: subject.value, body: body.value });
      try {
        const response = await api(`/api/templates/preview?${query}`);
        if (mine !== generation) return; // a newer keystroke already asked
        if (!response.ok) {
          const error = await errorOf(response);
          problem.textContent = error.message;
          problem.hidden = false;
          return;
        }
        const shown = await response.json();
        problem.hidden = true;
        shownSubject.textContent = shown.subject ?? "";
        frame.srcdoc = shown.html ?? shown.body ?? "";
      } catch (error) {
        if (mine === generation) {
          problem.textContent = `Preview unavailable: ${error}`;
          problem.hidden = false;
        }
      }
    }

    const later = debounce(refresh, 250);
    for (const editor of [subject, body]) {
      editor.addEventListener("input", later);
      editor.addEventListener("focus", () => { lastEditor = editor; });
    }
    box.querySelectorAll("[data-insert]").forEach((button) => {
      button.addEventListener("click", () => {
        const editor = lastEditor;
        const text = button.dataset.insert;
        const start = editor.selectionStart ?? editor.value.length;
        const end = editor.selectionEnd ?? start;
        editor.setRangeText(text, start, end, "end");
        editor.focus();
        editor.dispatchEvent(new Event("input", { bubbles: true }));
      });
    });
    refresh();
  }

  // -- Apply & Test ----------------------------------------------------------------------------

  function setupApplyAndTest(form) {
    const button = form.querySelector("#apply-and-test");
    if (!button) return;
    const panel = form.querySelector("#test-status");
    const state = panel.querySelector("[data-test-state]");
    const log = panel.querySelector("[data-test-log]");
    const address = form.querySelector("#f-test-to");
    const remembered = sessionStorage.getItem("doormail.test_to");
    if (remembered && !address.value) address.value = remembered;

    function setState(value) {
      state.textContent = value;
      state.dataset.testState = value;
      panel.dataset.state = value;
    }

    function addLine(entry) {
      const item = document.createElement("li");
      const stage = document.createElement("span");
      stage.className = "stage";
      stage.textContent = entry.stage || "";
      item.append(stage, " ", entry.message || "");
      if (entry.stage === "failed" || entry.stage === "error") item.classList.add("failed");
      if (entry.hint) {
        const hint = document.createElement("div");
        hint.className = "hint";
        hint.textContent = `What to fix: ${entry.hint}`;
        item.append(hint);
      }
      log.append(item);
      log.scrollTop = log.scrollHeight;
    }

    function follow(id) {
      let seen = 0;
      let finished = false;
      const stream = new EventSource(`/api/smtp/test/${encodeURIComponent(id)}/events`);

      function finish(value) {
        finished = true;
        stream.close();
        setState(value);
        button.disabled = false;
      }

      function take(entry) {
        seen += 1;
        addLine(entry);
        if (entry.state && entry.state !== "running") finish(entry.state);
        else if (entry.stage === "sent" || entry.stage === "failed") finish(entry.stage);
      }

      function handle(event) {
        if (finished) return;
        let entry;
        try { entry = JSON.parse(event.data); } catch (_) { entry = { stage: event.type, message: event.data }; }
        if (entry && Array.isArray(entry.log)) {
          entry.log.slice(seen).forEach(take);
          if (!finished && entry.state && entry.state !== "running") finish(entry.state);
          return;
        }
        take(entry || {});
      }

      stream.onmessage = handle;
      for (const name of ["stage", "log", "state", "done", "end"]) stream.addEventListener(name, handle);
      // The server ends the stream when the test is over; the browser reports that as an
      // error. Ask for the final state so nothing is missed.
      stream.onerror = async () => {
        if (finished) return;
        stream.close();
        try {
          const response = await api(`/api/smtp/test/${encodeURIComponent(id)}`);
          const result = await response.json();
          (result.log || []).slice(seen).forEach((entry) => { if (!finished) take(entry); });
          if (!finished && result.state && result.state !== "running") finish(result.state);
          else if (!finished) setTimeout(() => { if (!finished) follow(id); }, 1000);
        } catch (error) {
          addLine({ stage: "error", message: `lost the connection to doormail: ${error}` });
          finish("failed");
        }
      };
    }

    button.addEventListener("click", async (event) => {
      event.preventDefault();
      clearErrors(form);
      log.replaceChildren();
      panel.hidden = false;
      setState("saving");
      button.disabled = true;
      sessionStorage.setItem("doormail.test_to", address.value);
      try {
        const saved = await fetch(form.action, {
          method: "POST",
          body: new FormData(form),
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        if (!saved.ok) {
          const error = await errorOf(saved);
          showError(form, error.field, error.message);
          setState("not saved");
          button.disabled = false;
          return;
        }
        form.querySelectorAll("input[type=password]").forEach((el) => { el.value = ""; });
        setState("running");
        const started = await api("/api/smtp/test", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ to: address.value.trim() }),
        });
        if (!started.ok) {
          const error = await errorOf(started);
          showError(form, error.field === "to" || !error.field ? "to" : error.field, error.message);
          setState("failed");
          button.disabled = false;
          return;
        }
        const { id } = await started.json();
        follow(id);
      } catch (error) {
        addLine({ stage: "error", message: String(error) });
        setState("failed");
        button.disabled = false;
      }
    });
  }

  // -- camera snapshot -------------------------------------------------------------------------

  function setupSnapshot() {
    const image = document.getElementById("snapshot-image");
    if (!image) return;
    const refresh = document.getElementById("snapshot-refresh");
    const live = document.getElementById("snapshot-live");
    const resolution = document.getElementById("snapshot-resolution");
    const problem = document.getElementById("snapshot-error");
    let timer = null;
    let current = null;

    async function load() {
      const [width, height] = resolution.value.split("x");
      try {
        const response = await api(`/api/camera/snapshot?width=${width}&height=${height}`, {
          headers: { Accept: "image/jpeg" },
        });
        if (!response.ok) throw new Error((await errorOf(response)).message);
        const blob = await response.blob();
        if (current) URL.revokeObjectURL(current);
        current = URL.createObjectURL(blob);
        image.src = current;
        image.width = Number(width);
        image.height = Number(height);
        problem.hidden = true;
        image.dataset.loaded = String(Date.now());
      } catch (error) {
        problem.textContent = `No snapshot: ${error.message || error}`;
        problem.hidden = false;
      }
    }

    refresh.addEventListener("click", load);
    resolution.addEventListener("change", load);
    live.addEventListener("change", () => {
      clearInterval(timer);
      if (live.checked) timer = setInterval(load, 2000);
    });
    load();
  }

  // -- certificate and CSV files: read into the text area, so the form posts text -------------

  function setupFilePickers() {
    document.querySelectorAll("input[type=file][data-fill]").forEach((picker) => {
      picker.addEventListener("change", async () => {
        const target = document.getElementById(picker.dataset.fill);
        if (picker.files.length && target) target.value = await picker.files[0].text();
      });
    });
  }

  // -- confirmations ---------------------------------------------------------------------------

  function setupConfirmations() {
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".message[data-preview-kind]").forEach(setupMessage);
    const form = document.getElementById("settings-form");
    if (form) setupApplyAndTest(form);
    setupSnapshot();
    setupFilePickers();
    setupConfirmations();
  });
})();
