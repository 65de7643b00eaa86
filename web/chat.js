// The chat over NATS, without any DOM: log in, register, rooms (presence, history,
// live feed), acknowledged publishing. The same subjects and bodies as the terminal
// client (docs/protocol.md); app.js turns what happens here into the page.
//
// - login(): name and password in CONNECT, replies on _INBOX_<name> (the only inbox a
//   user may subscribe to); afterwards a resume token (chat.auth.resume) is presented
//   on reconnects instead of the password, falling back to the password if refused.
// - Room: join through the presence worker, read the stream's last sequence L, replay
//   the newest chat messages <= L through the history worker, go live from L + 1 with
//   an ordered consumer; the last sequence shown is remembered and nothing at or below
//   it is shown twice, also after the consumer is recreated on a reconnect.
// - Outbox: one message awaits its JetStream acknowledgement at a time, in typing
//   order; a publish whose ack does not come is retried with the same Nats-Msg-Id, for
//   up to 110 s (inside the stream's 2-minute duplicate window).
// - Pacing: the outbox keeps inside the allowance the moderation worker enforces (the
//   user's standing, chat.standing.<user>, asked after each login and on a mute), as
//   the terminal client does, so a burst of lines goes out at the allowed rate instead
//   of getting its sender muted; while it waits, `on.progress` says "sending 37/100".
//   A muted user's lines are refused with the mute's end.

import {
  AuthorizationError,
  DeliverPolicy,
  jetstream,
  NoRespondersError,
  usernamePasswordAuthenticator,
  wsconnect,
} from "./vendor/nats.js";
import { checkPassword, checkRoom, checkUser, MAX_TEXT } from "./text.js";

const encoder = new TextEncoder();
const json = (value) => encoder.encode(JSON.stringify(value));
const REQUEST_TIMEOUT = 5000;
/** How long an unacknowledged message is retried (the duplicate window is 2 min). */
const RETRY_FOR = 110_000;
/** Chat messages replayed on join, and per older page. */
export const HISTORY = 50;

/** A refusal to show the person as it is (the message says what to do). */
export class ChatError extends Error {}

/** The allowance paced to when the standing is not available (docs/protocol.md). */
const DEFAULT_RATE = { burst: 20, per_second: 5 };

/**
 * A token bucket a little inside an allowance, as the terminal client's (client/src/
 * pacing.rs): a fifth of the burst (at least one message) kept in reserve and 90 % of
 * the rate, so jitter on the way to the server never puts a message over its bucket.
 */
class Bucket {
  constructor(rate) {
    this.set(rate);
    this.tokens = this.capacity;
    this.at = Date.now();
  }

  /** Paces to `rate` from now on (tokens saved stay, up to the new capacity). */
  set(rate) {
    const burst = Math.max(1, Math.floor(Number(rate?.burst) || DEFAULT_RATE.burst));
    const perSecond = Number(rate?.per_second);
    this.capacity = Math.max(1, burst - Math.max(1, Math.floor(burst / 5)));
    this.perSecond = 0.9 * (Number.isFinite(perSecond) && perSecond > 0 ? perSecond : DEFAULT_RATE.per_second);
    this.tokens = Math.min(this.tokens ?? this.capacity, this.capacity);
  }

