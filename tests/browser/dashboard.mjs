// Drives paddock's dashboard in a real Chromium. Started by the Rust
// integration test (crates/paddock/tests/integration/dashboard.rs), which
// passes, in the environment:
//   DASHBOARD_URL   the URL `paddock dashboard` printed (with its token)
//   PADDOCK_BIN     the paddock binary; PADDOCK_HOME the store; WORKDIR the workspace
//   ARTIFACTS       where to save screenshots
//   CHROMIUM        the browser (default /usr/bin/chromium)
// Exits non-zero, with a message, on the first expectation that fails.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";

const url = process.env.DASHBOARD_URL;
const bin = process.env.PADDOCK_BIN;
const artifacts = process.env.ARTIFACTS;
mkdirSync(artifacts, { recursive: true });

function paddock(...args) {
  return execFileSync(bin, args, {
    cwd: process.env.WORKDIR,
    env: process.env,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox"],
});
let page;
try {
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.accept(); });
  await page.goto(url);
  await page.waitForSelector("#live.on", { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector("#summary").textContent === "nothing running", null, { timeout: 10000 });

  // A session appears, live, once a command runs in it.
  paddock("session", "start", "--name", "browser-live");
  paddock("exec", "browser-live", "--", "sh", "-c", "echo hi > made-by-agent.txt; echo x > /usr/bin/paddock-evil 2>/dev/null; true");
  const row = page.locator('#sessions tbody tr[data-state="running"]');
  await row.waitFor({ timeout: 15000 });
  const id = await row.getAttribute("data-id");
  await page.waitForFunction(() => /1 sandbox/.test(document.querySelector("#summary").textContent), null, { timeout: 10000 });

  // Its audit stream shows the denial.
  await row.click();
  await page.locator('#audit tr.ev[data-kind="file.denied"][data-reason="FS_WRITE_READ_ONLY"]').waitFor({ timeout: 15000 });
  await page.locator('#audit tr.ev[data-kind="file.create"]').waitFor({ timeout: 15000 });
  // The filter keeps only refusals.
  await page.selectOption("#filter", "denied");
  const shown = await page.locator("#audit tr.ev").evaluateAll((rows) => rows.map((r) => r.dataset.allowed));
  if (shown.length === 0 || shown.some((a) => a !== "false")) throw new Error("denied filter shows " + JSON.stringify(shown));
  // The denial is in the recent-denials table too.
  await page.locator('#denials tr[data-reason="FS_WRITE_READ_ONLY"]').waitFor({ timeout: 10000 });
  // The policy tab shows provenance.
  await page.click('button[data-tab="policy"]');
  await page.locator("#policy tbody tr").first().waitFor({ timeout: 10000 });
  await page.click('button[data-tab="audit"]');
  await page.screenshot({ path: artifacts + "/dashboard-live.png", fullPage: true });

  // Stop it with the button (after confirming).
  await page.click(`button.stop[data-id="${id}"]`);
  await page.locator(`#sessions tbody tr[data-id="${id}"][data-state="stopped"]`).waitFor({ timeout: 20000 });
  if (!dialogs.some((m) => m.startsWith("Stop session"))) throw new Error("no confirmation asked: " + JSON.stringify(dialogs));
  await page.waitForFunction(() => document.querySelector("#summary").textContent === "nothing running", null, { timeout: 10000 });
  const list = JSON.parse(paddock("session", "list", "--json"));
  const s = list.find((x) => x.id === id);
  if (!s || s.state !== "stopped") throw new Error("the CLI does not see it stopped: " + JSON.stringify(s));
  await page.screenshot({ path: artifacts + "/dashboard-stopped.png", fullPage: true });
  console.log("ok " + id);
} catch (e) {
  if (page) await page.screenshot({ path: artifacts + "/dashboard-failure.png", fullPage: true }).catch(() => {});
  console.error("FAILED: " + (e && e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
