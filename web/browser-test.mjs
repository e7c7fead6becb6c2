// Drives the dashboard in headless Chromium (web/browser-test.sh starts the
// cluster): node browser-test.mjs URL PID_TO_KILL [SCREENSHOT_DIR]
import puppeteer from 'puppeteer-core';
import { mkdirSync } from 'node:fs';

const [url, victim, shots] = process.argv.slice(2);
const fail = (why) => { console.error('browser-test: FAIL: ' + why); process.exit(1); };
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  userDataDir: (process.env.TMPDIR || '/tmp') + '/pd-chromium-' + process.pid,
});
let passed = 0;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on("console", (m) => console.error("page: " + m.text()));
  page.on("pageerror", (e) => console.error("page error: " + e.message));
  await page.goto(url, { waitUntil: 'load' });
  const shot = async (name) => {
    if (!shots) return;
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: `${shots}/dashboard-${name}.png`, fullPage: true });
  };
  const rows = () => page.$$eval('#workers tbody tr', (trs) => trs.map((t) => t.textContent));
  await page.waitForFunction(() => document.querySelectorAll('#workers tbody tr').length === 2,
                             { timeout: 20000 }).catch(() => fail('the page does not list 2 workers'));
  passed++;
  const progress = () => page.$$eval('#owners tbody tr', (trs) =>
    trs.reduce((n, t) => n + Number(t.children[4].textContent), 0));
  await page.waitForFunction(() => document.querySelectorAll('#owners tbody tr').length > 0,
                             { timeout: 20000 }).catch(() => fail('no batch shown'));
  const first = await progress();
  await new Promise((r) => setTimeout(r, 3000));
  const later = await progress();
  if (!(later > first)) fail(`the batch's progress did not go up (${first} then ${later})`);
  passed++;
  await page.waitForFunction(() => document.querySelector('#failed tbody').textContent
                               .includes('want a non-negative number'), { timeout: 20000 })
    .catch(() => fail("a failed job's error is not shown"));
  passed++;
  await shot('running');
  process.kill(Number(victim), 'SIGKILL');
  await page.waitForFunction(() => [...document.querySelectorAll('#workers tbody tr.lost')].length === 1,
                             { timeout: 20000 }).catch(() => fail('the killed worker is not shown lost'));
  await page.waitForFunction(() => document.getElementById('events').textContent.includes('lost'),
                             { timeout: 20000 }).catch(() => fail('the log does not say lost'));
  passed++;
  await shot('lost');
  console.log((await rows()).join('\n'));
} finally {
  await browser.close();
}
console.log(`browser-test: ${passed} passed, 0 failed`);