  /** Takes a token: 0, or how many milliseconds to wait before asking again. */
  take() {
    const now = Date.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function isAuthError(error) {
  for (let e = error; e; e = e.cause) {
    if (e instanceof AuthorizationError || /authorization violation/i.test(String(e.message))) return true;
  }
  return false;
}

function unreachable(url) {
  return new ChatError(`cannot reach the chat server at ${url}; is it running?`);
}

/** Registers `user` as a guest (a connection without a password may only do this). */
export async function register(url, user, password) {
  checkUser(user);
  checkPassword(user, password);
  let nc;
  try {
    nc = await wsconnect({ servers: url, name: "natschat-web (guest)", reconnect: false });
  } catch {
    throw unreachable(url);
  }
  try {
    const reply = await nc.request("chat.auth.register", json({ user, password }), { timeout: 10_000 });
    const body = reply.json();
    if (!body.ok) throw new ChatError(`registration refused: ${body.error ?? "no reason given"}`);
  } catch (error) {
    if (error instanceof ChatError) throw error;
    throw new ChatError("the server's login service is not answering; try again later");
  } finally {
    await nc.close();
  }
}

/** Logs in; `on` gets `status(state, text)` calls about the connection. */
export async function login(url, user, password, on) {
  checkUser(user);
  if (!password) throw new ChatError("type your password");
  let token = null;
  const authenticator = usernamePasswordAuthenticator(
    () => user,
    () => token ?? password,
  );
  let nc;
  try {
    nc = await wsconnect({
      servers: url,
      authenticator,
      inboxPrefix: `_INBOX_${user}`,
      name: "natschat-web",
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
      // A refused resume token is answered with the password on the next attempt.
      ignoreAuthErrorAbort: true,
    });
  } catch (error) {
    if (isAuthError(error)) throw new ChatError(`login refused for ${user}: wrong name or password`);
    throw unreachable(url);
  }
  const session = new Session(nc, user, on);
  session.watch(() => {
    token = null;
  });
  nc.request("chat.auth.resume", new Uint8Array(), { timeout: REQUEST_TIMEOUT })
    .then((reply) => {
      const body = reply.json();
      if (body.ok && typeof body.token === "string") token = body.token;
    })
    .catch(() => {}); // without a token, reconnects present the password
  session.checkStanding();
  return session;
}

/** A logged-in connection: its rooms and its outbox. */
export class Session {
  constructor(nc, user, on) {
    this.nc = nc;
    this.user = user;
    this.on = on;
    this.js = jetstream(nc, { timeout: REQUEST_TIMEOUT });
    this.id = crypto.randomUUID().replaceAll("-", "");
    this.rooms = new Map();
    this.outbox = [];
    this.sending = false;
    this.bucket = new Bucket(DEFAULT_RATE);
    /** The user's standing (mute, allowance), once asked. */
    this.standing = null;
    /** Messages queued since the outbox was last empty, and how many are settled. */
    this.batch = { total: 0, settled: 0, waited: false };
  }

  /**
   * Asks the user's standing: the allowance to pace to, and a mute (told through
   * `on.standing`). Without an answer the pacing keeps its allowance.
   */
  async checkStanding() {
    try {
      const standing = await this.request(`chat.standing.${this.user}`);
      if (typeof standing !== "object" || standing === null || standing.ok === false) return;
      this.standing = standing;
      this.bucket.set(standing.rate);
      this.on.standing?.(standing, this.mutedUntil());
    } catch {
      // the moderation service is not answering: pace to what is known
    }
  }

  /** The end of the user's mute (a Date), or null when not muted now. */
  mutedUntil() {
    const until = this.standing?.muted_until ? new Date(this.standing.muted_until) : null;
    return until && until.getTime() > Date.now() ? until : null;
  }

  /** Follows the connection's state; `authFailed` runs when a login was refused. */
  async watch(authFailed) {
    for await (const s of this.nc.status()) {
      if (s.type === "disconnect") this.on.status("disconnected", "connection lost; reconnecting…");
      else if (s.type === "reconnect") {
        this.on.status("connected", "reconnected");
        for (const room of this.rooms.values()) room.resume();
        this.checkStanding(); // a kick (a mute) logs in again
        this.pump();
      } else if (s.type === "error" && isAuthError(s.error)) authFailed();
    }
  }

  async request(subject, body) {
    const reply = await this.nc.request(subject, body === undefined ? new Uint8Array() : json(body), {
      timeout: REQUEST_TIMEOUT,
    });
    return reply.json();
  }

  /** Sends a moderation request about `room`; the worker's reply, or a ChatError. */
  async moderate(room, request) {
    let reply;
    try {
      reply = await this.request(`chat.moderate.${room}.${this.user}`, request);
    } catch {
      throw new ChatError("the moderation service is not answering; try again later");
    }
    if (!reply.ok) throw new ChatError(`refused: ${reply.error ?? "no reason given"}`);
    return reply;
  }

  /** Joins `typed` (a room name as typed); the Room reports through `on`. */
  async join(typed) {
    const name = checkRoom(typed);
    let room = this.rooms.get(name);
    if (room) return room;
    room = new Room(this, name);
    this.rooms.set(name, room);
    try {
      await room.join();
    } catch (error) {
      this.rooms.delete(name);
      room.stop();
      throw error;
    }
    return room;
  }

  async leave(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    this.rooms.delete(name);
    await room.leave();
  }

  /**
   * Queues `text` for `room` as `kind` ("chat" or "me"); returns the message, whose
   * `status` goes pending → sent (acknowledged) or failed; `on.outgoing` hears each
   * change.
   */
  send(room, kind, text) {
    text = text.trim();
    if (!text) throw new ChatError("nothing to send");
    if ([...text].length > MAX_TEXT) {
      throw new ChatError(`a message is at most ${MAX_TEXT} characters; this one has ${[...text].length}`);
    }
    const muted = this.mutedUntil();
    if (muted) {
      const why = this.standing.reason ? ` (${this.standing.reason})` : "";
      throw new ChatError(`you are muted until ${muted.toLocaleTimeString()}${why}; you can write again then`);
    }
    const body = {
      v: 1,
      type: kind,
      id: crypto.randomUUID(),
      room,
      user: this.user,
      text,
      ts: new Date().toISOString(),
    };
    const message = { body, status: "pending", since: Date.now(), seq: null, why: "", paced: false };
    if (!this.outbox.length) this.batch = { total: 0, settled: 0, waited: false };
    this.batch.total += 1;
    this.outbox.push(message);
    this.on.outgoing(message);
    this.pump();
    return message;
  }

  /** Puts a failed message back in the queue (same id: stored at most once). */
  retry(message) {
    if (message.status !== "failed") return;
    message.status = "pending";
    message.since = Date.now();
    this.outbox.push(message);
    this.on.outgoing(message);
    this.pump();
  }

  /**
   * Publishes the queue in order, one message awaiting its ack at a time, each taking a
   * token of the allowance first (waiting for it, with progress, when there is none).
   */
  async pump() {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.outbox.length) {
        const message = this.outbox[0];
        const { body } = message;
        for (let wait = message.paced ? 0 : this.bucket.take(); wait > 0; wait = this.bucket.take()) {
          this.batch.waited = true;
          this.on.progress?.(this.batch);
          await sleep(wait);
        }
        message.paced = true;
        try {
          const ack = await this.js.publish(`chat.room.${body.room}.msg.${this.user}`, json(body), {
            msgID: body.id,
            timeout: REQUEST_TIMEOUT,
            retries: 0,
          });
          message.status = "sent";
          message.seq = ack.seq;
        } catch (error) {
          // JetStream answered with an error (the stream refused it): retrying the same
          // message cannot help. Anything else (no answer, no responders while the
          // stream's server comes back) is retried.
          const refused = typeof error?.apiError === "function";
          if (!refused && Date.now() - message.since < RETRY_FOR && !this.nc.isClosed()) {
            await sleep(1000);
            continue; // the same message again, with the same Nats-Msg-Id
          }
          message.status = "failed";
          message.why = refused ? `refused: ${error.message}` : "no acknowledgement; it may not have been stored";
        }
        this.outbox.shift();
        this.batch.settled += 1;
        this.on.outgoing(message);
        if (this.batch.waited) this.on.progress?.(this.batch);
      }
    } finally {
      this.sending = false;
    }
  }

