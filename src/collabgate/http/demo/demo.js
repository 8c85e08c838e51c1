// Source of /demo/static/demo.js (bundled with yjs and y-websocket by `make yjs-demo-bundle`).
//
// The text travels over /yjs with a stock y-websocket WebsocketProvider, exactly as a hospital
// front-end's Tiptap/CodeMirror binding would use it. Presence and locks, which y-websocket has no
// messages for, travel over a second connection on /ws (the gateway's JSON protocol).
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const params = new URLSearchParams(location.search)
const resourceId = params.get('resource') || 'patient:demo-1'
const userId = params.get('user') || 'user-' + Math.random().toString(36).slice(2, 6)
const role = params.get('role') || 'nurse'
const wsBase = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host
const colours = ['#d1495b', '#00798c', '#edae49', '#66a182', '#8d6cab', '#2e4057']
const colourOf = (name) => colours[[...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7) % colours.length]

const $ = (id) => document.getElementById(id)
const editor = $('editor')
$('resource').textContent = resourceId
$('me').textContent = `${userId} (${role})`

function setStatus (id, text, ok) {
  $(id).textContent = text
  $(id).className = ok ? 'ok' : 'bad'
}

async function fetchToken () {
  if (params.get('token')) return params.get('token')
  const response = await fetch(`/demo/token?sub=${encodeURIComponent(userId)}&role=${encodeURIComponent(role)}`)
  if (!response.ok) throw new Error(`no demo token (${response.status}): start the gateway with development keys, or pass ?token=`)
  return (await response.json()).token
}

// ------------------------------------------------------------------------------ text over /yjs
function bindTextarea (ytext, textarea) {
  // Local edits: the smallest replace between the old and new value, as one transaction.
  textarea.addEventListener('input', () => {
    const before = ytext.toString()
    const after = textarea.value
    let start = 0
    while (start < before.length && start < after.length && before[start] === after[start]) start++
    let endBefore = before.length
    let endAfter = after.length
    while (endBefore > start && endAfter > start && before[endBefore - 1] === after[endAfter - 1]) {
      endBefore--
      endAfter--
    }
    ytext.doc.transact(() => {
      if (endBefore > start) ytext.delete(start, endBefore - start)
      if (endAfter > start) ytext.insert(start, after.slice(start, endAfter))
    }, 'local')
  })
  // Remote edits: each insert and delete applied in place with setRangeText, whose 'preserve'
  // mode moves the caret and selection by what changed before them and leaves them where they
  // are otherwise. Assigning textarea.value instead would put the caret at the end whenever it
  // is not put back, and one keystroke later the writer's own text would continue there, split
  // from what they had typed so far.
  ytext.observe((event, transaction) => {
    if (transaction.origin === 'local') return
    let index = 0
    for (const op of event.delta) {
      if (op.retain) {
        index += op.retain
      } else if (op.insert) {
        textarea.setRangeText(op.insert, index, index, 'preserve')
        index += op.insert.length
      } else if (op.delete) {
        textarea.setRangeText('', index, index + op.delete, 'preserve')
      }
    }
    const text = ytext.toString()
    if (textarea.value !== text) textarea.value = text // never expected: the copy is the document
  })
}

// The token travels as a WebSocket subprotocol, not in the URL: URLs end up in load balancers'
// access logs and browser history. The gateway selects "collabgate".
const tokenProtocols = (token) => ['collabgate', `bearer.${token}`]

function connectYjs (token) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(`${wsBase}/yjs`, resourceId, doc, {
    protocols: tokenProtocols(token),
    disableBc: true // every edit goes through the gateway, even between tabs of one browser
  })
  provider.awareness.setLocalStateField('user', { name: userId, color: colourOf(userId) })
  provider.on('status', ({ status }) => setStatus('yjs-status', status, status === 'connected'))
  provider.on('sync', (synced) => {
    if (synced) setStatus('yjs-status', 'synced', true)
  })
  provider.awareness.on('change', renderUsers)
  bindTextarea(doc.getText('content'), editor)
  window.collabgateDemo = { doc, provider }
  return provider
}

