// Fails when widget.js, gzipped, is 40 KiB or more: the buyer widget must stay small.
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
const LIMIT = 40 * 1024
const n = gzipSync(readFileSync(new URL('../../dist/widget.js', import.meta.url)), { level: 9 }).length
const ok = n < LIMIT
console.log(`${ok ? 'ok  ' : 'FAIL'} widget.js is ${n} bytes gzipped (limit ${LIMIT})`)
process.exit(ok ? 0 : 1)
