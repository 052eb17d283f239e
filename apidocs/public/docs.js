// The API reference: Swagger UI (vendored, pinned) over this server's own /openapi.json, with
// "Try it out" on and the bearer-token field of the Authorize button. Nothing is loaded from
// elsewhere: no CDN, no online validator, the token stays in this page's memory.
window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
  persistAuthorization: false,
  displayRequestDuration: true,
  defaultModelsExpandDepth: 0,
  docExpansion: "list",
  filter: true,
  validatorUrl: null,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
