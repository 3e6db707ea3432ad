import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API to a local `eshtarek serve` (scripts/run).
const api = process.env.ESHTAREK_API ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", sourcemap: false, chunkSizeWarningLimit: 1200 },
  server: {
    proxy: {
      "/v1": api,
      "/healthz": api,
      "/openapi.json": api,
      "/docs": api,
      "/demo.json": api,
    },
  },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
});
