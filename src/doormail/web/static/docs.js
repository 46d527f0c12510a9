// The API docs page: Swagger UI (served by doormail) on /openapi.json. Requests made from the
// page carry the session's CSRF token, as the settings pages' requests do, so "Try it out"
// works for a logged-in admin; otherwise Swagger UI's Authorize button takes Basic or a token.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  window.SwaggerUIBundle({
    url: root.dataset.openapi,
    domNode: root,
    deepLinking: true,
    // Swagger UI would otherwise ask an outside validator for a badge.
    validatorUrl: null,
    requestInterceptor: (request) => {
      if (request.method && request.method.toUpperCase() !== "GET") {
        request.headers["X-CSRF-Token"] = csrf;
      }
      return request;
    },
  });
});
