'use strict';
// Headless browser check of Steward's embedded web UI.
//
// Env: PLAYWRIGHT_CORE (absolute path of the playwright-core package dir),
//      CHROMIUM (browser executable), STEWARD_URL, STEWARD_TOKEN,
//      EXPECT_CONTAINER (container name expected among the sources),
//      SCREENSHOT (png output path).
//
// stdout protocol (one line each, in order):
//   READY            logged in and looking at #sources; start the container now
//   SEEN <source id> a #sources-table row mentions EXPECT_CONTAINER; then it
//                    waits for a line `GO` on stdin (the test sends it once the
//                    loop has applied a config with that container, so there
//                    is a version to roll back from)
//   DIFF <n>         the newest version's diff shows n added lines, one
//                    naming EXPECT_CONTAINER (SCREENSHOT_DIFF, if set, is
//                    a screenshot of it)
//   ROLLED <text>    #rollout-result after clicking #rollback
//   DONE             overview rendered and screenshot written
// On failure: `FAIL <reason>` on stderr, a screenshot if possible, exit 1.

const fs = require('fs');
const os = require('os');
const path = require('path');

const STEP_TIMEOUT_MS = 60000;
const WATCHDOG_MS = 240000;

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`missing env ${name}`);
  return v;
}

function say(line) {
  process.stdout.write(String(line).replace(/[\r\n]+/g, ' ') + '\n');
}

/// Resolves at the first stdin line equal to `word`.
function stdinLine(word) {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop();
      if (lines.some((l) => l.trim() === word)) {
        process.stdin.off('data', onData);
        process.stdin.pause();
        resolve();
      }
    };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', onData);
    process.stdin.once('end', () => reject(new Error(`stdin closed before ${word}`)));
    process.stdin.resume();
  });
}

function log(msg) {
  process.stderr.write(`[ui.cjs] ${msg}\n`);
}

async function launch(chromium, executablePath) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'steward-ui-chromium-'));
  const baseArgs = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ];
  // Preferred: plain launch with an explicit fresh profile dir. Playwright
  // refuses --user-data-dir in args for launch(); then fall back to a
  // persistent context on the same fresh dir.
  try {
    const browser = await chromium.launch({
      executablePath,
      headless: true,
      args: [...baseArgs, `--user-data-dir=${userDataDir}`],
    });
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    return { userDataDir, context, close: () => browser.close() };
  } catch (e) {
    if (!/user-data-dir|userDataDir|launchPersistentContext/i.test(String(e && e.message))) throw e;
    log('launch() rejected --user-data-dir; using launchPersistentContext');
  }
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: baseArgs,
    viewport: { width: 1360, height: 900 },
  });
  return { userDataDir, context, close: () => context.close() };
}

