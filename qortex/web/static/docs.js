// Swagger UI over this coordinator's own document. validatorUrl: null keeps it
// from sending the document to an online validator: nothing leaves the machine.
window.ui = SwaggerUIBundle({
  url: new URL("docs/openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  tryItOutEnabled: false,
  persistAuthorization: false,
});