  /** Leaves every room right away, without waiting for answers (the page is closing). */
  leaveNow() {
    for (const room of this.rooms.values()) room.leaveNow();
  }

  async close() {
    await Promise.allSettled([...this.rooms.keys()].map((name) => this.leave(name)));
    await this.nc.drain().catch(() => {});
  }
}

/** One joined room: presence, history, live feed. */
export class Room {
  constructor(session, name) {
    this.session = session;
    this.name = name;
    this.last = 0; // the last sequence shown
    this.older = null; // `before` cursor of the next older history page, or null
    this.heartbeat = null;
    this.messages = null; // the live consumer's iterator
    this.stopped = false;
    this.generation = 0;
  }

  get on() {
    return this.session.on;
  }

  async presence(type) {
    const subject = `chat.presence.${this.name}.${this.session.user}`;
    return this.session.request(subject, { type, session: this.session.id });
  }

  async join() {
    let welcome;
    try {
      welcome = await this.presence("join");
    } catch (error) {
      throw new ChatError(
        error instanceof NoRespondersError || /no responders/i.test(error.message)
          ? `cannot join ${this.name}: the presence service is not running`
          : `cannot join ${this.name}: ${error.message}`,
      );
    }
    if (!welcome.ok) throw new ChatError(`cannot join ${this.name}: ${welcome.error}`);
    const info = await this.session.request(`$JS.API.STREAM.INFO.CHAT_${this.name}`);
    const last = info?.state?.last_seq ?? 0;
    this.on.welcome(this, welcome);
    if (last > 0) await this.page({ limit: HISTORY, before: last + 1 }, true);
    this.last = Math.max(this.last, last);
    this.live();
    this.beat(welcome.heartbeat);
    this.users();
  }

