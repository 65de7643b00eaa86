// Drives the web client in Debian's chromium (puppeteer-core), together with the real
// terminal client, against a stack started by web-server/tests/browser.rs, which
// passes: WEB_URL (the page), NATS_URL and CHAT_CLIENT_BIN (the terminal client),
// BOB_PASSWORD and CAROL_PASSWORD (registered already; alice and dave register through
// the page), SCREENSHOT_DIR. Server restarts are asked of the Rust side by printing
// `stop` / `start` and waiting for `stopped` / `started` on stdin; everything else this
// prints is progress. Exits non-zero on the first failed check.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { createInterface } from "node:readline";
import puppeteer from "puppeteer-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (this script is run by web-server/tests/browser.rs)`);
  return value;
};
const WEB_URL = env("WEB_URL");
const SHOTS = env("SCREENSHOT_DIR");
const PATIENCE = 20_000;
const started = Date.now();
const step = (text) => console.log(`[browser test ${((Date.now() - started) / 1000).toFixed(1)} s] ${text}`);

// --- the Rust side: server restarts -------------------------------------------------
const fromRust = createInterface({ input: process.stdin });
const answers = [];
const waiting = [];
fromRust.on("line", (line) => (waiting.length ? waiting.shift()(line) : answers.push(line)));
function ask(what) {
  process.stdout.write(`${what}\n`);
  return new Promise((resolve) => (answers.length ? resolve(answers.shift()) : waiting.push(resolve)));
}

// --- the terminal client --------------------------------------------------------------
class Terminal {
  constructor(user, password) {
    this.events = [];
    this.waiters = [];
    this.child = spawn(
      env("CHAT_CLIENT_BIN"),
      ["--json", "--user", user, "--room", "general", "--nats-url", env("NATS_URL"), "--history", "0"],
      {
        env: { ...process.env, CHAT_PASSWORD: password, CHAT_LOG_FILE: join(tmpdir(), `chat-client-${user}-browser-test.log`) },
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      const event = JSON.parse(line);
      this.events.push(event);
      this.waiters = this.waiters.filter(([pick, resolve]) => !(pick(event) && (resolve(event), true)));
    });
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
  }
  say(line) {
    this.child.stdin.write(`${line}\n`);
  }
  waitFor(pick, what, patience = PATIENCE) {
    const seen = this.events.find(pick);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`terminal client: no ${what} within ${patience} ms`)), patience);
      this.waiters.push([pick, (e) => (clearTimeout(timer), resolve(e))]);
    });
  }
  message(text, patience = PATIENCE) {
    return this.waitFor((e) => e.event === "message" && e.text === text, `message "${text}"`, patience);
  }
  count(text) {
    return this.events.filter((e) => e.event === "message" && e.text === text).length;
  }
}

// --- pages ------------------------------------------------------------------------------
const profile = mkdtempSync(join(tmpdir(), "natschat-chromium-"));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: false, // the flag below says it, as chromium spells it
  userDataDir: profile,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const problems = [];
/** Waits until `fn` (run in the page) is true; polls, as background tabs get no frames. */
const until = (page, fn, ...args) => page.waitForFunction(fn, { timeout: PATIENCE, polling: 100 }, ...args);

