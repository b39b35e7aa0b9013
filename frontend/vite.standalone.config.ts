// The standalone visualizer: src/standalone.ts as one IIFE script and one CSS file in
// exformer/client/_static/, which exformer.client.views inlines into a self-contained HTML document
// (a result's save_html and _repr_html_). `npm run build:standalone` (paths are relative to
// frontend/, where npm runs its scripts).

import { defineConfig } from "vite";

export default defineConfig({
  // Only our own files: no public/ dir, no index.html.
  publicDir: false,
  build: {
    outDir: "../exformer/client/_static",
    emptyOutDir: false, // outside frontend/: overwrite our two files, delete nothing else
    sourcemap: false,
    minify: true,
    target: "es2020",
    lib: {
      entry: "src/standalone.ts",
      formats: ["iife"],
      name: "exformerViews",
      fileName: () => "exformer-views.js",
      cssFileName: "exformer-views",
    },
  },
});
