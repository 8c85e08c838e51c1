// Load generator for bench/yjs_relay: rooms of N Yjs clients, each sending a small update at a
// fixed rate, over the y-websocket protocol, against any server given by a URL template.
//
// node loadgen.mjs '{"urls": [...one per client...], "clientsPerRoom": 10, "rate": 2,
//                    "warmupSeconds": 3, "seconds": 10, "drainSeconds": 2}'
//
// Every client has its own Y.Doc and appends a marker "[c<client>:<seq>:<sentMicros>]" to its
// Y.Text; the update it sends carries the marker's UTF-8 bytes whatever server relays (or
// re-encodes) it, so a receiver finds the sender and send time by scanning the bytes, without
// applying the update: the receiving side costs the generator little, and it is the same for
// every server. Latency = receive - send on one monotonic clock (one process). Prints one JSON
// object: deliveries/s in the measured window, latency percentiles, losses, connect failures.
import WebSocket from 'ws'
import * as Y from 'yjs'

const config = JSON.parse(process.argv[2])
const { urls, clientsPerRoom, rate, warmupSeconds, seconds, drainSeconds } = config
const nowMicros = () => Number(process.hrtime.bigint() / 1000n)
const OPEN = Buffer.from('[c')

let measuring = false
let windowStart = 0
let windowEnd = 0
const latencies = []
let deliveries = 0 // received in the window, from updates sent in the window
let expected = 0 // deliveries the window's sent updates should produce
let deliveredLate = 0
let received = 0
let connectFailures = 0
let closedEarly = 0

function varUint (n) {
  const out = []
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7 }
  out.push(n)
  return out
}

class Client {
  constructor (index, url) {
    this.index = index
    this.url = url
    this.doc = new Y.Doc()
    this.text = this.doc.getText('content')
    this.seq = 0
    this.synced = false
    this.lastUpdate = null
    this.doc.on('update', (update) => { this.lastUpdate = update })
  }

  connect () {
    return new Promise((resolve) => {
      const ws = new WebSocket(this.url, { perMessageDeflate: false })
      this.ws = ws
      let settled = false
      const settle = (ok) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if (!ok) connectFailures++
        resolve(ok)
      }
      const timer = setTimeout(() => { settle(false); ws.terminate() }, 15000)
      ws.on('message', (data) => this.onMessage(data, () => settle(true)))
      ws.on('error', () => {})
      ws.on('close', () => {
        if (!this.synced) settle(false)
        else if (!stopping) closedEarly++
      })
      ws.on('open', () => ws.send(Uint8Array.of(0, 0, 1, 0))) // SyncStep1, empty state vector
    })
  }

  onMessage (data, onSynced) {
    if (data[0] !== 0) return // awareness, auth, query: not measured
    const step = data[1]
    if (step === 0) {
      this.ws.send(Uint8Array.of(0, 1, 2, 0, 0)) // SyncStep2: we have nothing yet
    } else if (step === 1 && !this.synced) {
      this.synced = true
      onSynced()
    } else if (step === 2) {
      this.onUpdate(data)
    }
  }

  onUpdate (data) {
    received++
    const now = nowMicros()
    let at = data.indexOf(OPEN)
    while (at !== -1) {
      const end = data.indexOf(0x5d, at) // ']'
      if (end === -1) break
      const [client, , sent] = data.toString('latin1', at + 2, end).split(':').map(Number)
      if (client !== this.index && sent >= windowStart && sent < windowEnd) {
        if (now < windowEnd) {
          deliveries++
          latencies.push((now - sent) / 1000)
        } else {
          deliveredLate++
          latencies.push((now - sent) / 1000)
        }
      }
      at = data.indexOf(OPEN, end)
    }
  }

  send () {
    if (this.ws.readyState !== WebSocket.OPEN) return
    const sent = nowMicros()
    this.text.insert(this.text.length, `[c${this.index}:${this.seq++}:${sent}]`)
    const update = this.lastUpdate
    this.ws.send(Buffer.concat([Uint8Array.of(0, 2, ...varUint(update.length)), update]))
    if (measuring && sent < windowEnd) expected += clientsPerRoom - 1
  }
}

let stopping = false
const clients = urls.map((url, index) => new Client(index, url))
// The first client of every room connects (and syncs) before the others: pycrdt-websocket 0.16
// leaves most clients unanswered when several race to open a room that does not exist yet.
const firsts = clients.filter((client) => client.index % clientsPerRoom === 0)
const others = clients.filter((client) => client.index % clientsPerRoom !== 0)
for (const group of [firsts, others]) {
  for (let i = 0; i < group.length; i += 50) {
    await Promise.all(group.slice(i, i + 50).map((client) => client.connect()))
  }
}
const connected = clients.filter((client) => client.synced)
const interval = 1000 / rate
// Each client sends at fixed times: a random phase, then every interval from it, whenever the
// previous send actually ran. setInterval re-arms from when its callback ran, so one stall (of
// the server's CPU share, of this process) used to put every client it delayed in the same
// phase for good: the offered load came in bursts of twice the rate every interval from then on,
// and the run measured its own history more than the server. Sends a stall delayed go out
// together once, then each client is back on its phase.
const sendOnSchedule = (client, at) => {
  client.timer = setTimeout(() => {
    client.send()
    sendOnSchedule(client, at + interval)
  }, Math.max(0, at - performance.now()))
}
const begin = performance.now()
for (const client of connected) sendOnSchedule(client, begin + Math.random() * interval)

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
await sleep(warmupSeconds * 1000)
windowStart = nowMicros()
windowEnd = windowStart + seconds * 1e6
measuring = true
console.log('window start') // run.py samples the server's CPU and the steal time here
await sleep(seconds * 1000)
measuring = false
console.log('window end')
for (const client of connected) clearTimeout(client.timer)
await sleep(drainSeconds * 1000)
stopping = true
for (const client of clients) client.ws.terminate()

latencies.sort((a, b) => a - b)
const pct = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : null
console.log(JSON.stringify({
  clients: urls.length,
  connected: connected.length,
  connectFailures,
  closedEarly,
  deliveriesPerSecond: deliveries / seconds,
  expectedPerSecond: expected / seconds,
  lost: Math.max(0, expected - deliveries - deliveredLate),
  deliveredLate,
  p50ms: pct(0.5),
  p95ms: pct(0.95),
  p99ms: pct(0.99),
  maxms: latencies.length ? latencies[latencies.length - 1] : null
}))
process.exit(0)
