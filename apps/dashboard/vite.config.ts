import { defineConfig } from 'vite';

// Preact through the automatic JSX runtime of Oxc, Vite 8's transformer: no preset plugin.
export default defineConfig({
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The ingest serves only the files this manifest lists (apps/ingest/src/dashboard).
    manifest: 'manifest.json',
    target: 'es2022',
    sourcemap: false,
    // A strict CSP (`style-src 'self'`, no inline scripts): every asset is a file.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: {
    // `npm run dev` against a local ingest: the API and the stream are proxied.
    proxy: { '/api': { target: 'http://127.0.0.1:8080', changeOrigin: false } },
  },
});
