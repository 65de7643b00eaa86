// The page: login form, rooms, message lists, input. Everything from the wire goes
// into the page through textContent after safe() (never innerHTML), so no body can add
// markup, run script, or reorder text with bidi controls. chat.js does the NATS part.

import { ChatError, login, register } from "./chat.js";
import { moderationRequest, safe } from "./text.js";

const $ = (selector) => document.querySelector(selector);
const config = fetch("config.json").then((r) => r.json());

let session = null;
let current = null; // the room shown
/** What the line under the input says: a mute (with its end), or a paced burst. */
const sendState = { muted: "", batch: "", unmute: null };

function renderSendState() {
  const line = $("#send-state");
  line.textContent = sendState.muted || sendState.batch;
  line.dataset.state = sendState.muted ? "muted" : sendState.batch ? "sending" : "";
}
const views = new Map(); // room name → { list, tab, unread, users }
const pending = new Map(); // message id → its <li> (own messages not yet echoed)

/** An element with safe text. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = safe(text);
  return node;
}

function time(ts) {
  const date = ts ? new Date(ts) : null;
  if (!date || Number.isNaN(date.getTime())) return "";
  const sameDay = date.toDateString() === new Date().toDateString();
  const hm = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? hm : `${date.toLocaleDateString()} ${hm}`;
}

function messageItem(m) {
  const li = el("li", `msg ${m.kind}`);
  if (m.seq) {
    li.dataset.seq = m.seq;
    li.title = `#${m.seq} (/delete ${m.seq})`;
  }
  li.append(el("time", "ts", time(m.ts)));
  if (m.kind === "system") {
    li.append(el("span", "text", systemText(m)));
    return li;
  }
  const who = el("span", "user", m.kind === "me" ? `* ${m.user}` : m.user);
  if (m.spoofed) who.title = "the message claimed another sender";
  li.append(who, el("span", "text", m.text));
  return li;
}

/** Who a joined/left event names: "alice", "alice and bob", "alice, bob and carol",
 * "alice, bob and 37 others" (as the terminal client says it). */
function names(m) {
  const others = m.others ?? [];
  if (others.length === 0) return m.user;
  if (others.length === 1) return `${m.user} and ${others[0]}`;
  if (others.length === 2) return `${m.user}, ${others[0]} and ${others[1]}`;
  return `${m.user}, ${others[0]} and ${others.length - 1} others`;
}

/** What a system event says, as the terminal client says it (textContent only). */
function systemText(m) {
  if (m.type === "joined" || m.type === "left") {
    const count = m.users == null ? "" : ` (${m.users} online)`;
    const why = m.reason === "timeout" ? ", timed out" : "";
    return `${names(m)} ${m.type}${why}${count}`;
  }
  const by = m.by ? ` by ${m.by}` : "";
  const until = m.until ? ` until ${time(m.until) || m.until}` : "";
  const note = m.note ? ` (${m.note})` : m.reason === "flood" ? " (flooding)" : "";
  if (m.type === "deleted") {
    const n = m.seqs.length;
    const count = n === 1 ? "a message" : `${n} messages`;
    if (m.reason === "author") return `* ${m.user} deleted ${count}${note}`;
    if (m.by) return `* ${m.by} deleted ${count} from ${m.user}${note}`;
    return `* ${count} from ${m.user} removed${note}`;
  }
  const forever = m.type === "banned" && !m.until ? " until unbanned" : "";
  return `* ${m.user} was ${m.type}${by}${until}${forever}${note}`;
}

/** Honours a tombstone: the deleted messages leave the room's list. */
function hide(view, seqs) {
  for (const seq of seqs) view.list.querySelector(`.msg[data-seq="${seq}"]`)?.remove();
}

function setStatus(li, message) {
  li.dataset.status = message.status;
  let badge = li.querySelector(".state");
  if (!badge) {
    badge = el("span", "state");
    li.append(badge);
  }
  badge.textContent = { pending: "sending…", sent: "✓ sent", failed: "✗ not sent (Enter to retry)" }[message.status];
  badge.title = message.why ?? "";
  if (message.status === "failed") {
    li.tabIndex = 0;
    li.onkeydown = li.onclick = (event) => {
      if (event.type === "keydown" && event.key !== "Enter") return;
      session?.retry(message);
    };
  } else {
    li.removeAttribute("tabindex");
    li.onkeydown = li.onclick = null;
  }
}

function atBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

/** The first of the own messages not yet stored (echoed): they stay at the bottom. */
function firstUnstored(list) {
  return [...list.querySelectorAll(".msg.own")].find((li) => !li.dataset.seq) ?? null;
}

/** Adds `li` to the room's list, above own messages still on their way. */
function append(room, li) {
  const view = views.get(room.name);
  if (!view) return;
  const stick = atBottom(view.list);
  view.list.insertBefore(li, firstUnstored(view.list));
  if (stick) view.list.scrollTop = view.list.scrollHeight;
}