  /** One history page: on join (`first`) or an older one when scrolling up. */
  async page(request, first = false) {
    let page;
    try {
      page = await this.session.request(`chat.history.${this.name}`, request);
    } catch (error) {
      this.on.notice(this, `history of ${this.name} is not available: ${error.message}`);
      return;
    }
    if (page.ok === false) {
      this.on.notice(this, `history of ${this.name}: ${page.error}`);
      return;
    }
    const messages = (page.messages ?? []).flatMap((m) => decode(m.subject, m.message, m.seq));
    this.older = page.next ?? null;
    this.on.history(
      this,
      messages.filter((m) => m.kind !== "system"),
      first,
    );
  }

  /** The next older page, if any. */
  async olderPage() {
    if (this.older == null) return false;
    const before = this.older;
    this.older = null; // one request at a time
    await this.page({ limit: HISTORY, before });
    return true;
  }

  /** The live feed: an ordered consumer from the last sequence shown + 1. */
  async live() {
    const generation = ++this.generation;
    let backoff = 250;
    while (!this.stopped && generation === this.generation) {
      try {
        const consumer = await this.session.js.consumers.get(`CHAT_${this.name}`, {
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: this.last + 1,
        });
        const messages = await consumer.consume({ max_messages: 256 });
        this.messages = messages;
        backoff = 250;
        for await (const m of messages) {
          if (generation !== this.generation) break;
          if (m.seq <= this.last) continue;
          this.last = m.seq;
          let body;
          try {
            body = JSON.parse(m.string());
          } catch {
            console.warn(`skipped a message of ${this.name} that is not JSON (seq ${m.seq})`);
            continue;
          }
          for (const message of decode(m.subject, body, m.seq)) {
            this.on.live(this, message);
            if (message.kind === "system") this.users();
            if (message.user === this.session.user && (message.type === "muted" || message.type === "unmuted")) {
              this.session.checkStanding();
            }
          }
        }
      } catch (error) {
        if (this.stopped || generation !== this.generation) return;
        console.warn(`live feed of ${this.name}: ${error.message}; reopening`);
      }
      if (this.stopped || generation !== this.generation) return;
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, 5000);
    }
  }

  /** After a reconnect: a fresh consumer from the last sequence shown, a heartbeat. */
  resume() {
    this.messages?.stop();
    this.live();
    this.presence("heartbeat")
      .then(() => this.users())
      .catch(() => {});
  }

  beat(seconds) {
    const every = Math.max(1, Number(seconds) || 10) * 1000;
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      this.presence("heartbeat")
        .then((reply) => {
          if (reply.rejoined) this.users();
        })
        .catch(() => {}); // the connection is down: the next one goes through
    }, every);
  }

  async users() {
    try {
      const reply = await this.session.request(`chat.users.${this.name}`);
      if (Array.isArray(reply.users)) this.on.users(this, reply.users.map(String));
    } catch {
      // shown again with the next joined/left event or reconnect
    }
  }

  stop() {
    this.stopped = true;
    clearInterval(this.heartbeat);
    this.messages?.stop();
  }

  async leave() {
    this.stop();
    await this.presence("leave").catch(() => {});
  }

  /** A leave that does not wait for its answer (page close). */
  leaveNow() {
    this.stop();
    const subject = `chat.presence.${this.name}.${this.session.user}`;
    this.session.nc.publish(subject, json({ type: "leave", session: this.session.id }), {
      reply: `_INBOX_${this.session.user}.leave`,
    });
  }
}

