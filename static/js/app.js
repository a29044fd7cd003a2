// Starts NHS.UK frontend's components; loaded as a module (no inline script: the CSP forbids it).
import { initAll } from "../vendor/nhsuk-frontend/nhsuk-frontend.min.js";

initAll();
document.body.addEventListener("htmx:afterSettle", (event) => initAll({ scope: event.detail.elt }));
