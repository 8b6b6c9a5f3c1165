// Builds ../dist: the workspace and store pages, then widget.js, then puts back the committed
// placeholder (vite empties the folder) and checks the widget's gzipped size.
import { build } from 'vite'
import { writeFileSync, readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'
import { dirname, resolve } from 'node:path'

const here = dirname(fileURLToPath(import.meta.url))
const dist = resolve(here, '../../dist')
const placeholder = `This folder holds the built front end (agent workspace, manager screens, demo store, widget.js),
embedded into the shopdesk binary. Only this placeholder is committed, so a fresh clone builds
and tests before any npm step; \`make run\` and \`make ui\` fill the folder (npm ci + vite build).
`
await build({ configFile: resolve(here, '../vite.config.ts'), logLevel: 'error' })
await build({ configFile: resolve(here, '../vite.widget.config.ts'), logLevel: 'error' })
writeFileSync(resolve(dist, 'placeholder.txt'), placeholder)
const gz = gzipSync(readFileSync(resolve(dist, 'widget.js'))).length
console.log(`widget.js: ${gz} bytes gzipped (limit 40960)`)
