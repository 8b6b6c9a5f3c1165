// The workspace (app/) and the demo store (store/) are one multi-page build into ../dist; the
// widget has its own framework-free build (vite.widget.config.ts).
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import { resolve } from 'node:path'

export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: resolve(import.meta.dirname, '../dist'),
    emptyOutDir: true,
    rollupOptions: {
      input: {
        app: resolve(import.meta.dirname, 'app/index.html'),
        store: resolve(import.meta.dirname, 'store/index.html'),
        product: resolve(import.meta.dirname, 'store/product.html'),
        orders: resolve(import.meta.dirname, 'store/orders.html'),
      },
    },
  },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.ts'],
  },
})
