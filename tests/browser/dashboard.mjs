// Drives Debian's Chromium (headless) through mtad's dashboard with playwright-core.
// Run by tests/e2e/test_ui_browser.py and tests/e2e/test_disk_guard.py:
//
//   node dashboard.mjs '{"mode":"flow","url":"http://127.0.0.1:PORT/","user":"u","password":"p",
//                        "qid":"ID","subject":"...","artifacts":"DIR"}'
//   node dashboard.mjs '{"mode":"banner","url":...,"want":"Data volume has less than 5% free disk space"}'
//   node dashboard.mjs '{"mode":"shot","url":...,"shot":"name.png"}'   (just a screenshot)
//   node dashboard.mjs '{"mode":"live","url":"http://user:pass@127.0.0.1:PORT/"}'
//        (the page works: live status, the queue listed, the graphs' y ticks, the banners)
//   node dashboard.mjs '{"mode":"dests","url":...}'
//        (the throttled-destinations card lists a destination)
//
// Prints one JSON line with what it saw; exits 1 (with {"error": ...}) when a step fails.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const opt = JSON.parse(process.argv[2] || "{}");
const out = { mode: opt.mode, consoleErrors: [], cspViolations: [], screenshots: [] };
const STEP = 20000;

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

async function shot(page, name, fullPage = true) {
  const path = join(opt.artifacts, name);
  await page.screenshot({ path, fullPage });
  out.screenshots.push(path);
}

async function flow(page) {
  // Statistics arrive and the status turns live.
  await page.waitForSelector('#status[data-state="live"]', { timeout: STEP });
  out.hostname = await page.textContent("#hostname");
  out.queueCard = await page.textContent("#c-queue");
  // The queued message is listed.
  const row = `#q-body tr[data-id="${opt.qid}"]`;
  await page.waitForSelector(row, { timeout: STEP });
  out.rows = await page.locator("#q-body tr").count();
  // The graphs render: three uPlot charts with a canvas of real size.
  await page.waitForFunction(() => {
    const c = document.querySelectorAll(".plot .uplot canvas");
    return c.length === 3 && [...c].every((x) => x.width > 100 && x.height > 50);
  }, null, { timeout: STEP });
  out.charts = await page.evaluate(() => [...document.querySelectorAll(".plot .uplot canvas")]
    .map((c) => [c.width, c.height]));
  out.legend = await page.evaluate(() => [...document.querySelectorAll("#chart-throughput .u-legend .u-label")]
    .map((e) => e.textContent));
  await shot(page, "dashboard.png");

  // Search narrows the list to the message.
  await page.fill("#q-text", opt.qid.toLowerCase());
  await page.click('#q-form button[type="submit"]');
  await page.waitForFunction((id) => {
    const rows = document.querySelectorAll("#q-body tr");
    return rows.length === 1 && rows[0].dataset.id === id;
  }, opt.qid, { timeout: STEP });

  // Detail: the hostile subject and From are shown as text, never as markup.
  await page.click(row);
  await page.waitForSelector("#detail[open]", { timeout: STEP });
  await page.waitForFunction((id) => document.getElementById("d-id").textContent === id, opt.qid, { timeout: STEP });
  out.detailSubject = await page.textContent("#d-subject");
  out.detailHeaders = await page.textContent("#d-headers");
  out.detailHistory = await page.textContent("#d-hist");
  out.injected = await page.evaluate(() => ({
    xss: window.__xss === 1,
    scripts: document.querySelectorAll("script").length,
    imgs: document.querySelectorAll("img").length,
  }));
  await shot(page, "message-detail.png", false);

  // Delete, with confirmation: cancel first (nothing happens), then confirm.
  await page.click('#detail [data-act="delete"]');
  await page.waitForSelector("#confirm[open]", { timeout: STEP });
  out.confirmText = await page.textContent("#cf-text");
  await page.click("#cf-no");
  await page.waitForSelector("#confirm:not([open])", { state: "attached", timeout: STEP });
  out.stillOpenAfterCancel = await page.evaluate(() => document.getElementById("detail").open);
  await page.click('#detail [data-act="delete"]');
  await page.waitForSelector("#confirm[open]", { timeout: STEP });
  await page.click("#cf-yes");
  await page.waitForSelector("#detail:not([open])", { state: "attached", timeout: STEP });
  await page.waitForFunction((id) => !document.querySelector(`#q-body tr[data-id="${id}"]`), opt.qid, { timeout: STEP });
  out.toast = await page.textContent("#toast");
  out.deleted = true;

  // A narrow screen: no sideways scrolling, the queue as cards.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.fill("#q-text", "");
  await page.click('#q-form button[type="submit"]');
  await page.waitForTimeout(300);
  out.narrowOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await shot(page, "dashboard-narrow.png");
}

