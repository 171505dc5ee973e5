// End-to-end tests of the admin app and the shopper page in headless Debian Chromium, driven by
// playwright-core (no browser download) against a real running stack. Started by
// tests/frontend/test_e2e.py, which seeds the stack and passes its URLs and ids in the environment.
//
//   ADMIN_URL       the admin-api base URL (serves the built app at /)
//   ADMIN_TOKEN     an operator token        VIEWER_TOKEN  a viewer token
//   E2E_USER        a seeded user with history   E2E_ITEM  a seeded item id
//   E2E_SHOPPER     a fresh shopper id for the like/skip flow
//   ARTIFACTS_DIR   where screenshots go (default tests/frontend/artifacts)
//   CHROMIUM        browser binary (default /usr/bin/chromium)
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = path.dirname(fileURLToPath(import.meta.url))
const env = (k, d) => process.env[k] ?? d
const BASE = env('ADMIN_URL', 'http://127.0.0.1:17075').replace(/\/$/, '')
const OPERATOR = env('ADMIN_TOKEN', 'dev-admin-token')
const VIEWER = env('VIEWER_TOKEN', 'dev-viewer-token')
const USER = env('E2E_USER', 'U000001')
const ITEM = env('E2E_ITEM', 'I000001')
const SHOPPER = env('E2E_SHOPPER', `shopper-${Date.now()}`)
const OUT = path.resolve(env('ARTIFACTS_DIR', path.join(here, '..', '..', 'tests', 'frontend', 'artifacts')))
mkdirSync(OUT, { recursive: true })

const results = []
const pageErrors = []

function assert(cond, message) {
  if (!cond) throw new Error(message)
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true })
}

async function step(name, page, fn) {
  const started = Date.now()
  try {
    await fn()
    results.push({ name, ok: true })
    console.log(`PASS ${name} (${Date.now() - started} ms)`)
  } catch (e) {
    results.push({ name, ok: false, error: e.message })
    console.log(`FAIL ${name}: ${e.message}`)
    await shot(page, `FAILED-${name.replace(/\W+/g, '-')}`).catch(() => {})
  }
}

const go = (page, hash) => page.goto(`${BASE}/#${hash}`)
// Ant inputs put attributes on the <input> itself or on a wrapper, depending on the component.
const field = (page, name) => page.locator(`input[data-test=${name}], [data-test=${name}] input`).first()
const count = (page, sel) => page.locator(sel).count()
const ids = (page) => page.locator('[data-test=rec-card]').evaluateAll((els) => els.map((e) => e.dataset.item).join('|'))

async function login(page, token) {
  await go(page, '/login')
  await field(page, 'token').fill(token)
  await page.locator('[data-test=login]').click()
  await page.waitForSelector('[data-test=page-dashboard]', { timeout: 15000 })
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
})
const context = await browser.newContext({ viewport: { width: 1366, height: 800 } })
const page = await context.newPage()
page.setDefaultTimeout(15000)
page.on('pageerror', (e) => pageErrors.push(e.message))
page.on('console', (m) => m.type() === 'error' && !/status of (401|503)/.test(m.text()) && pageErrors.push(m.text()))

await step('login rejects a bad token and accepts an operator token', page, async () => {
  await go(page, '/')
  await page.waitForSelector('[data-test=token]') // unauthenticated: redirected to the login page
  await field(page, 'token').fill('not-a-token')
  await page.locator('[data-test=login]').click()
  await page.getByText('invalid token').waitFor()
  await shot(page, '01-login-error')
  await login(page, OPERATOR)
  const who = await page.locator('[data-test=who]').innerText()
  assert(who.includes('operator'), `header should show the operator role, got ${who}`)
})

