// Bundle the /demo page's script (yjs + y-websocket) into src/collabgate/http/static/demo.js.
// Run by `make yjs-demo-bundle`; the output is committed, so serving the demo needs no Node.
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))
const result = await build({
  entryPoints: [`${root}src/collabgate/http/demo/demo.js`],
  outfile: `${root}src/collabgate/http/static/demo.js`,
  nodePaths: [fileURLToPath(new URL('./node_modules', import.meta.url))],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  platform: 'browser',
  legalComments: 'eof',
  banner: { js: '/* collabgate /demo bundle: yjs, y-websocket, y-protocols, lib0 (MIT licences at the end). Rebuild: make yjs-demo-bundle */' },
  metafile: true,
  logLevel: 'warning'
})
const bytes = Object.values(result.metafile.outputs).reduce((sum, output) => sum + output.bytes, 0)
console.log(`demo bundle: ${bytes} bytes`)