// ------------------------------------------------------------------------------ presence and locks over /ws
const users = new Map() // userId → {userId, name, role, mode}
let lock = null // {holder, expiresAt} of the whole-resource lock
let yjsProvider = null
let ws = null
let refs = 0

function send (frame) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ ...frame, ref: `r${++refs}` }))
}

function renderUsers () {
  const typing = new Map()
  for (const state of yjsProvider ? yjsProvider.awareness.getStates().values() : []) {
    if (state.user && state.user.name) typing.set(state.user.name, state.user.color)
  }
  const list = $('users')
  list.replaceChildren(...[...users.values()].map((user) => {
    const item = document.createElement('li')
    item.dataset.userId = user.userId
    const dot = document.createElement('span')
    dot.className = 'dot'
    if (typing.has(user.userId)) dot.style.background = typing.get(user.userId)
    const name = document.createElement('span')
    name.textContent = user.name || user.userId
    if (user.userId === userId) name.className = 'me'
    const detail = document.createElement('span')
    detail.className = 'muted'
    detail.textContent = `${user.role}, ${user.mode}`
    item.append(dot, name, detail)
    return item
  }))
}

function renderLock () {
  const mine = lock && lock.holder === userId
  $('lock-status').textContent = lock ? (mine ? 'locked by you' : `locked by ${lock.holder}`) : 'unlocked'
  editor.readOnly = Boolean(lock && !mine)
}

function onFrame (frame) {
  switch (frame.type) {
    case 'RESOURCE_STATE':
      users.clear()
      for (const user of frame.users) users.set(user.userId, user)
      lock = null
      for (const held of frame.locks) if (held.target === '*') lock = { holder: held.holder.userId }
      renderUsers()
      renderLock()
      break
    case 'USER_JOINED':
      users.set(frame.user.userId, frame.user)
      renderUsers()
      break
    case 'USER_LEFT':
      users.delete(frame.userId)
      renderUsers()
      break
    case 'LOCK_ACQUIRED':
      if (frame.target === '*') lock = { holder: userId }
      renderLock()
      break
    case 'LOCK_RELEASED':
      if (frame.target === '*') lock = null
      renderLock()
      break
    case 'LOCK_DENIED':
      $('error').textContent = `lock held by ${frame.holder.userId}`
      break
    case 'LOCK_STATUS_CHANGED':
      if (frame.target === '*') lock = frame.locked ? { holder: frame.holder.userId } : null
      renderLock()
      break
    case 'ERROR':
      $('error').textContent = `${frame.code} ${frame.errorType}: ${frame.message}`
      break
  }
}

function connectJson (token) {
  ws = new WebSocket(`${wsBase}/ws`, tokenProtocols(token))
  ws.onopen = () => {
    setStatus('ws-status', 'connected', true)
    send({ type: 'JOIN_RESOURCE', resourceId, mode: role === 'viewer' || role === 'guest' ? 'viewer' : 'editor' })
  }
  ws.onmessage = (event) => onFrame(JSON.parse(event.data))
  ws.onclose = () => {
    setStatus('ws-status', 'disconnected', false)
    setTimeout(() => connectJson(token), 1000)
  }
}

$('lock').addEventListener('click', () => send({ type: 'LOCK_ACQUIRE', resourceId, target: '*', ttlMs: 120000 }))
$('unlock').addEventListener('click', () => send({ type: 'LOCK_RELEASE', resourceId, target: '*' }))
setInterval(() => send({ type: 'HEARTBEAT' }), 25000)

fetchToken().then((token) => {
  yjsProvider = connectYjs(token)
  connectJson(token)
}).catch((error) => {
  $('error').textContent = String(error.message || error)
})
