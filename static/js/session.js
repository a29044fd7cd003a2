// The session timeout warning on signed-in pages (accounts/session_limits.py): shortly before the
// session would end for lack of activity, a modal dialog (templates/components/session_dialog.jinja)
// offers to stay signed in; when the time runs out the page goes to the sign-in page, so no patient
// data stays on a screen left alone. Loaded as a module (no inline script: the CSP forbids it).
//
// Polling never counts as activity: the status checks here, and every htmx poll, send
// X-Background-Poll: 1. The timer is re-synced from the status endpoint (and from other tabs of the
// same browser), so every tab agrees on when the session ends.

const BACKGROUND_POLL = { "X-Background-Poll": "1" };
const dialog = document.getElementById("session-timeout");

// Polling elements should carry hx-headers='{"X-Background-Poll": "1"}' themselves; this catches
// any htmx "every" poll that forgot it.
document.body.addEventListener("htmx:configRequest", (event) => {
  const trigger = event.detail.elt.getAttribute("hx-trigger") || "";
  if (/(^|,)\s*every\s/.test(trigger)) Object.assign(event.detail.headers, BACKGROUND_POLL);
});

if (dialog) watchSession(dialog);

function watchSession(dialog) {
  const { statusUrl, stayUrl, loginUrl, logoutUrl } = dialog.dataset;
  const countdown = dialog.querySelector("[data-session-countdown]");
  const idleNote = dialog.querySelector("[data-session-idle-note]");
  const absoluteNote = dialog.querySelector("[data-session-absolute-note]");
  const problem = dialog.querySelector("[data-session-problem]");
  const announcement = dialog.querySelector("[data-session-announcement]");
  const stayButton = dialog.querySelector("[data-session-stay]");
  const csrfToken = dialog.querySelector("input[name=csrfmiddlewaretoken]").value;
  const otherTabs = "BroadcastChannel" in window ? new BroadcastChannel("mdt-session") : null;

  // Deadlines are in Date.now() time: unlike timers, it keeps counting while a laptop sleeps.
  let idleDeadline = null;
  let absoluteDeadline = null;
  let idleTimeout = 0;
  let warningBefore = 0;
  let lastSyncAttempt = 0;
  let syncing = null;
  let leaving = false;
  let absoluteMode = false;
  let absoluteAcknowledged = false;
  let announcedStep = null;

  function apply(status) {
    const now = Date.now();
    idleDeadline = now + status.idle_seconds_left * 1000;
    absoluteDeadline = now + status.absolute_seconds_left * 1000;
    idleTimeout = status.idle_timeout_seconds * 1000;
    warningBefore = status.warning_seconds * 1000;
  }

  // Resolves to "ok", "signed-out" (the page is leaving) or "failed" (server not reached).
  function sync() {
    if (syncing) return syncing;
    lastSyncAttempt = Date.now();
    syncing = (async () => {
      try {
        const response = await fetch(statusUrl, {
          headers: { ...BACKGROUND_POLL, Accept: "application/json" },
          cache: "no-store",
          credentials: "same-origin",
        });
        if (response.status === 401 || response.redirected) {
          leave(response.headers.get("HX-Redirect"));
          return "signed-out";
        }
        if (!response.ok) return "failed";
        apply(await response.json());
        return "ok";
      } catch {
        return "failed";
      } finally {
        syncing = null;
      }
    })();
    return syncing;
  }

  function leave(url) {
    if (leaving) return;
    leaving = true;
    otherTabs?.postMessage("signed-out");
    // Take the patient data off the screen now: the sign-in page may take a moment to load, or
    // not load at all if the network is down.
    if (dialog.open) dialog.close();
    document.body.replaceChildren();
    const here = location.pathname + location.search;
    location.replace(url || `${loginUrl}?next=${encodeURIComponent(here)}`);
  }

  async function expire() {
    const result = await sync();
    // The server ends the session and sends the sign-in page's address ("signed-out"); when it
    // cannot be reached, go anyway. "ok" means another tab kept the session alive.
    if (result === "failed") leave(null);
    else tick();
  }

  function inWords(seconds) {
    const minutes = Math.floor(seconds / 60);
    const rest = seconds % 60;
    const parts = [];
    if (minutes) parts.push(`${minutes} minute${minutes === 1 ? "" : "s"}`);
    if (rest || !minutes) parts.push(`${rest} second${rest === 1 ? "" : "s"}`);
    return parts.join(" ");
  }

  // Screen readers hear the time left when the dialog opens, then at each whole minute and at
  // 30 seconds: not every second.
  function announcementStep(seconds) {
    return seconds > 30 ? Math.ceil(seconds / 60) * 60 : 30;
  }

  function showTimeLeft(milliseconds) {
    const seconds = Math.max(0, Math.ceil(milliseconds / 1000));
    countdown.textContent = inWords(seconds);
    const step = announcementStep(seconds);
    if (announcedStep !== null && step !== announcedStep) {
      announcement.textContent = `You will be signed out in ${inWords(Math.min(step, seconds))}.`;
    }
    announcedStep = step;
  }

  function open(milliseconds, absolute) {
    absoluteMode = absolute;
    idleNote.hidden = absolute;
    absoluteNote.hidden = !absolute;
    stayButton.textContent = absolute ? "Continue" : "Stay signed in";
    problem.hidden = true;
    announcement.textContent = "";
    announcedStep = null;
    showTimeLeft(milliseconds);
    dialog.showModal();
    stayButton.focus();
  }

  async function stay() {
    if (absoluteMode) {
      // Nothing can extend a session past its absolute limit: this only closes the warning.
      absoluteAcknowledged = true;
      dialog.close();
      return;
    }
    stayButton.disabled = true;
    try {
      const response = await fetch(stayUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.status === 401) {
        leave(response.headers.get("HX-Redirect"));
        return;
      }
      if (!response.ok) throw new Error(`status ${response.status}`);
      apply(await response.json());
      otherTabs?.postMessage("active");
      if (dialog.open) dialog.close();
    } catch {
      problem.textContent = "We could not keep you signed in. Check your connection and choose \"Stay signed in\" again.";
      problem.hidden = false;
      if (!dialog.open) dialog.showModal();
      stayButton.focus();
    } finally {
      stayButton.disabled = false;
    }
  }

  function tick() {
    if (leaving) return;
    const now = Date.now();
    if (idleDeadline === null) {
      // The first status check failed: keep asking (the server enforces the limits regardless).
      if (now - lastSyncAttempt > 10000) sync();
      return;
    }
    const absolute = absoluteDeadline <= idleDeadline;
    const left = Math.min(idleDeadline, absoluteDeadline) - now;
    if (left <= 0) {
      if (!syncing) expire();
      return;
    }
    const warn = left <= warningBefore && !(absolute && absoluteAcknowledged);
    if (warn && !dialog.open) {
      // Another tab may have kept the session alive: ask before warning.
      if (now - lastSyncAttempt > 2000) {
        sync().then(tick);
        return;
      }
      open(left, absolute);
    } else if (warn) {
      showTimeLeft(left);
      if (now - lastSyncAttempt > 15000) sync();
    } else if (dialog.open) {
      dialog.close(); // kept alive elsewhere
    }
  }

  // The user's own htmx requests are activity: the server has moved the idle deadline.
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const headers = event.detail.requestConfig?.headers || {};
    const status = event.detail.xhr?.status;
    if (headers["X-Background-Poll"] === "1" || !status || status === 401) return;
    idleDeadline = Date.now() + idleTimeout;
    otherTabs?.postMessage("active");
  });

  // After the session has ended elsewhere (signed out in another browser, session removed),
  // login_required redirects an htmx request to the sign-in page; the XMLHttpRequest follows the
  // redirect and htmx would swap the sign-in form into the fragment, leaving the rest of the page
  // on screen. Send the whole page to sign in instead.
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const landed = event.detail.xhr.responseURL;
    if (landed && new URL(landed).pathname === loginUrl) {
      event.detail.shouldSwap = false;
      leave(null);
    }
  });

  stayButton.addEventListener("click", stay);
  // Escape must not dismiss the warning without keeping the session: it counts as staying.
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault();
    stay();
  });
  document.addEventListener("submit", (event) => {
    if (new URL(event.target.action, location.href).pathname === logoutUrl) {
      otherTabs?.postMessage("signed-out");
    }
  });
  if (otherTabs) {
    otherTabs.addEventListener("message", (event) => {
      if (event.data === "active" && idleDeadline !== null) {
        idleDeadline = Date.now() + idleTimeout;
        tick();
      } else if (event.data === "signed-out") {
        sync();
      }
    });
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) sync().then(tick);
  });
  // A page restored from the back-forward cache after signing out must not show patient data.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) location.reload();
  });

  sync().then(tick);
  setInterval(tick, 1000);
}