function notice(room, text) {
  const target = room ?? (current && { name: current });
  const li = el("li", "msg notice", text);
  if (target && views.has(target.name)) append(target, li);
  else $("#login-error").textContent = safe(text);
}

function renderRooms() {
  for (const [name, view] of views) {
    view.tab.querySelector(".count").textContent = view.unread ? String(view.unread) : "";
    view.tab.setAttribute("aria-current", name === current ? "true" : "false");
    view.tab.querySelector("button").setAttribute(
      "aria-label",
      `${name}${view.unread ? `, ${view.unread} unread` : ""}`,
    );
  }
}

function renderUsers() {
  const list = $("#users");
  list.replaceChildren(...(views.get(current)?.users ?? []).map((u) => el("li", null, u)));
}

function show(name) {
  current = name;
  for (const [room, view] of views) view.list.hidden = room !== name;
  const view = views.get(name);
  if (view) {
    view.unread = 0;
    view.list.scrollTop = view.list.scrollHeight;
  }
  renderRooms();
  renderUsers();
  $("#message").focus();
}

function addView(room) {
  const list = el("ol", "messages");
  list.setAttribute("role", "log");
  list.setAttribute("aria-live", "polite");
  list.setAttribute("aria-label", `messages of ${room.name}`);
  list.tabIndex = 0;
  list.dataset.room = room.name;
  list.addEventListener("scroll", () => {
    if (list.scrollTop < 60) olderPage(room);
  });
  $("#lists").append(list);
  const tab = el("li", "room");
  const button = el("button", null, room.name);
  button.type = "button";
  button.addEventListener("click", () => show(room.name));
  tab.append(button, el("span", "count"));
  tab.dataset.room = room.name;
  $("#rooms").append(tab);
  views.set(room.name, { list, tab, unread: 0, users: [], loading: false });
}

async function olderPage(room) {
  const view = views.get(room.name);
  if (!view || view.loading || room.older == null) return;
  view.loading = true;
  try {
    await room.olderPage();
  } finally {
    view.loading = false;
  }
}

const events = {
  status(state, text) {
    const status = $("#status");
    status.textContent = text;
    status.dataset.state = state;
  },
  welcome(room, welcome) {
    addView(room);
    append(room, el("li", "msg notice", welcome.welcome ?? `joined ${room.name}`));
  },
  history(room, messages, first) {
    const view = views.get(room.name);
    if (!view) return;
    const items = messages.map((m) => {
      const li = messageItem(m);
      li.classList.add("replay");
      return li;
    });
    if (first) {
      items.forEach((li) => append(room, li));
      return;
    }
    // An older page goes on top; keep what is on screen where it is.
    const before = view.list.scrollHeight;
    const firstMessage = view.list.querySelector(".msg[data-seq]");
    const anchor = firstMessage ?? view.list.firstChild;
    for (const li of items) view.list.insertBefore(li, anchor);
    view.list.scrollTop += view.list.scrollHeight - before;
    if (room.older == null) view.list.insertBefore(el("li", "msg notice", "beginning of the history"), view.list.firstChild);
  },
  live(room, m) {
    const view = views.get(room.name);
    if (!view) return;
    const own = m.id && pending.get(m.id);
    if (own) {
      // Our own message: it is stored at this position now; its badge still says
      // what the acknowledgement said (or will say).
      pending.delete(m.id);
      own.remove();
      own.dataset.seq = m.seq;
      own.title = `#${m.seq} (/delete ${m.seq})`;
      append(room, own);
      return;
    }
    if (m.type === "deleted") hide(view, m.seqs);
    append(room, messageItem(m));
    if (room.name !== current && m.kind !== "system") {
      view.unread += 1;
      renderRooms();
    }
  },
  users(room, users) {
    const view = views.get(room.name);
    if (!view) return;
    view.users = users;
    if (room.name === current) renderUsers();
  },
  notice,
  /** A burst of own messages waiting for the allowance: "sending 37/100". */
  progress(batch) {
    sendState.batch = batch.settled < batch.total ? `sending ${batch.settled}/${batch.total}` : "";
    renderSendState();
  },
  /** The user's standing after a login or a mute: a mute is told with its end. */
  standing(standing, mutedUntil) {
    const why = standing.reason ? ` (${standing.reason})` : "";
    const was = sendState.muted;
    sendState.muted = mutedUntil ? `muted until ${mutedUntil.toLocaleTimeString()}${why}` : "";
    clearTimeout(sendState.unmute);
    if (mutedUntil) {
      sendState.unmute = setTimeout(() => events.standing({}, null), mutedUntil.getTime() - Date.now());
    }
    // Told once per change (a mute is learnt from its event and again after the kick).
    if (sendState.muted && sendState.muted !== was) {
      notice(session?.rooms.get(current), `you are ${sendState.muted}; your lines are refused until then`);
    } else if (!sendState.muted && was) notice(session?.rooms.get(current), "your mute is over: you can write again");
    renderSendState();
  },
  outgoing(message) {
    const { id, room } = message.body;
    let li = pending.get(id) ?? document.querySelector(`.msg[data-id="${CSS.escape(id)}"]`);
    if (!li) {
      li = messageItem({ kind: message.body.type, user: session.user, text: message.body.text, ts: message.body.ts });
      li.classList.add("own");
      li.dataset.id = id;
      pending.set(id, li);
      const view = views.get(room);
      if (view) {
        const stick = atBottom(view.list);
        view.list.append(li); // last: after everything stored, in sending order
        if (stick) view.list.scrollTop = view.list.scrollHeight;
      }
    }
    setStatus(li, message);
  },
};

