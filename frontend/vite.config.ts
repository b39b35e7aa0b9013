import { defineConfig } from "vitest/config";

export default defineConfig({
  // Relative asset URLs: dist/ works from any static server and any path.
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
  test: { include: ["test/**/*.test.ts"], environment: "node" },
});
