// After `vite build`: the API reference page at dist/docs (our page and initializer, and
// Swagger UI's bundle and stylesheet from node_modules; nothing is downloaded at build time).
import { copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const here = dirname(new URL(import.meta.url).pathname);
const swagger = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
const out = join(here, "dist", "docs");
mkdirSync(out, { recursive: true });
for (const file of ["index.html", "init.js"]) copyFileSync(join(here, "docs-page", file), join(out, file));
for (const file of ["swagger-ui-bundle.js", "swagger-ui.css"]) copyFileSync(join(swagger, file), join(out, file));
