// Starts NHS.UK frontend's components and reports failed htmx requests; loaded as a module
// (no inline script: the CSP forbids it).
import { initAll } from "../vendor/nhsuk-frontend/nhsuk-frontend.min.js";

initAll();
document.body.addEventListener("htmx:afterSettle", (event) => {
  initAll({ scope: event.detail.elt });
  // A swapped form replaces the button that had focus: put keyboard users back where they work,
  // on the error summary if there is one (NHS.UK's component focuses it), else the first field.
  const target = event.detail.target;
  if (target && target.id === "add-case" && !target.querySelector(".nhsuk-error-summary")) {
    const first = target.querySelector("#id_nhs_number");
    if (first) first.focus();
  }
});

// htmx 2 does not swap error responses: without this a coordinator could believe a change was
// saved when the server refused it or could not be reached.
const problem = document.getElementById("request-problem");
const problemText = document.getElementById("request-problem-text");

function showProblem(message) {
  if (!problem || !problemText) return;
  problemText.textContent = message;
  // Focus moves once, when the banner appears: a poll failing every few seconds must not keep
  // pulling the keyboard away from where the user is working.
  const appearing = problem.hidden;
  problem.hidden = false;
  if (appearing) problem.focus();
}

// A background poll (hx-headers X-Background-Poll, e.g. the live meeting, the letters' progress)
// saves nothing: its failure says the page is out of date, and it must not hide the banner of
// a change that failed a moment before.
function isPoll(event) {
  const config = event.detail.requestConfig;
  return Boolean(config && config.headers && config.headers["X-Background-Poll"] === "1");
}

document.body.addEventListener("htmx:responseError", (event) => {
  const status = event.detail.xhr.status;
  if (isPoll(event)) {
    showProblem(`This page could not be brought up to date: the server answered with an error (${status}). Reload the page.`);
  } else if (status === 403) {
    showProblem("You are not allowed to make that change, or the page had expired. Reload the page and try again.");
  } else if (status === 404) {
    showProblem("That item no longer exists or is not on your teams' lists. Reload the page.");
  } else {
    showProblem(`The change was not saved: the server answered with an error (${status}). Reload the page and try again.`);
  }
});
document.body.addEventListener("htmx:sendError", (event) => {
  if (isPoll(event)) {
    showProblem("This page could not be brought up to date: the server could not be reached. Check your connection; it will try again.");
  } else {
    showProblem("The change was not saved: the server could not be reached. Check your connection and try again.");
  }
});
document.body.addEventListener("htmx:beforeRequest", (event) => {
  if (problem && !isPoll(event)) problem.hidden = true;
});
