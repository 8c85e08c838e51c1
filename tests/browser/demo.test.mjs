// Two users in two browser windows on the /demo page: both type, both end with the same text and
// see each other in the user list. Run by tests/browser/test_demo_browser.py, which starts the
// gateway (DEMO_BASE_URL) and reads the exit code; screenshots go to DEMO_SCREENSHOT_DIR.
//
// playwright-core (pinned in tests/interop/package.json) drives Debian's /usr/bin/chromium: no
// browser is ever downloaded. Playwright starts it with a new, empty temporary profile
// (--user-data-dir) of its own; the flags below keep it from touching the network.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { join } from 'node:path'

const require = createRequire(new URL('../interop/package.json', import.meta.url))
const { chromium } = require('playwright-core')

const base = process.env.DEMO_BASE_URL
const screenshots = process.env.DEMO_SCREENSHOT_DIR
const resource = `patient:browser-${Date.now().toString(36)}`
const TIMEOUT = 20000

async function openAs (browser, user) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 620 } })
  const page = await context.newPage()
  page.setDefaultTimeout(TIMEOUT)
  const errors = []
  page.on('pageerror', (error) => errors.push(String(error)))
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()) })
  const sockets = []
  page.on('websocket', (socket) => sockets.push(socket.url()))
  await page.goto(`${base}/demo?user=${user}&role=nurse&resource=${encodeURIComponent(resource)}`)
  await page.locator('#yjs-status', { hasText: 'synced' }).waitFor()
  await page.locator('#ws-status', { hasText: 'connected' }).waitFor()
  return { page, errors, sockets }
}

const editorValue = (page) => page.locator('#editor').inputValue()

// Whether the characters of phrase occur in text in their order (others may lie between).
function inOrder (phrase, text) {
  let at = 0
  for (const char of phrase) {
    at = text.indexOf(char, at) + 1
    if (at === 0) return false
  }
  return true
}

test('two users type in two windows, see one text and each other', { timeout: 60000 }, async () => {
  assert.ok(base, 'DEMO_BASE_URL is not set')
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  try {
    const alice = await openAs(browser, 'alice')
    const bob = await openAs(browser, 'bob')
    for (const [{ page }, other] of [[alice, 'bob'], [bob, 'alice']]) {
      await page.locator(`#users li[data-user-id="${other}"]`).waitFor()
    }

    await Promise.all([
      alice.page.locator('#editor').pressSequentially('Alice: BP 120/80. ', { delay: 15 }),
      bob.page.locator('#editor').pressSequentially('Bob: pulse 72. ', { delay: 15 })
    ])
    // Typed at once, the two phrases may interleave (whose keystroke lands first is a race);
    // what must hold is one text in both windows holding every keystroke, each phrase in order.
    const phrases = ['Alice: BP 120/80. ', 'Bob: pulse 72. ']
    const length = phrases.join('').length
    for (const { page } of [alice, bob]) {
      await page.waitForFunction(
        (wanted) => document.getElementById('editor').value.length === wanted,
        length, { timeout: TIMEOUT }
      ).catch(async (error) => {
        // Name what each window shows, so that a failure says how the copies differ.
        const shown = await Promise.all([alice, bob].map(async (w) => JSON.stringify({
          editor: await editorValue(w.page),
          yjs: await w.page.locator('#yjs-status').textContent(),
          ws: await w.page.locator('#ws-status').textContent()
        })))
        throw new Error(`${error.message}\nalice: ${shown[0]}\nbob: ${shown[1]}`)
      })
    }
    const text = await editorValue(alice.page)
    assert.equal(await editorValue(bob.page), text)
    for (const phrase of phrases) assert.ok(inOrder(phrase, text), `${JSON.stringify(phrase)} in order in ${JSON.stringify(text)}`)

    // Another writer's edits move bob's caret by what they insert or delete before it, and not
    // otherwise, whether or not his editor has the focus.
    await bob.page.evaluate(() => { const e = document.getElementById('editor'); e.setSelectionRange(3, 3); e.blur() })
    const remote = async (edit, wanted) => {
      await alice.page.evaluate(edit)
      await bob.page.waitForFunction((value) => document.getElementById('editor').value === value, wanted)
      return bob.page.evaluate(() => document.getElementById('editor').selectionStart)
    }
    const content = 'window.collabgateDemo.doc.getText("content")'
    assert.equal(await remote(`${content}.insert(0, "XY")`, 'XY' + text), 5)
    assert.equal(await remote(`${content}.insert(5, "Z")`, 'XY' + text.slice(0, 3) + 'Z' + text.slice(3)), 5)
    assert.equal(await remote(`${content}.delete(0, 2)`, text.slice(0, 3) + 'Z' + text.slice(3)), 3)

    for (const { page } of [alice, bob]) {
      for (const user of ['alice', 'bob']) {
        assert.ok(await page.locator(`#users li[data-user-id="${user}"]`).isVisible(), `${user} listed`)
      }
    }
    if (screenshots) {
      await alice.page.screenshot({ path: join(screenshots, 'demo-alice.png') })
      await bob.page.screenshot({ path: join(screenshots, 'demo-bob.png') })
    }
    assert.deepEqual([...alice.errors, ...bob.errors], [])
    // The token travels as a subprotocol: no WebSocket URL carries it (access logs, history).
    const urls = [...alice.sockets, ...bob.sockets]
    assert.ok(urls.length >= 4, urls.join(' ')) // /yjs and /ws in each window
    assert.deepEqual(urls.filter((url) => url.includes('token')), [])
  } finally {
    await browser.close()
  }
})
