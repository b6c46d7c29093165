// What every browser script shares: how Chromium is started, and the watch that fails a run
// when a page asks anything of a host other than this machine or logs an error.

import { chromium } from "playwright-core";

const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost"]);

/** Debian's Chromium (or `CHROMIUM`), headless, with nothing of its own going off the machine. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
}

/**
 * Records in `report.offsite` every request of `page` to another host, and in
 * `report.consoleErrors` every console error and uncaught page error, each prefixed by `label`.
 */
export function watchPage(page, label, report) {
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol)) return;
    if (!LOCAL_HOSTS.has(url.hostname)) report.offsite.push(`${label}: ${r.url()}`);
  });
  page.on("console", (m) => {
    if (m.type() === "error") report.consoleErrors.push(`${label}: ${m.text()}`);
  });
  page.on("pageerror", (e) => report.consoleErrors.push(`${label}: ${e.message}`));
}
