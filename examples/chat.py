#!/usr/bin/env python3
"""A chat client in 60 lines of Python: proof that the wire is the API.

Joins a room through the presence worker, prints the room live (chat messages and
joined/left events) and sends what you type, with the same subjects and JSON bodies
as the Rust client (docs/protocol.md). Needs `pip install nats-py`.

    python3 examples/chat.py carol general
    echo "hello from python" | python3 examples/chat.py carol general
"""
import asyncio, datetime, json, os, sys, uuid

import nats

SAFE = lambda s: "".join(c if c.isprintable() else "\ufffd" for c in str(s))


async def main(user: str, room: str) -> None:
    nc = await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
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
        else:  # the sender is the subject's last token, never the body's "user"
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
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "pyuser",
                     sys.argv[2] if len(sys.argv) > 2 else "general"))