await step('dashboard shows live metrics, platform counts and per-version analytics', page, async () => {
  await page.locator('[data-test=overview]').getByText('Active items').waitFor()
  await page.waitForFunction(() => {
    const t = document.querySelector('[data-test=live-status]')?.textContent || ''
    return t.includes('prometheus') || t.includes('analytics')
  }, null, { timeout: 20000 })
  const rps = await page.locator('[data-test=stat-rps]').innerText()
  assert(!rps.includes('–'), `requests/s should have a value, got ${rps}`)
  await page.locator('[data-test=versions] .ant-table-row').first().waitFor()
  await page.locator('[data-test=pipeline-lag] .ant-table-row').first().waitFor()
  const lagRows = await count(page, '[data-test=pipeline-lag] .ant-table-row')
  assert(lagRows >= 7, `the pipeline lag should list every subscription, got ${lagRows} rows`)
  assert((await count(page, '[data-test=page-dashboard] canvas')) >= 2, 'charts should render')
  await page.waitForTimeout(4500) // a few live samples on the chart
  await shot(page, '02-dashboard')
})

await step('catalogue searches, opens an item with neighbours and semantic ID', page, async () => {
  await page.locator('[data-test=nav-catalogue]').click()
  await page.locator('[data-test=items-table] .ant-table-row').first().waitFor()
  const all = await count(page, '[data-test=items-table] .ant-table-row')
  assert(all >= 10, `expected a page of items, got ${all}`)
  await field(page, 'search').fill(ITEM)
  await field(page, 'search').press('Enter')
  await page.waitForFunction(() => document.querySelectorAll('[data-test=items-table] .ant-table-row').length === 1)
  await page.locator('[data-test=items-table] .ant-table-row').first().click()
  await page.locator('[data-test=item-detail]').waitFor()
  await page.locator('[data-test=semantic-id] .ant-tag').first().waitFor()
  await page.locator('[data-test=neighbours] .ant-list-item').first().waitFor()
  await shot(page, '03-catalogue-item')
  await page.keyboard.press('Escape')
})

await step('user inspector shows history, live recommendations, and reacts to a test interaction', page, async () => {
  await go(page, `/users?user=${encodeURIComponent(USER)}`)
  await page.locator('[data-test=sequence] .ant-tag').first().waitFor()
  await page.locator('[data-test=recs-table] .ant-table-row').first().waitFor()
  const served = await page.locator('[data-test=served-by]').first().innerText()
  assert(/served by (model|cache|vector|popularity|session)/.test(served), `serving path shown, got ${served}`)
  await shot(page, '04-user-inspector')
  // Click the lowest-ranked recommendation: it joins the sequence, so the list must change.
  const rows = page.locator('[data-test=recs-table] .ant-table-row')
  const last = (await rows.last().locator('.mono').innerText()).trim().split(/\s+/)[0]
  await field(page, 'test-item').fill(last)
  await page.locator('[data-test=send-test]').click()
  await page.locator('[data-test=recs-changed]').waitFor({ timeout: 30000 })
  await shot(page, '05-user-inspector-changed')
})

await step('semantic-ID explorer drills down a level', page, async () => {
  await page.locator('[data-test=nav-semantic-ids]').click()
  await page.locator('[data-test=codes] .ant-card').first().waitFor()
  const first = page.locator('[data-test=codes] .ant-card').first()
  const code = await first.getAttribute('data-code')
  await first.click()
  await page.waitForFunction(() => document.querySelectorAll('.ant-breadcrumb li, .ant-breadcrumb-link').length >= 2)
  await page.locator('[data-test=codes] .ant-card').first().waitFor()
  const crumbs = await page.locator('.ant-breadcrumb').innerText()
  assert(crumbs.includes(code), `breadcrumb should include code ${code}: ${crumbs}`)
  await shot(page, '06-semantic-ids')
})

await step('embedding space renders a 3-D scatter with hover titles', page, async () => {
  await page.locator('[data-test=nav-embeddings]').click()
  await page.locator('[data-test=projection-info]').waitFor()
  const canvas = page.locator('[data-test=scatter] canvas')
  await canvas.waitFor()
  const box = await canvas.boundingBox()
  assert(box && box.width > 300 && box.height > 300, 'the canvas has a usable size')
  let found = false
  for (let gy = 0.2; gy <= 0.8 && !found; gy += 0.04) {
    for (let gx = 0.2; gx <= 0.8 && !found; gx += 0.03) {
      await page.mouse.move(box.x + box.width * gx, box.y + box.height * gy)
      found = (await count(page, '[data-test=hover-tip]')) > 0
    }
  }
  assert(found, 'hovering the cloud should show an item title')
  await shot(page, '07-embeddings')
  await page.locator('[data-test=color-by] .ant-radio-button-wrapper').nth(1).click()
  await page.waitForTimeout(500)
  await shot(page, '08-embeddings-by-code')
})

