#!/usr/bin/env python3
"""A chat client in 70 lines of Python: proof that the wire is the API.

Logs in (name and password in CONNECT, replies on _INBOX_<name>), joins a room through
the presence worker, prints the room live (chat messages and joined/left events) and
sends what you type, with the same subjects and JSON bodies as the Rust client
(docs/protocol.md). Needs `pip install nats-py`. The password comes from CHAT_PASSWORD
or is asked; `--register` creates the account first.

    python3 examples/chat.py --register carol general
    echo "hello from python" | CHAT_PASSWORD=... python3 examples/chat.py carol general
"""
import asyncio, datetime, getpass, json, os, sys, uuid

import nats

SAFE = lambda s: "".join(c if c.isprintable() else "\ufffd" for c in str(s))
URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")


async def quiet(_error) -> None:  # connection errors are reported below, once
    pass


async def main(user: str, room: str, register: bool) -> None:
    password = os.environ.get("CHAT_PASSWORD") or getpass.getpass(f"password for {user}: ")
    if register:  # as a guest (no password): the only thing a guest may do
        guest = await nats.connect(URL, error_cb=quiet)
        body = json.dumps({"user": user, "password": password}).encode()
        reply = json.loads((await guest.request("chat.auth.register", body, timeout=10)).data)
        await guest.close()
        if not reply.get("ok"):
            sys.exit(f"registration refused: {SAFE(reply.get('error'))}")
    try:
        nc = await nats.connect(URL, user=user, password=password, error_cb=quiet,
                                inbox_prefix=f"_INBOX_{user}".encode())
    except Exception:
        sys.exit(f"login refused for {user}: wrong name or password (or use --register)")
    js = nc.jetstream()
    session = uuid.uuid4().hex

    async def presence(kind: str) -> dict:
        body = json.dumps({"type": kind, "session": session}).encode()
        reply = await nc.request(f"chat.presence.{room}.{user}", body, timeout=3)
        return json.loads(reply.data)

    welcome = await presence("join")
    if not welcome.get("ok"):
        sys.exit(f"join refused: {welcome.get('error')}")
    print(f"== {SAFE(welcome['welcome'])}")

    async def show(msg) -> None:
        body = json.loads(msg.data)
        if msg.subject.endswith(".sys"):
            print(f"-- {SAFE(body['user'])} {body['type']} ({body['users']} online)")
        else:  # the sender is the subject's last token, which the server enforces
            sender = msg.subject.rsplit(".", 1)[1]
            print(f"<{SAFE(sender)}> {SAFE(body['text'])}")

    # Live from now on: an ordered consumer on the room stream, new messages only.
    await js.subscribe(f"chat.room.{room}.>", cb=show, ordered_consumer=True,
                       deliver_policy=nats.js.api.DeliverPolicy.NEW)

    async def heartbeats() -> None:
        while True:
            await asyncio.sleep(welcome["heartbeat"])
            await presence("heartbeat")
    beating = asyncio.create_task(heartbeats())

    loop = asyncio.get_running_loop()
    while line := (await loop.run_in_executor(None, sys.stdin.readline)):
        text = line.strip()
        if not text:
            continue
        message = {"v": 1, "type": "chat", "id": str(uuid.uuid4()), "room": room, "user": user,
                   "text": text, "ts": datetime.datetime.now(datetime.timezone.utc)
                   .isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        # Acknowledged by JetStream; a retry with the same Nats-Msg-Id is stored once.
        ack = await js.publish(f"chat.room.{room}.msg.{user}", json.dumps(message).encode(),
                               headers={"Nats-Msg-Id": message["id"]})
        print(f"(stored as #{ack.seq})")
    await asyncio.sleep(0.5)  # let the echo of the last line arrive
    beating.cancel()
    await presence("leave")
    await nc.drain()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--register"]
    asyncio.run(main(args[0] if args else "pyuser", args[1] if len(args) > 1 else "general",
                     "--register" in sys.argv[1:]))
