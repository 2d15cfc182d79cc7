import { defineConfig, loadEnv } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The gateway serves dist/ at / (with SPA fallback) and the API at /api/v1 on the same origin.
// In `npm run dev`, API and WebSocket calls are proxied to a running gateway: FLINT_URL, or the default bind.
export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, '.', 'FLINT_');
  const gateway = env.FLINT_URL || 'http://127.0.0.1:5550';
  return {
    plugins: [svelte()],
    build: {
      outDir: 'dist',
      emptyOutDir: true,
      target: 'es2022',
    },
    server: {
      proxy: {
        '/api': { target: gateway, changeOrigin: true, ws: true, secure: false },
      },
    },
  };
});
