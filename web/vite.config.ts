import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';
// @ts-expect-error -- a plain ES module without types, shared with the staleness check
import { sourceHash } from './scripts/source-hash.mjs';

const root = fileURLToPath(new URL('.', import.meta.url));

/** Writes dist/source-hash.txt: what the build was made from (see embed_test.go). */
function sourceHashFile(): Plugin {
  return {
    name: 'herald-source-hash',
    apply: 'build',
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: 'source-hash.txt', source: `${sourceHash(root) as string}\n` });
    },
  };
}

// herald for `npm run dev`: the API and the real-time endpoints are proxied to it.
const herald = process.env.HERALD_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
  root,
  resolve: {
    alias: { '@herald/client': fileURLToPath(new URL('./src/client/index.ts', import.meta.url)) },
  },
  plugins: [sourceHashFile()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    assetsDir: 'assets',
  },
  server: {
    proxy: {
      '/api': { target: herald, changeOrigin: false },
      '/ws': { target: herald, ws: true },
      '/sse': { target: herald },
      '/media': { target: herald },
    },
  },
});
