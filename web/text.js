// Names and text: the same rules as the chat-protocol crate (docs/protocol.md, "Names"
// and "Robustness"), so a bad name is refused here with the reason, and nothing from
// the wire can display differently from what it says.

const USER = /^[A-Za-z0-9_-]{1,32}$/;
const ROOM = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** The user name, or an Error saying what is allowed. */
export function checkUser(name) {
  if (USER.test(name)) return name;
  throw new Error(`user name "${safe(name)}" is not allowed: a user name is 1-32 characters of A-Z, a-z, 0-9, '-' and '_'`);
}

/** The room name as a person types it (trimmed, lower-cased), or an Error. */
export function checkRoom(typed) {
  const name = typed.trim().toLowerCase();
  if (ROOM.test(name)) return name;
  throw new Error(`room name "${safe(typed)}" is not allowed: a room is 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit`);
}

/** The password, or an Error with the registration rules. */
export function checkPassword(user, password) {
  if ([...password].length < 8) throw new Error("a password is 8 characters or more");
  if (password === user) throw new Error("a password must not be the user name");
  return password;
}

/// Control and invisible format characters (C0/C1, DEL, bidi marks, embeddings,
/// overrides and isolates, zero-width characters, BOM, tag characters) and the Unicode
/// line/paragraph separators. Line feeds are kept: the page shows them as breaks.
const UNSAFE = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

/** Text from the wire, fit for textContent: every unsafe character becomes U+FFFD. */
export function safe(text) {
  return String(text ?? "").replace(UNSAFE, (c) => (c === "\n" ? "\n" : "\uFFFD"));
}

/** A message text as sent: at most 4000 characters after trimming. */
export const MAX_TEXT = 4000;

/// Units of a mute or ban's DURATION, in seconds.
const UNITS = { s: 1, m: 60, h: 3600, d: 86400 };
const MAX_SECONDS = 31536000;

/** `30s`, `10m`, `2h`, `1d` → seconds, or an Error saying what is allowed. */
export function parseDuration(text) {
  const match = /^(\d{1,9})([smhd])$/.exec(text);
  const seconds = match ? Number(match[1]) * UNITS[match[2]] : 0;
  if (seconds >= 1 && seconds <= MAX_SECONDS) return seconds;
  throw new Error(`bad duration "${safe(text)}": a number and a unit: 30s, 10m, 2h or 1d (at most 365d)`);
}

/**
 * A moderation command (as the terminal client takes it) → the request body of
 * chat.moderate.<room>.<user>, or an Error with the usage; null if `word` is not one.
 */
export function moderationRequest(word, args) {
  const usage = {
    "/mute": "/mute USER [DURATION] [REASON]",
    "/unmute": "/unmute USER",
    "/kick": "/kick USER [REASON]",
    "/ban": "/ban USER [DURATION] [REASON]",
    "/unban": "/unban USER",
    "/delete": "/delete SEQ",
  }[word];
  if (!usage) return null;
  const [first, ...rest] = args;
  if (!first) throw new Error(`usage: ${usage}`);
  if (word === "/delete") {
    const digits = first.replace(/^#/, "");
    if (!/^\d{1,15}$/.test(digits) || Number(digits) < 1 || rest.length) {
      throw new Error(`bad sequence "${safe(first)}": /delete takes the number shown as #123 when you hover a message`);
    }
    return { v: 1, action: "delete", seq: Number(digits) };
  }
  const request = { v: 1, action: word.slice(1), target: checkUser(first.replace(/^@/, "")) };
  let words = rest;
  if ((word === "/mute" || word === "/ban") && /^\d/.test(words[0] ?? "")) {
    request.seconds = parseDuration(words[0]);
    words = words.slice(1);
  }
  if (words.length && (word === "/unmute" || word === "/unban")) throw new Error(`usage: ${usage}`);
  const reason = words.join(" ");
  if (reason) {
    if ([...reason].length > 200) throw new Error("a reason is at most 200 characters");
    request.reason = reason;
  }
  return request;
}
