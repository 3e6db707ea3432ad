// The API reference: Swagger UI (bundled from the swagger-ui-dist npm package, served from
// this origin, so the dashboard's CSP holds) rendering the server's own /openapi.json.
// "Try it out" sends requests from the browser to this origin; paste a token with Authorize.
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#api-reference",
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    tryItOutEnabled: false,
  });
});
