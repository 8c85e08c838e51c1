// Stock Yjs clients (yjs + y-websocket's WebsocketProvider, unchanged) driven over stdin/stdout,
// so that pytest (tests/interop/test_yjs_interop.py) can run them against the gateway side by
// side with collabgate.client.
//
// One JSON request per stdin line: {"id": 1, "op": "open", "peer": "a", ...}; one JSON reply per
// stdout line: {"id": 1, "ok": true, ...} or {"id": 1, "ok": false, "error": "..."}. Requests run
// concurrently; the wait* operations resolve on document or awareness events, with a deadline.
import { createInterface } from 'node:readline'
import { createRequire } from 'node:module'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const require = createRequire(import.meta.url)
const versions = {
  node: process.versions.node,
  yjs: require('yjs/package.json').version,
  'y-websocket': require('y-websocket/package.json').version
}

const peers = new Map() // name → {doc, provider, denied: [reasons], onDenied: [resolve]}

// y-websocket reports an auth message "permission denied" with console.warn only: capture it.
const warn = console.warn
console.warn = (...args) => {
  const text = args.join(' ')
  const match = /^Permission denied to access (\S+)\.\n([\s\S]*)$/.exec(text)
  if (match) {
    for (const p of peers.values()) {
      if (match[1] === p.provider.url) {
        p.denied.push(match[2])
        p.onDenied.splice(0).forEach((resolve) => resolve())
      }
    }
    return
  }
  warn(...args)
}

function reply (message) {
  process.stdout.write(JSON.stringify(message) + '\n')
}

function peer (name) {
  const found = peers.get(name)
  if (!found) throw new Error(`no peer ${name}`)
  return found
}

function until (emitter, event, check, timeoutMs, describe) {
  return new Promise((resolve, reject) => {
    if (check()) return resolve()
    const listener = () => {
      if (check()) {
        clearTimeout(timer)
        emitter.off(event, listener)
        resolve()
      }
    }
    const timer = setTimeout(() => {
      emitter.off(event, listener)
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`))
    }, timeoutMs)
    emitter.on(event, listener)
  })
}

const waitSynced = (p, timeoutMs) => until(p.provider, 'sync', () => p.provider.synced, timeoutMs, () => 'sync')

const ops = {
  // tokenIn "protocol": the token travels as a WebSocket subprotocol, out of the URL.
  async open ({ peer: name, url, room, token, mode, tokenIn = 'query', timeoutMs = 10000 }) {
    const doc = new Y.Doc()
    const params = tokenIn === 'query' ? { token } : {}
    if (mode) params.mode = mode
    const protocols = tokenIn === 'protocol' ? ['collabgate', `bearer.${token}`] : []
    const provider = new WebsocketProvider(url, room, doc, { params, protocols, WebSocketPolyfill: WebSocket, disableBc: true })
    const p = { doc, provider, denied: [], onDenied: [], closes: 0 }
    provider.on('connection-close', () => { p.closes++ })
    peers.set(name, p)
    await waitSynced(p, timeoutMs)
    return { clientId: doc.clientID }
  },
  async insert ({ peer: name, index, text }) {
    const content = peer(name).doc.getText('content')
    content.insert(Math.min(index, content.length), text)
    return {}
  },
  async text ({ peer: name }) {
    return { text: peer(name).doc.getText('content').toString() }
  },
  async waitText ({ peer: name, text, timeoutMs = 10000 }) {
    const p = peer(name)
    const content = p.doc.getText('content')
    await until(p.doc, 'update', () => content.toString() === text, timeoutMs, () => `text ${JSON.stringify(text)}, have ${JSON.stringify(content.toString())}`)
    return {}
  },
  async setAwareness ({ peer: name, field, value }) {
    peer(name).provider.awareness.setLocalStateField(field, value)
    return {}
  },
  async awareness ({ peer: name }) {
    const states = peer(name).provider.awareness.getStates()
    return { states: [...states.entries()].map(([clientId, state]) => ({ clientId, state })) }
  },
  async waitAwareness ({ peer: name, field, value, timeoutMs = 10000 }) {
    const awareness = peer(name).provider.awareness
    const wanted = JSON.stringify(value)
    const has = () => [...awareness.getStates().values()].some((state) => JSON.stringify(state[field]) === wanted)
    await until(awareness, 'change', has, timeoutMs, () => `awareness ${field}=${wanted}, have ${JSON.stringify([...awareness.getStates().values()])}`)
    return {}
  },
  async clearAwareness ({ peer: name }) {
    peer(name).provider.awareness.setLocalState(null)
    return {}
  },
  async closes ({ peer: name }) {
    const p = peer(name)
    return { closes: p.closes, connected: p.provider.wsconnected }
  },
  async disconnect ({ peer: name }) {
    peer(name).provider.disconnect()
    return {}
  },
  async connect ({ peer: name, timeoutMs = 10000 }) {
    const p = peer(name)
    p.provider.connect()
    await waitSynced(p, timeoutMs)
    return {}
  },
  async denied ({ peer: name, timeoutMs = 10000 }) {
    const p = peer(name)
    if (p.denied.length === 0) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, timeoutMs)
        p.onDenied.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return { reasons: p.denied }
  },
  async close ({ peer: name }) {
    const p = peer(name)
    p.provider.destroy()
    p.doc.destroy()
    peers.delete(name)
    return {}
  }
}

createInterface({ input: process.stdin }).on('line', async (line) => {
  let request
  try {
    request = JSON.parse(line)
    const handler = ops[request.op]
    if (!handler) throw new Error(`unknown op ${request.op}`)
    reply({ id: request.id, ok: true, ...(await handler(request)) })
  } catch (error) {
    reply({ id: request && request.id, ok: false, error: String(error && error.message ? error.message : error) })
  }
}).on('close', () => {
  for (const p of peers.values()) p.provider.destroy()
  process.exit(0)
})

reply({ ready: true, versions })
