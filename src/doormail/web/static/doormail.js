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

  function showError(form, field, message, focus = true, label = null) {
    let target = field ? form.querySelector(`[data-error-for="${CSS.escape(field)}"]`) : null;
    let text = message;
    if (!target) {
      target = form.querySelector('[data-error-for="_form"]');
      text = field ? `${label || field}: ${message}` : message;
      // Several problems of fields elsewhere are listed together.
      if (!target.hidden && target.textContent) text = `${target.textContent}; ${text}`;
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
        if (focus) control.focus();
      }
    } else if (focus) {
      target.focus?.();
    }
  }

  // Every bad field of a refused request (the API's `errors`), the first one focused.
  function showErrors(form, error) {
    const every = error.errors && error.errors.length ? error.errors : [error];
    every.forEach((problem, index) =>
      showError(form, problem.field, problem.message, index === 0, problem.label));
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
      const given = { kind, subject: subject.value, body: body.value };
      const query = new URLSearchParams(given).toString();
      try {
        // Long templates go in a POST body: a URL has a length limit.
        const response = query.length < 4000
          ? await api(`/api/templates/preview?${query}`)
          : await api("/api/templates/preview", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify(given),
          });
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
        frame.srcdoc = shown.html ?? "";
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
    const warningList = panel.querySelector("[data-test-warnings]");
    const address = form.querySelector("#f-test-to");
    const remembered = sessionStorage.getItem("doormail.test_to");
    if (remembered && !address.value) address.value = remembered;

    function setState(value) {
      state.textContent = value;
      state.dataset.testState = value;
      panel.dataset.state = value;
    }

    // Beside the result: settings that will keep event mail from going out.
    function showWarnings(warnings) {
      warningList.replaceChildren(
        ...warnings.map((warning) => {
          const item = document.createElement("li");
          item.textContent = warning.message;
          item.dataset.warningFor = warning.field;
          return item;
        }),
      );
      warningList.hidden = warnings.length === 0;
    }

    function addLine(entry) {
      const item = document.createElement("li");
      const stage = document.createElement("span");
      stage.className = "stage";
      stage.textContent = entry.stage || "";
      item.append(stage, " ", entry.message || "");
      if (entry.stage === "hint") item.classList.add("hint");
      else if (/fail|error/i.test(entry.stage || "")) item.classList.add("failed");
      log.append(item);
      log.scrollTop = log.scrollHeight;
    }

    // The stream sends each log line as a "log" event and, when the run is over, an "end"
    // event with its state. Should the connection drop, the run's status fills in the rest.
    function follow(id) {
      let seen = 0;
      let finished = false;
      const path = `/api/smtp/test/${encodeURIComponent(id)}`;
      // The UI's labels in the hints ("CA Certificate"), not the settings' keys.
      const stream = new EventSource(`${path}/events?labels=ui`);

      function finish(value, warnings) {
        finished = true;
        stream.close();
        setState(value);
        showWarnings(warnings || []);
        button.disabled = false;
      }

      stream.addEventListener("log", (event) => {
        if (finished) return;
        seen += 1;
        addLine(JSON.parse(event.data));
      });
      stream.addEventListener("end", (event) => {
        const end = JSON.parse(event.data);
        if (!finished) finish(end.state || "failed", end.warnings);
      });
      stream.onerror = async () => {
        if (finished) return;
        stream.close();
        try {
          const response = await api(`${path}?labels=ui`);
          const run = await response.json();
          (run.log || []).slice(seen).forEach(addLine);
          seen = Math.max(seen, (run.log || []).length);
          if (run.state && run.state !== "running") finish(run.state, run.warnings);
          else setTimeout(() => { if (!finished) follow(id); }, 1000);
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
      showWarnings([]);
      panel.hidden = false;
      setState("saving");
      button.disabled = true;
      sessionStorage.setItem("doormail.test_to", address.value);
      try {
        const saved = await fetch(form.getAttribute("action"), {
          method: "POST",
          body: new FormData(form),
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        if (!saved.ok) {
          showErrors(form, await errorOf(saved));
          setState("not saved");
          button.disabled = false;
          return;
        }
        const { secrets } = await saved.json();
        for (const [path, set] of Object.entries(secrets || {})) {
          const box = form.querySelector(`[data-field="${CSS.escape(path)}"]`);
          const badge = box?.querySelector("[data-secret-state]");
          if (badge) {
            badge.textContent = set ? "set" : "not set";
            badge.className = `badge ${set ? "on" : "off"}`;
          }
          const input = box?.querySelector("input[type=password]");
          if (input) {
            input.value = "";
            input.placeholder = set ? "set, leave empty to keep" : "not set";
          }
        }
        setState("running");
        const started = await api("/api/smtp/test", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ to: address.value.trim() }),
        });
        if (!started.ok) {
          const error = await errorOf(started);
          if (started.status === 429) {
            // Other Apply & Test runs fill every place: nothing is wrong with this form.
            addLine({ stage: "busy", message: error.message });
            setState("busy");
          } else {
            showError(form, error.field === "to" || !error.field ? "to" : error.field, error.message);
            setState("failed");
          }
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
    const status = document.getElementById("camera-status");
    let timer = null;
    let current = null;

    let generation = 0;

    async function load() {
      const mine = ++generation;
      const chosen = resolution.value;
      const [width, height] = chosen.split("x");
      try {
        const response = await api(`/api/camera/snapshot?width=${width}&height=${height}`, {
          headers: { Accept: "image/jpeg" },
        });
        if (!response.ok) throw new Error((await errorOf(response)).message);
        const blob = await response.blob();
        if (mine !== generation) return; // a newer request is on its way
        if (current) URL.revokeObjectURL(current);
        current = URL.createObjectURL(blob);
        await new Promise((resolve) => {
          image.onload = resolve;
          image.onerror = resolve;
          image.src = current;
        });
        image.width = Number(width);
        image.height = Number(height);
        problem.hidden = true;
        image.dataset.loaded = String(Date.now());
        image.dataset.camera = response.headers.get("X-Doormail-Camera") || "";
        image.dataset.resolution = chosen;
      } catch (error) {
        problem.textContent = `No snapshot: ${error.message || error}`;
        problem.hidden = false;
      }
      await showStatus();
    }

    const answers = {
      none: "No camera is set: the mails carry an N/A picture.",
      "no-answer": "The camera did not answer in time: this is the N/A picture the mails would carry.",
    };

    async function showStatus() {
      let text = answers[image.dataset.camera] || "";
      let failing = false;
      try {
        const response = await api("/api/camera/status");
        if (response.ok) {
          const camera = await response.json();
          if (camera.source !== "none") {
            const last = camera.last_frame_at
              ? `, last picture ${new Date(camera.last_frame_at * 1000).toLocaleTimeString()}`
              : "";
            text = `Camera ${camera.state}${last}; ${camera.frames} pictures buffered.`;
            if (camera.error) text += ` Last error: ${camera.error}`;
            failing = camera.state === "failing";
          }
        }
      } catch (_) { /* the picture itself says enough */ }
      status.textContent = text;
      // A camera that fails is an error to see, not grey help text.
      status.className = failing ? "camera-failing" : "help";
      status.setAttribute("role", failing ? "alert" : "status");
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

  // -- outbox: mail being queued or sent updates itself ----------------------------------------

  function setupLiveOutbox() {
    const pending = (el) => ["queued", "sending"].includes(el.dataset.status);
    const live = [...document.querySelectorAll("[data-outbox-item][data-status]")].filter(pending);
    if (!live.length) return;
    const started = Date.now();

    async function poll() {
      for (const el of live.filter(pending)) {
        try {
          const response = await api(`/api/outbox/${encodeURIComponent(el.dataset.outboxItem)}`);
          if (!response.ok) continue;
          const item = await response.json();
          if (item.status === el.dataset.status) continue;
          if (el.dataset.reloadWhenDone !== undefined && !pending({ dataset: item })) {
            window.location.reload();
            return;
          }
          el.dataset.status = item.status;
          const shown = el.querySelector(".status");
          if (shown) {
            shown.textContent = item.status;
            shown.className = `status status-${item.status}`;
          }
          const reply = el.querySelector("[data-reply]");
          if (reply) reply.textContent = item.smtp_reply || item.last_error || "";
          const attempts = el.querySelector("[data-attempts]");
          if (attempts) attempts.textContent = item.attempts;
        } catch (_) { /* try again on the next round */ }
      }
      if (live.some(pending) && Date.now() - started < 10 * 60 * 1000) setTimeout(poll, 1000);
    }
    setTimeout(poll, 1000);
  }

  // -- events: the first page follows the events as they arrive and their mails as they go ------

  function setupLiveEvents() {
    const list = document.getElementById("events-list");
    if (!list || list.dataset.firstPage !== "true") return;
    const news = document.getElementById("events-news");
    const newest = () => list.querySelector("[data-event-id]")?.dataset.eventId || "";

    async function poll() {
      if (!document.hidden) {
        try {
          // The page itself, rendered by the server with the same filters: one way to show it.
          const response = await fetch(window.location.href, { credentials: "same-origin" });
          if (response.ok) {
            const fresh = new DOMParser()
              .parseFromString(await response.text(), "text/html")
              .getElementById("events-list");
            if (fresh && fresh.innerHTML !== list.innerHTML) {
              const before = newest();
              list.innerHTML = fresh.innerHTML;
              if (newest() !== before) news.textContent = "New events arrived.";
            }
          }
        } catch (_) { /* try again on the next round */ }
      }
      setTimeout(poll, 2000);
    }
    setTimeout(poll, 2000);
  }

  // -- confirmations ---------------------------------------------------------------------------

  function setupConfirmations() {
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  // On a phone the tab bar is one row that scrolls: the current tab is brought into view.
  function showCurrentTab() {
    const current = document.querySelector('.tabs a[aria-current="page"]');
    const row = current?.closest("ul");
    if (!row || row.scrollWidth <= row.clientWidth) return;
    row.scrollLeft = current.offsetLeft - (row.clientWidth - current.offsetWidth) / 2;
  }

  // -- devices: each source's status, live ------------------------------------------------------

  function showStatus(element, status) {
    const set = (name, text) => {
      const cell = element.querySelector(`[data-field="${name}"]`);
      if (cell) cell.textContent = text;
    };
    const state = element.querySelector('[data-field="state"]');
    if (state) state.className = `status status-${status.state}`;
    set("state", status.state);
    set("since", status.since || "");
    set("last_event_at", status.last_event_at || "");
    set("events_received", String(status.events_received));
    const error = status.last_error;
    set("last_error", error ? `${error.stage}: ${error.message} — ${error.hint}` : "");
  }

  function setupLiveDevices() {
    const watched = document.querySelectorAll("[data-device-status]");
    if (!watched.length) return;
    const refresh = async () => {
      for (const element of watched) {
        try {
          const response = await api(element.dataset.deviceStatus);
          if (response.ok) showStatus(element, await response.json());
        } catch (_) { /* the next round tries again */ }
      }
    };
    setInterval(refresh, 2000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    showCurrentTab();
    document.querySelectorAll(".message[data-preview-kind]").forEach(setupMessage);
    const form = document.getElementById("settings-form");
    if (form) setupApplyAndTest(form);
    setupSnapshot();
    setupFilePickers();
    setupConfirmations();
    setupLiveOutbox();
    setupLiveEvents();
    setupLiveDevices();
  });
})();