async function open(name, viewport = { width: 1100, height: 720 }) {
  const page = await browser.newPage();
  await page.setViewport(viewport);
  page.setDefaultTimeout(PATIENCE);
  page.on("pageerror", (error) => problems.push(`${name}: page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`${name}: console error: ${message.text()}`);
  });
  const response = await page.goto(WEB_URL, { waitUntil: "load" });
  assert.equal(response.status(), 200);
  const csp = response.headers()["content-security-policy"] ?? "";
  assert.match(csp, /script-src 'self'/, "the page is served with a CSP allowing only its own scripts");
  assert.match(csp, /connect-src 'self' ws:\/\/127\.0\.0\.1:\d+/, "the CSP allows the NATS WebSocket");
  return page;
}

async function shot(page, name) {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path });
  step(`screenshot ${path}`);
}

/** Fills the login form with the keyboard alone and presses Enter (or picks Register). */
async function logIn(page, user, password, { register = false } = {}) {
  await page.waitForSelector("input[name=user]");
  await page.$eval("input[name=user]", (el) => (el.value = ""));
  await page.focus("input[name=user]");
  await page.keyboard.type(user);
  await page.keyboard.press("Tab");
  await page.keyboard.type(password);
  if (register) {
    await page.keyboard.press("Tab"); // room
    await page.keyboard.press("Tab"); // Log in
    await page.keyboard.press("Tab"); // Register
    await page.keyboard.press("Enter");
  } else {
    await page.keyboard.press("Enter");
  }
}

async function loggedIn(page) {
  await page.waitForSelector("#chat-view:not([hidden]) .messages[data-room=general]", { timeout: PATIENCE, polling: 100 });
}

/** Types a line into the message box and presses Enter. */
async function type(page, line) {
  await page.focus("textarea[name=message]");
  await page.keyboard.type(line);
  await page.keyboard.press("Enter");
}

/** Waits until `room`'s list on `page` shows a message with exactly `text`. */
function shows(page, text, room = "general") {
  return page
    .waitForFunction(
      (room, text) =>
        [...document.querySelectorAll(`.messages[data-room="${room}"] .msg .text`)].some((t) => t.textContent === text),
      { timeout: PATIENCE, polling: 100 },
      room,
      text,
    )
    .catch(() => {
      throw new Error(`the page does not show "${text.slice(0, 60)}" in ${room}`);
    });
}

function count(page, text, room = "general") {
  return page.$$eval(
    `.messages[data-room="${room}"] .msg .text`,
    (nodes, text) => nodes.filter((t) => t.textContent === text).length,
    text,
  );
}

/** Waits until the own message `text` is marked sent (JetStream acknowledged it). */
function sent(page, text) {
  return page
    .waitForFunction(
      (text) =>
        [...document.querySelectorAll(".msg.own")].some(
          (li) => li.querySelector(".text").textContent === text && li.dataset.status === "sent",
        ),
      { timeout: 60_000, polling: 100 },
      text,
    )
    .catch(() => {
      throw new Error(`"${text}" was not marked sent`);
    });
}

function online(page, users) {
  return page
    .waitForFunction(
      (users) => [...document.querySelectorAll("#users li")].map((li) => li.textContent).join(",") === users.join(","),
      { timeout: PATIENCE, polling: 100 },
      users,
    )
    .catch(async () => {
      const shown = await page.$$eval("#users li", (n) => n.map((li) => li.textContent));
      throw new Error(`online list is ${JSON.stringify(shown)}, expected ${JSON.stringify(users)}`);
    });
}

/** The HTTP status nats-server answers a WebSocket handshake from `origin` with. */
function handshake(wsUrl, origin) {
  const url = new URL(wsUrl.replace(/^ws/, "http"));
  return new Promise((resolve, reject) => {
    const req = request(url, {
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        Origin: origin,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    req.on("upgrade", (response, socket) => (socket.destroy(), resolve(response.statusCode)));
    req.on("response", (response) => (response.resume(), resolve(response.statusCode)));
    req.on("error", reject);
    req.end();
  });
}

let terminal;
try {
  // nats-server takes the WebSocket only from the page's own origin.
  const { nats } = await (await fetch(new URL("config.json", WEB_URL))).json();
  assert.equal(await handshake(nats, new URL(WEB_URL).origin), 101, "the page's origin may open the WebSocket");
  assert.equal(await handshake(nats, "http://evil.example"), 403, "another origin may not");
  step("the WebSocket is open to the page's origin only");

  // Login errors are words; registration through the page (keyboard only).
  const alice = await open("alice");
  await logIn(alice, "alice", "short", { register: true });
  await until(alice, () => /8 characters/.test(document.querySelector("#login-error").textContent));
  await logIn(alice, "bob", "not bob's password");
  await alice.waitForFunction(
    () => /login refused for bob: wrong name or password/.test(document.querySelector("#login-error").textContent),
    { timeout: PATIENCE, polling: 100 },
  );
  await shot(alice, "01-login-refused");
  await alice.$eval("input[name=password]", (el) => (el.value = ""));
  await logIn(alice, "alice", "alice-secret-pw", { register: true });
  await loggedIn(alice);
  step("alice registered and logged in through the page");

  const bob = await open("bob");
  await logIn(bob, "bob", env("BOB_PASSWORD"));
  await loggedIn(bob);
  step("bob logged in");

  terminal = new Terminal("carol", env("CAROL_PASSWORD"));
  await terminal.waitFor((e) => e.event === "welcome", "welcome");
  step("carol joined from the terminal client");

  // Presence: everyone sees everyone; joined events.
  await online(alice, ["alice", "bob", "carol"]);
  await online(bob, ["alice", "bob", "carol"]);
  await until(alice, () =>
    [...document.querySelectorAll(".msg.system .text")].some((t) => t.textContent.startsWith("carol joined")),
  );

  // All directions: page → page + terminal, terminal → pages.
  await type(alice, "hello from alice's browser");
  await sent(alice, "hello from alice's browser");
  await shows(bob, "hello from alice's browser");
  await terminal.message("hello from alice's browser");
  await type(bob, "bob here, in another browser");
  await shows(alice, "bob here, in another browser");
  await terminal.message("bob here, in another browser");
  terminal.say("carol from the terminal");
  await shows(alice, "carol from the terminal");
  await shows(bob, "carol from the terminal");
  await type(alice, "/me waves");
  await terminal.waitFor((e) => e.event === "message" && e.type === "me" && e.text === "waves", "/me");
  await until(bob, () =>
    [...document.querySelectorAll(".msg.me .user")].some((u) => u.textContent === "* alice"),
  );
  await type(bob, "//slash is fine");
  await shows(alice, "/slash is fine");
  step("pages and terminal chat in all directions, /me and // work");

  // A burst of 40 lines entered at once (over the allowance of 20 at once, then 5 per
  // second), as Enter pressed on each line of a paste: the page paces itself, says
  // so, and is never muted.
  const burst = Array.from({ length: 40 }, (_, i) => `burst ${i + 1}`);
  await alice.evaluate((lines) => {
    const box = document.querySelector("textarea[name=message]");
    for (const line of lines) {
      box.value = line;
      box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    }
  }, burst);
  await until(alice, () => /^sending \d+\/\d+$/.test(document.querySelector("#send-state").textContent));
  await shot(alice, "02a-sending");
  await sent(alice, "burst 40");
  await shows(bob, "burst 40");
  await terminal.message("burst 40");
  const burstOnBob = await bob.$$eval(".messages[data-room=general] .msg .text", (nodes) =>
    nodes.map((t) => t.textContent).filter((text) => /^burst \d+$/.test(text)),
  );
  assert.deepEqual(burstOnBob, burst, "the burst arrived complete, once, in order");
  assert.equal(await alice.$eval("#send-state", (el) => el.textContent), "", "the progress is gone when all is sent");
  assert.ok(
    !terminal.events.some((e) => e.event === "system" && e.type === "muted"),
    "the paced page was not muted",
  );
  step("a burst of 40 lines goes out paced (sending n/m shown), complete and in order, without a mute");

  // Moderation, with carol (at the terminal) a moderator: the events show on the pages
  // as in the terminal client, and a deleted message leaves them.
  const systemText = (page, pattern) =>
    until(
      page,
      (source) => [...document.querySelectorAll(".msg.system .text")].some((t) => new RegExp(source).test(t.textContent)),
      pattern.source,
    ).catch(() => {
      throw new Error(`no system event matching ${pattern} on the page`);
    });
  terminal.say("a message to delete");
  const doomed = await terminal.message("a message to delete");
  await shows(alice, "a message to delete");
  await shows(bob, "a message to delete");
  const title = await alice.$$eval(".messages[data-room=general] .msg", (items) =>
    items.find((li) => li.querySelector(".text")?.textContent === "a message to delete")?.title,
  );
  assert.equal(title, `#${doomed.seq} (/delete ${doomed.seq})`, "a message shows its sequence on hover");
  terminal.say(`/delete ${doomed.seq}`);
  for (const page of [alice, bob]) {
    await systemText(page, /^\* carol deleted a message$/);
    assert.equal(await count(page, "a message to delete"), 0, "the tombstone took it off the page");
  }
  terminal.say("/mute bob 10m too <b>loud</b>");
  await systemText(alice, /^\* bob was muted by carol until .+ \(too <b>loud<\/b>\)$/);
  // bob's page says until when, and refuses his lines meanwhile.
  await until(bob, () => document.querySelector("#send-state").dataset.state === "muted");
  assert.match(await bob.$eval("#send-state", (el) => el.textContent), /^muted until .+ \(too <b>loud<\/b>\)$/);
  await type(bob, "am I muted?");
  await until(bob, () =>
    [...document.querySelectorAll(".msg.notice")].some((n) => /^you are muted until .+; you can write again then$/.test(n.textContent)),
  );
  assert.equal(await count(alice, "am I muted?"), 0, "a muted user's line is not sent");
  await shot(bob, "02c-muted");
  await bob.$eval("textarea[name=message]", (el) => (el.value = ""));
  terminal.say("/unmute bob");
  await systemText(alice, /^\* bob was unmuted by carol$/);
  await until(bob, () => document.querySelector("#status").dataset.state === "connected");
  await until(bob, () => document.querySelector("#send-state").dataset.state === "");
  await type(bob, "/kick carol");
  await until(bob, () =>
    [...document.querySelectorAll(".msg.notice")].some((n) => n.textContent.includes("only moderators may kick")),
  );
  await bob.$eval("textarea[name=message]", (el) => (el.value = "")); // a refused line stays to be fixed
  await shot(alice, "02b-moderation");
  step("moderation events show on the pages, a deleted message leaves them, a plain user's /kick is refused");

  // A hostile body from the terminal client: markup, script, bidi override, and 4000
  // combining marks.
  const hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> \u202Egnp.exe';
  const marks = "Z" + "\u0301".repeat(3999);
  terminal.say(hostile);
  terminal.say(marks);
  terminal.say("after the hostile ones");
  for (const page of [alice, bob]) {
    await shows(page, "after the hostile ones");
    const found = await page.evaluate(() => {
      const texts = [...document.querySelectorAll(".messages[data-room=general] .msg .text")];
      const hostile = texts.find((t) => t.textContent.includes("<img src=x"));
      const marks = texts.find((t) => t.textContent.startsWith("Z\u0301"));
      return {
        pwned: window.__pwned ?? null,
        elements: document.querySelectorAll("#lists img, #lists script").length,
        text: hostile?.textContent ?? null,
        marksHeight: marks ? marks.closest("li").getBoundingClientRect().height : null,
        marksLength: marks?.textContent.length ?? null,
      };
    });
    assert.equal(found.pwned, null, "the hostile script did not run");
    assert.equal(found.elements, 0, "no element came from a message body");
    assert.equal(found.text, '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> \uFFFDgnp.exe');
    assert.equal(found.marksLength, 4000, "the combining marks are all there");
    assert.ok(found.marksHeight < 200, `the combining marks stay on their line (${found.marksHeight}px)`);
  }
  await shot(alice, "02-chat-desktop-hostile");
  step("hostile bodies show as text: no script ran, no element was made, the bidi override is neutralised");

  // Rooms: join another, unread counts, switch back.
  await type(alice, "/join rust-dev");
  await alice.waitForSelector(".messages[data-room=rust-dev]:not([hidden])", { timeout: PATIENCE, polling: 100 });
  await type(bob, "while alice looks elsewhere");
  await alice.waitForFunction(
    () => document.querySelector(".room[data-room=general] .count").textContent === "1",
    { timeout: PATIENCE, polling: 100 },
  );
  await type(alice, "first words in rust-dev");
  await sent(alice, "first words in rust-dev");
  await shot(alice, "03-unread");
  await alice.focus(".room[data-room=general] button"); // the keyboard, not the mouse
  await alice.keyboard.press("Enter");
  await until(alice, () => document.querySelector(".room[data-room=general] .count").textContent === "");
  await shows(alice, "while alice looks elsewhere");
  await type(alice, "/leave rust-dev");
  await until(alice, () => !document.querySelector("[data-room=rust-dev]"));
  step("join, unread count, switch, leave work");

  // History on join, and older pages on scrolling up (through the history worker).
  // The terminal client paces them to the allowance: 16 at once, then 4.5 per second.
  for (let i = 0; i < 120; i++) terminal.say(`filler ${i}`);
  await terminal.message("filler 119", 90_000);
  const dave = await open("dave", { width: 390, height: 844 }); // a phone
  await logIn(dave, "dave", "dave-secret-pw", { register: true });
  await loggedIn(dave);
  await shows(dave, "filler 119");
  assert.equal(await count(dave, "hello from alice's browser"), 0, "only the newest page at first");
  await until(dave, 
    () => document.querySelector(".messages[data-room=general] .msg.replay") !== null,
  );
  await shot(dave, "04-phone-history");
  for (let i = 0; i < 10 && (await count(dave, "hello from alice's browser")) === 0; i++) {
    await dave.$eval(".messages[data-room=general]", (list) => {
      list.scrollTop = 0;
      list.dispatchEvent(new Event("scroll"));
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  await shows(dave, "hello from alice's browser");
  const fillers = await dave.$$eval(".messages[data-room=general] .msg .text", (nodes) =>
    nodes.map((n) => n.textContent).filter((t) => t.startsWith("filler ")),
  );
  assert.deepEqual(fillers, Array.from({ length: 120 }, (_, i) => `filler ${i}`), "every page once, in order");
  await online(alice, ["alice", "bob", "carol", "dave"]);
  step("history on join and older pages on scroll-up, each message once and in order");

  // Closing the page leaves cleanly (not by timeout).
  await dave.close();
  await alice.waitForFunction(
    () => [...document.querySelectorAll(".msg.system .text")].some((t) => t.textContent.startsWith("dave left")),
    { timeout: PATIENCE, polling: 100 },
  );
  const left = await alice.$$eval(".msg.system .text", (n) =>
    n.map((t) => t.textContent).filter((t) => t.startsWith("dave left")),
  );
  assert.deepEqual(left.length, 1);
  assert.ok(!left[0].includes("timed out"), `dave left by leaving: ${left[0]}`);
  await online(alice, ["alice", "bob", "carol"]);
  step("closing a page leaves the room at once");

  // Heartbeats kept everyone online so far (the presence TTL is 6 s here).
  const timeouts = await alice.$$eval(".msg.system .text", (n) =>
    n.map((t) => t.textContent).filter((t) => t.includes("timed out")),
  );
  assert.deepEqual(timeouts, [], "nobody timed out");

  // Reconnect: the server goes away, alice types meanwhile, the server comes back.
  assert.equal(await ask("stop"), "stopped");
  await until(alice, () => document.querySelector("#status").dataset.state === "disconnected");
  await type(alice, "typed while the server was down");
  const state = await alice.$$eval(".msg.own", (n) =>
    n.filter((li) => li.querySelector(".text").textContent === "typed while the server was down").map((li) => li.dataset.status),
  );
  assert.deepEqual(state, ["pending"], "not shown as sent before the ack");
  await shot(alice, "05-disconnected-pending");
  assert.equal(await ask("start"), "started");
  await sent(alice, "typed while the server was down");
  await shows(bob, "typed while the server was down");
  await terminal.message("typed while the server was down");
  await type(bob, "bob after the restart");
  await shows(alice, "bob after the restart");
  terminal.say("carol after the restart");
  await shows(alice, "carol after the restart");
  await shows(bob, "carol after the restart");
  for (const text of ["typed while the server was down", "bob after the restart", "carol after the restart"]) {
    assert.equal(await count(alice, text), 1, `alice sees "${text}" once`);
    assert.equal(await count(bob, text), 1, `bob sees "${text}" once`);
    assert.equal(terminal.count(text), 1, `carol sees "${text}" once`);
  }
  await until(alice, () => document.querySelector("#status").dataset.state === "connected");
  await shot(alice, "06-after-restart");
  await bob.setViewport({ width: 390, height: 844 });
  await shot(bob, "07-phone-chat");
  step("after a server restart: the pending message went out once, nothing lost or doubled");

  terminal.child.stdin.end();
  assert.equal(await terminal.exited, 0, "the terminal client ends cleanly");
  const unexpected = problems.filter((p) => !/WebSocket|ERR_CONNECTION_REFUSED|net::/.test(p));
  assert.deepEqual(unexpected, [], "no script errors in the pages");
  step("all checks passed");
} catch (error) {
  console.error(`[browser test] FAILED: ${error.stack ?? error}`);
  for (const p of problems) console.error(`[browser test] ${p}`);
  for (const page of await browser.pages()) {
    await page.screenshot({ path: join(SHOTS, `failure-${Date.now()}.png`) }).catch(() => {});
  }
  process.exitCode = 1;
} finally {
  terminal?.child.kill();
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
  fromRust.close();
}
process.exit(process.exitCode ?? 0);