/**
 * A stored body → the messages to show: chat messages, joined/left and moderation
 * events (`deleted` carries the sequences to hide). The
 * sender is the subject's last token (the server enforces it); a body claiming another
 * is flagged as spoofed. Anything malformed is skipped.
 */
/** The system events shown: presence and moderation (docs/protocol.md). */
const SYSTEM_TYPES = new Set(["joined", "left", "muted", "unmuted", "kicked", "banned", "unbanned", "deleted"]);

/** Most sequences one tombstone hides. */
const MAX_TOMBSTONE = 10000;

/** Most names kept of one joined/left event's `others` (a burst of arrivals). */
const MAX_OTHERS = 1000;

/** A user name as the protocol allows it (docs/protocol.md "Names"). */
const USER_NAME = /^[A-Za-z0-9_-]{1,32}$/;

function decode(subject, body, seq) {
  if (typeof body !== "object" || body === null || typeof subject !== "string") return [];
  const parts = subject.split(".");
  if (parts.length === 5 && parts[3] === "msg") {
    if (typeof body.text !== "string" || !body.text) return [];
    return [
      {
        kind: body.type === "me" ? "me" : "chat",
        seq,
        id: typeof body.id === "string" ? body.id : "",
        user: parts[4],
        spoofed: typeof body.user === "string" && body.user !== parts[4],
        text: body.text,
        ts: typeof body.ts === "string" ? body.ts : null,
      },
    ];
  }
  if (parts.length === 4 && parts[3] === "sys") {
    if (!SYSTEM_TYPES.has(body.type)) return [];
    const text = (value, max) => (typeof value === "string" && value ? value.slice(0, max) : null);
    return [
      {
        kind: "system",
        seq,
        type: body.type,
        user: String(body.user ?? "?").slice(0, 64),
        reason: String(body.reason ?? "").slice(0, 32),
        users: Number.isFinite(body.users) ? body.users : null,
        ts: typeof body.ts === "string" ? body.ts : null,
        by: text(body.by, 64),
        until: text(body.until, 64),
        note: text(body.note, 200),
        // The tombstone: which sequences of the room were deleted (bounded, so a
        // hostile event cannot make the page loop for long).
        seqs: Array.isArray(body.seqs)
          ? body.seqs.filter((n) => Number.isSafeInteger(n) && n > 0).slice(0, MAX_TOMBSTONE)
          : [],
        // joined/left of a burst: the other users the same happened to (only valid
        // names, bounded).
        others: Array.isArray(body.others)
          ? body.others.filter((n) => typeof n === "string" && USER_NAME.test(n)).slice(0, MAX_OTHERS)
          : [],
      },
    ];
  }
  return [];
}