await step('models page changes a canary weight', page, async () => {
  await page.locator('[data-test=nav-models]').click()
  await page.locator('[data-test=models-table] .ant-table-row').first().waitFor()
  const canary = page.locator('[data-test=models-table] .ant-table-row', { hasText: 'canary' }).first()
  const version = await canary.getAttribute('data-row-key')
  const set = page.locator(`[data-test=set-weight-${version}]`)
  const current = Number((await set.innerText()).match(/(\d+)%/)[1])
  const target = current >= 50 ? current - 5 : current + 5
  const handle = page.locator(`[data-test=slider-${version}] .ant-slider-handle`)
  await handle.focus()
  for (let i = 0; i < 5; i++) await handle.press(current >= 50 ? 'ArrowLeft' : 'ArrowRight')
  await set.click()
  await page.getByText(`${version} now serves ${target}% of traffic`).waitFor()
  await shot(page, '09-models')
})

await step('a failing API shows an error with retry, never a blank page', page, async () => {
  await page.route('**/api/v1/models', (route) => route.fulfill({
    status: 503, contentType: 'application/json',
    body: JSON.stringify({ error: 'unavailable', field: '', message: 'store unavailable: test outage' }),
  }))
  await go(page, '/catalogue')
  await go(page, '/models')
  await page.locator('[data-test=error]').getByText('store unavailable: test outage').waitFor()
  await shot(page, '10-error-state')
  await page.unroute('**/api/v1/models')
  await page.locator('[data-test=error] button').click()
  await page.locator('[data-test=models-table] .ant-table-row').first().waitFor()
})

await step('a viewer can read but not change', page, async () => {
  await page.locator('[data-test=logout]').click()
  await login(page, VIEWER)
  assert((await page.locator('[data-test=who]').innerText()).includes('viewer'), 'viewer role shown')
  await page.locator('[data-test=nav-models]').click()
  await page.locator('[data-test=models-table] .ant-table-row').first().waitFor()
  assert(await page.locator('[data-test=rollback]').isDisabled(), 'rollback disabled for viewers')
  await page.locator('[data-test=nav-catalogue]').click()
  assert(await page.locator('[data-test=open-upsert]').isDisabled(), 'upsert disabled for viewers')
})

const shopPage = await context.newPage() // the shopper page works without signing in
shopPage.setDefaultTimeout(15000)
shopPage.on('pageerror', (e) => pageErrors.push(e.message))
await step('shopper page shows cards, and a like changes the list', shopPage, async () => {
  await shopPage.evaluate(() => localStorage.clear()).catch(() => {})
  await go(shopPage, `/shop?user=${encodeURIComponent(SHOPPER)}`)
  await shopPage.locator('[data-test=rec-card]').first().waitFor()
  const n = await count(shopPage, '[data-test=rec-card]')
  assert(n >= 4, `expected several cards, got ${n}`)
  const reason = await shopPage.locator('[data-test=reason]').first().innerText()
  assert(reason.trim().length > 0, 'each card says why it is recommended')
  assert((await count(shopPage, '[data-test=new-badge]')) > 0, 'recently added items carry a NEW badge')
  await shot(shopPage, '11-shop-before')
  const before = await ids(shopPage)
  await shopPage.locator('[data-test=like]').first().click()
  await shopPage.locator('[data-test=updates]').waitFor({ timeout: 30000 })
  const after = await ids(shopPage)
  assert(after !== before, 'the list changed after the like')
  await shot(shopPage, '12-shop-after-like')
})

await browser.close()

if (pageErrors.length) {
  results.push({ name: 'no uncaught page errors', ok: false, error: pageErrors.join(' | ') })
  console.log(`FAIL no uncaught page errors: ${pageErrors.join(' | ')}`)
} else {
  results.push({ name: 'no uncaught page errors', ok: true })
}
const failed = results.filter((r) => !r.ok).length
console.log(`screenshots in ${OUT}`)
console.log(`${results.length - failed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
