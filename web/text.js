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