async function snapshot(page) {
  await page.waitForSelector('#status[data-state="live"]', { timeout: STEP });
  await page.waitForFunction(() => document.querySelectorAll(".plot .uplot canvas").length === 3,
    null, { timeout: STEP });
  await page.waitForTimeout(500);
  await shot(page, opt.shot || "dashboard-snapshot.png", false);
}

async function live(page) {
  await page.waitForSelector('#status[data-state="live"]', { timeout: STEP });
  out.hostname = await page.textContent("#hostname");
  await page.waitForFunction(() => document.getElementById("n-all").textContent !== "",
    null, { timeout: STEP });
  out.queueCount = await page.textContent("#n-all");
  await page.waitForFunction(() => document.querySelectorAll(".plot .uplot canvas").length === 3,
    null, { timeout: STEP });
  // uPlot draws ticks on the canvas; its scale splits are what it labels.
  out.ticks = await page.evaluate(() => {
    const t = {};
    for (const id of ["chart-sessions", "chart-queue"]) {
      const u = document.getElementById(id).__uplot;
      t[id] = u ? u.axes[1]._splits : null;
    }
    return t;
  });
  out.banners = await page.evaluate(() => [...document.querySelectorAll("#banners .banner")]
    .map((b) => ({ id: b.id, text: b.textContent })));
  out.cards = await page.evaluate(() => [...document.querySelectorAll(".card .label")]
    .map((e) => e.textContent));
  await shot(page, opt.shot || "dashboard-live.png", false);
}

async function dests(page) {
  await page.waitForSelector("#c-dests-list li", { timeout: STEP });
  out.destsValue = await page.textContent("#c-dests");
  out.dests = await page.evaluate(() => [...document.querySelectorAll("#c-dests-list li")]
    .map((e) => ({ text: e.textContent, title: e.getAttribute("title") })));
  out.destsClass = await page.evaluate(() => document.getElementById("c-dests").parentElement.className);
  await shot(page, opt.shot || "dashboard-throttled.png", false);
}

async function banner(page) {
  await page.waitForSelector("#disk-banner", { timeout: STEP });
  out.banner = await page.textContent("#disk-banner");
  out.bannerClass = await page.getAttribute("#disk-banner", "class");
  await shot(page, opt.shot || "disk-banner.png", false);
}

const dataDir = mkdtempSync(join(tmpdir(), "mtad-chromium-"));
let ctx;
try {
  ctx = await chromium.launchPersistentContext(dataDir, {
    executablePath: opt.chromium || "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    viewport: { width: 1366, height: 900 },
    httpCredentials: opt.user ? { username: opt.user, password: opt.password } : undefined,
    timeout: 60000,
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => out.consoleErrors.push(String(e)));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      (window.__csp = window.__csp || []).push(e.violatedDirective + " " + e.blockedURI);
    });
  });
  const resp = await page.goto(opt.url, { waitUntil: "load", timeout: STEP });
  out.status = resp.status();
  out.csp = resp.headers()["content-security-policy"];
  if (opt.mode === "banner") await banner(page);
  else if (opt.mode === "live") await live(page);
  else if (opt.mode === "dests") await dests(page);
  else if (opt.mode === "shot") await snapshot(page);
  else await flow(page);
  out.cspViolations = await page.evaluate(() => window.__csp || []);
  console.log(JSON.stringify(out));
} catch (e) {
  out.error = String(e && e.stack || e);
  console.log(JSON.stringify(out));
  process.exitCode = 1;
} finally {
  if (ctx) await ctx.close();
  rmSync(dataDir, { recursive: true, force: true });
}