const HELP = [
  "/me ACTION — an action: * you waves",
  "/join ROOM — join another room and switch to it",
  "/leave [ROOM] — leave the current (or named) room",
  "/users — who is online here",
  "//text — says /text",
  "/delete SEQ — delete a message (yours; moderators: any); hover a message for its #SEQ",
  "/mute USER [DURATION] [REASON], /unmute USER — moderators (DURATION: 30s, 10m, 2h, 1d)",
  "/kick USER [REASON], /ban USER [DURATION] [REASON], /unban USER — moderators",
  "Enter sends, Shift+Enter makes a new line; Tab moves between rooms, messages and input",
];

async function command(line) {
  const [word, ...rest] = line.split(/\s+/);
  const arg = rest.join(" ").trim();
  const here = session.rooms.get(current);
  switch (word) {
    case "/me":
      if (!arg) throw new ChatError("/me needs an action: /me waves");
      session.send(current, "me", line.slice(3));
      return;
    case "/join": {
      if (!arg) throw new ChatError("/join needs a room: /join rust-dev");
      const room = await session.join(arg);
      show(room.name);
      return;
    }
    case "/leave": {
      const name = arg ? arg.toLowerCase() : current;
      if (!session.rooms.has(name)) throw new ChatError(`you are not in ${name}`);
      await session.leave(name);
      const view = views.get(name);
      view?.list.remove();
      view?.tab.remove();
      views.delete(name);
      if (name === current) {
        const next = views.keys().next().value;
        if (next) show(next);
        else {
          current = null;
          renderUsers();
        }
      }
      return;
    }
    case "/users":
      await here?.users();
      notice(here, `online in ${current}: ${(views.get(current)?.users ?? []).join(", ")}`);
      return;
    case "/help":
      for (const line of HELP) notice(here, line);
      return;
    default: {
      let request;
      try {
        request = moderationRequest(word, rest.filter(Boolean));
      } catch (error) {
        throw new ChatError(error.message);
      }
      if (!request) throw new ChatError(`unknown command ${word}; /help lists the commands`);
      if (!current) throw new ChatError("join a room first: /join general");
      const reply = await session.moderate(current, request);
      const until = reply.until ? ` until ${time(reply.until)}` : "";
      notice(here, `done: ${request.action} ${reply.target ?? ""}${until}`.trim());
      return;
    }
  }
}

async function submit() {
  const input = $("#message");
  const line = input.value;
  if (!line.trim() || !session) return;
  try {
    if (line.startsWith("//")) session.send(current, "chat", line.slice(1));
    else if (line.startsWith("/")) await command(line.trim());
    else {
      if (!current) throw new ChatError("join a room first: /join general");
      session.send(current, "chat", line);
    }
    input.value = "";
  } catch (error) {
    notice(session.rooms.get(current), error.message);
  }
}

$("#message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  }
});
$("#send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});

$("#join-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#join-room");
  try {
    await command(`/join ${input.value}`);
    input.value = "";
  } catch (error) {
    notice(session.rooms.get(current), error.message);
  }
});

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const action = event.submitter?.value ?? "login";
  const user = form.user.value.trim();
  const password = form.password.value;
  const error = $("#login-error");
  error.textContent = action === "register" ? "registering…" : "logging in…";
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  try {
    const { nats } = await config;
    if (action === "register") await register(nats, user, password);
    session = await login(nats, user, password, events);
    $("#me").textContent = safe(user);
    $("#login-view").hidden = true;
    $("#chat-view").hidden = false;
    events.status("connected", "connected");
    const room = await session.join(form.room.value || "general");
    show(room.name);
    error.textContent = "";
  } catch (e) {
    error.textContent = safe(e instanceof ChatError || e instanceof Error ? e.message : String(e));
    if (session) {
      await session.close();
      session = null;
    }
    $("#login-view").hidden = false;
    $("#chat-view").hidden = true;
  } finally {
    for (const button of form.querySelectorAll("button")) button.disabled = false;
  }
});

$("#logout").addEventListener("click", async () => {
  await session?.close();
  location.reload();
});

// Closing the page: leave every room at once (no time to wait for answers).
addEventListener("pagehide", () => {
  session?.leaveNow();
});
// Coming back from the back/forward cache after that: the rooms were left; start over.
addEventListener("pageshow", (event) => {
  if (event.persisted && session) location.reload();
});