async function main() {
  const pw = require(env('PLAYWRIGHT_CORE'));
  const executablePath = env('CHROMIUM');
  const baseUrl = env('STEWARD_URL').replace(/\/+$/, '');
  const token = env('STEWARD_TOKEN');
  const container = env('EXPECT_CONTAINER');
  const screenshot = env('SCREENSHOT');

  let session = null;
  let page = null;
  let code = 0;
  const watchdog = setTimeout(() => {
    process.stderr.write(`FAIL watchdog: no result after ${WATCHDOG_MS} ms\n`);
    process.exit(1);
  }, WATCHDOG_MS);

  try {
    session = await launch(pw.chromium, executablePath);
    page = session.context.pages()[0] || (await session.context.newPage());
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on('pageerror', (e) => log(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') log(`console: ${m.text()}`); });
    page.on('dialog', (d) => { log(`dialog (${d.type()}): ${d.message()} -> accept`); d.accept().catch(() => {}); });

    // Open and log in.
    await page.goto(`${baseUrl}/`, { waitUntil: 'domcontentloaded' });
    await page.locator('#token').waitFor({ state: 'visible' });
    await page.fill('#token', token);
    await page.click('#login');
    const login = await (await page.waitForFunction(() => {
      const nav = document.getElementById('nav');
      const msg = document.getElementById('login-message');
      if (nav && !nav.hidden) return 'ok';
      if (msg && !msg.hidden) return `rejected: ${msg.textContent}`;
      return null;
    }, null, { timeout: STEP_TIMEOUT_MS, polling: 100 })).jsonValue();
    if (login !== 'ok') throw new Error(`login failed (${login})`);

    // Sources.
    await page.click('#nav-sources');
    await page.waitForSelector('#view-sources[data-loaded]', { state: 'attached' });
    say('READY');

    const seen = await page.waitForFunction((name) => {
      const rows = document.querySelectorAll('#sources-table tr[data-source-id]');
      for (const r of rows) {
        if (r.textContent.includes(name)) return r.getAttribute('data-source-id');
      }
      return null;
    }, container, { timeout: STEP_TIMEOUT_MS, polling: 250 });
    say(`SEEN ${await seen.jsonValue()}`);
    await stdinLine('GO');

    // Versions: the newest one's side-by-side diff shows the container's
    // receiver added; then roll back.
    await page.click('#nav-versions');
    await page.waitForSelector('#view-versions[data-loaded]', { state: 'attached' });
    await page.click('#versions-table tr[data-version] .diff-btn');
    const added = await (await page.waitForFunction((name) => {
      const rows = document.querySelectorAll('#diff-table tr.d-added');
      const hit = Array.from(rows).some((r) => r.textContent.includes(name));
      return hit ? rows.length : null;
    }, container, { timeout: STEP_TIMEOUT_MS, polling: 250 })).jsonValue();
    say(`DIFF ${added}`);
    if (process.env.SCREENSHOT_DIFF) {
      await page.screenshot({ path: process.env.SCREENSHOT_DIFF, fullPage: true });
    }
    await page.click('#rollback'); // waits until enabled; the dialog handler accepts the confirm
    const outcome = await (await page.waitForFunction(() => {
      const el = document.getElementById('rollout-result');
      return el && !el.hidden && el.getAttribute('data-outcome');
    }, null, { timeout: STEP_TIMEOUT_MS, polling: 250 })).jsonValue();
    const text = (await page.textContent('#rollout-result')) || '';
    if (!/rolled_back|applied/.test(text) || !['applied', 'rolled_back'].includes(outcome)) {
      throw new Error(`rollback outcome ${outcome}: ${text}`);
    }
    say(`ROLLED ${text.trim()}`);

    // Overview: wait for it to render (chart or "no data yet"), screenshot.
    await page.click('#nav-overview');
    await page.waitForFunction(() => {
      const v = document.getElementById('view-overview');
      if (!v || v.hidden || !v.hasAttribute('data-loaded')) return false;
      const chart = document.querySelector('#e2e-chart svg');
      const empty = document.getElementById('e2e-empty');
      return !!chart || (empty && !empty.hidden);
    }, null, { timeout: STEP_TIMEOUT_MS, polling: 250 });
    await page.screenshot({ path: screenshot, fullPage: true });
    say('DONE');
  } catch (e) {
    code = 1;
    process.stderr.write(`FAIL ${String((e && e.message) || e).split('\n')[0]}\n`);
    if (e && e.stack) log(e.stack);
    if (page) {
      try {
        await page.screenshot({ path: screenshot, fullPage: true, timeout: 10000 });
        log(`failure screenshot: ${screenshot}`);
      } catch (_) { /* best effort */ }
    }
  } finally {
    if (session) {
      try { await session.close(); } catch (e) { log(`close: ${e.message}`); }
      try { fs.rmSync(session.userDataDir, { recursive: true, force: true }); } catch (_) { /* ignore */ }
    }
    clearTimeout(watchdog);
  }
  return code;
}

main().then((code) => {
  process.exitCode = code;
  // Make sure nothing left over keeps node alive.
  setTimeout(() => process.exit(code), 1000).unref();
}, (e) => {
  process.stderr.write(`FAIL ${(e && e.message) || e}\n`);
  process.exit(1);
});
