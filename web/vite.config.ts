// The dashboard is served by the API at `/`; in development Vite proxies /api to a local server.
import { defineConfig, loadEnv } from "vite";

export default defineConfig(({ mode }) => ({
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 400 },
  server: { proxy: { "/api": loadEnv(mode, ".", "DISTILLERY_").DISTILLERY_API ?? "http://127.0.0.1:8000" } },
}));
