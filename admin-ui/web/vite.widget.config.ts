// widget.js: one self-contained IIFE, no framework, appended to ../dist by scripts/build.mjs.
import { defineConfig } from 'vite'
import { resolve } from 'node:path'

export default defineConfig({
  build: {
    outDir: resolve(import.meta.dirname, '../dist'),
    emptyOutDir: false,
    lib: { entry: resolve(import.meta.dirname, 'src/widget/widget.ts'), name: 'ShopdeskWidget', formats: ['iife'], fileName: () => 'widget.js' },
    minify: true,
  },
})
