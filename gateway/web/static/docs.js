// Starts Swagger UI on /docs (a file of its own: the page's CSP allows no inline script).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No badge from the public validator service: the page makes no request elsewhere.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis]
  });
})();
