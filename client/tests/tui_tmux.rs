//! The full-screen UI end to end, as people use it: two `chat-client` binaries in
//! tmux against a real nats-server with the real workers, driven by keys and read
//! back with `tmux capture-pane`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use test_support::NatsServer;

/// One private tmux server for this test (its own socket), killed at the end.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        // Tests run side by side: each gets its own tmux server.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            socket: format!("natschat-tui-{}-{n}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (apt-get install tmux)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `chat-client` as `user` in a window of its own, `width`x`height`.
    async fn start(&self, server: &NatsServer, user: &str, width: u16, height: u16) {
        self.start_with(server, user, width, height, "").await
    }

    /// [`Tmux::start`] with more flags (`--plain`).
    async fn start_with(
        &self,
        server: &NatsServer,
        user: &str,
        width: u16,
        height: u16,
        flags: &str,
    ) {
        let password = server.register(user).await;
        let log = std::env::temp_dir().join(format!("{}-{user}.log", self.socket));
        let command = format!(
            "{} --user {user} --nats-url {} --history 20 {flags}",
            env!("CARGO_BIN_EXE_chat-client"),
            server.url()
        );
        let (w, h) = (width.to_string(), height.to_string());
        self.run(&[
            "new-session",
            "-d",
            "-s",
            user,
            "-x",
            &w,
            "-y",
            &h,
            "-e",
            &format!("CHAT_PASSWORD={password}"),
            "-e",
            &format!("CHAT_LOG_FILE={}", log.display()),
            "-e",
            "LOG_LEVEL=info",
            "-e",
            "CHAT_BELL=off",
            &command,
        ]);
    }

    /// Types `keys` (tmux key names, or literal text with `literal`).
    fn keys(&self, user: &str, keys: &[&str], literal: bool) {
        let mut args = vec!["send-keys", "-t", user];
        if literal {
            args.push("-l");
        }
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn type_line(&self, user: &str, text: &str) {
        self.keys(user, &[text], true);
        self.keys(user, &["Enter"], false);
    }

    fn screen(&self, user: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", user])
    }

    /// Waits until `user`'s screen satisfies `pred`; returns it.
    async fn wait(&self, user: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen(user);
            if pred(&screen) {
                println!("--- {user}: {what}\n{screen}");
                return screen;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{user}'s screen never showed {what}:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The line of the input box: the one under the rule naming the room.
fn input_line<'a>(screen: &'a str, room: &str) -> &'a str {
    let mut lines = screen.lines();
    let title = format!(" {room} ─");
    lines.find(|l| l.starts_with(&title));
    lines.next().unwrap_or("").trim_end()
}

#[tokio::test]
async fn two_people_chat_in_tmux() {
    let server = test_support::run_server();
    let _presence = presence(&server).await;
    let _history = history(&server).await;
    let tmux = Tmux::new();
    tmux.start(&server, "alice", 100, 30).await;
    tmux.start(&server, "bob", 100, 30).await;
    tmux.wait("alice", "the welcome", |s| {
        s.contains("connected") && s.contains("general (")
    })
    .await;
    tmux.wait("bob", "alice in the users pane", |s| {
        s.contains("Users (2)")
    })
    .await;

    // Messages both ways; an own message shows once.
    tmux.type_line("alice", "hello bob");
    tmux.wait("bob", "alice's message", |s| s.contains("alice: hello bob"))
        .await;
    tmux.type_line("bob", "hi alice");
    let screen = tmux
        .wait("alice", "bob's answer", |s| s.contains("bob: hi alice"))
        .await;
    assert_eq!(screen.matches("hello bob").count(), 1, "{screen}");

    // A half-typed line survives incoming messages and a resize.
    tmux.keys("bob", &["half typed line"], true);
    tmux.wait("bob", "the draft", |s| {
        input_line(s, "general").contains("half typed line")
    })
    .await;
    tmux.type_line("alice", "while you type");
    tmux.wait("bob", "a message while typing", |s| {
        s.contains("alice: while you type") && input_line(s, "general").contains("half typed line")
    })
    .await;
    tmux.run(&["resize-window", "-t", "bob", "-x", "60", "-y", "20"]);
    tmux.wait("bob", "the draft after a resize", |s| {
        s.lines().all(|l| l.chars().count() <= 60)
            && s.contains("alice: while you type")
            && input_line(s, "general").contains("half typed line")
    })
    .await;
    tmux.keys("bob", &["Enter"], false);
    tmux.wait("alice", "the draft sent", |s| {
        s.contains("bob: half typed line")
    })
    .await;

    // Unread counts and a mention mark in a room not shown.
    tmux.type_line("alice", "/join random");
    tmux.wait("alice", "random shown", |s| {
        input_line(s, "random").is_empty() && s.contains("2 random")
    })
    .await;
    tmux.type_line("bob", "anyone here?");
    tmux.type_line("bob", "ping @alice");
    let screen = tmux
        .wait("alice", "2 unread and a mention in general", |s| {
            s.lines().any(|l| l.contains("1 general 2 @"))
        })
        .await;
    assert!(
        !screen.contains("ping @alice"),
        "general is not shown: {screen}"
    );
    // Going there shows them and clears the marks, under a "new messages" line.
    tmux.keys("alice", &["M-1"], false);
    tmux.wait("alice", "general again", |s| {
        s.contains("bob: ping @alice")
            && s.contains("new messages")
            && !s.lines().any(|l| l.contains("1 general 2"))
    })
    .await;
    tmux.type_line("alice", "/quit");
    tmux.wait("bob", "alice left", |s| s.contains("alice left"))
        .await;
}

/// Pacing and moderation on the full-screen UI, with the moderation worker enforcing
/// the contract's allowance: 60 lines typed at once go out paced ("sending n/m" on the
/// status line), complete and in order, and bob is never muted for it; then alice (a
/// moderator, through the library) mutes bob, whose screen says so and keeps a line
/// typed meanwhile in the input box, unmutes him (the line goes out), and deletes one
/// of his messages, which leaves his screen (sequences shown with /seq).
#[tokio::test]
async fn pacing_and_moderation_in_tmux() {
    use chat_client::command::Moderation;
    let server = test_support::run_server_with(test_support::StackOptions {
        moderation: moderation_worker::Config::default(),
        ..Default::default()
    });
    let _presence = presence(&server).await;
    let _history = history(&server).await;
    let general = room("general");
    let admin = server.client().await;
    let grant = serde_json::json!({"user": "alice", "role": "moderator"}).to_string();
    let reply = admin
        .request("chat.admin.role", grant.into())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&reply.payload).contains("\"ok\":true"));
    let (alice, mut alice_events) = joined(&server, "alice", &general, 0).await;
    let tmux = Tmux::new();
    tmux.start(&server, "bob", 100, 30).await;
    tmux.wait("bob", "the welcome", |s| s.contains("Users (2)"))
        .await;

    let mut keys = Vec::new();
    for i in 1..=60 {
        keys.push(format!("line {i}"));
        keys.push("Enter".to_string());
    }
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    tmux.keys("bob", &keys, false);
    let status = |s: &str| s.lines().last().unwrap_or("").to_string();
    let screen = tmux
        .wait("bob", "the pacing on the status line", |s| {
            status(s).contains("│ sending ")
        })
        .await;
    println!("status line while pacing: {}", status(&screen));
    let texts: Vec<String> = messages(&mut alice_events, &general, 60)
        .await
        .into_iter()
        .map(|(_, text, _)| text)
        .collect();
    assert_eq!(
        texts,
        (1..=60).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    tmux.wait("bob", "the batch done", |s| {
        !status(s).contains("sending") && s.contains("bob: line 60")
    })
    .await;
    assert!(alice.muted().is_none());

    // Muted: said on screen and the status line; a line typed meanwhile stays.
    let mute = Moderation::Mute {
        user: chat_protocol::UserName::new("bob").unwrap(),
        seconds: Some(600),
        reason: Some("too fast".into()),
    };
    alice.moderate(&general, &mute).await.unwrap();
    tmux.wait("bob", "the mute", |s| {
        s.contains("you are muted until")
            && s.contains("bob was muted by alice until")
            && status(s).contains("muted until")
    })
    .await;
    tmux.type_line("bob", "let me speak");
    tmux.wait("bob", "the line refused and kept", |s| {
        s.contains("not sent: you are muted until")
            && input_line(s, "general").contains("let me speak")
    })
    .await;
    let unmute = Moderation::Unmute {
        user: chat_protocol::UserName::new("bob").unwrap(),
    };
    alice.moderate(&general, &unmute).await.unwrap();
    tmux.wait("bob", "the mute ended", |s| {
        s.contains("you can send messages again") && !status(s).contains("muted")
    })
    .await;
    tmux.keys("bob", &["Enter"], false);
    let (seq, text, _) = wait_for(&mut alice_events, message_in(&general)).await;
    assert_eq!(text, "let me speak");

    // Sequences shown, then a deleted message leaves the screen.
    tmux.type_line("bob", "/seq");
    tmux.wait("bob", "sequences", |s| {
        s.contains(&format!("#{seq} bob: let me speak"))
    })
    .await;
    alice
        .moderate(&general, &Moderation::Delete { seq })
        .await
        .unwrap();
    let screen = tmux
        .wait("bob", "the message deleted", |s| {
            s.contains("alice deleted a message from bob")
        })
        .await;
    assert!(!screen.contains("bob: let me speak"), "{screen}");
}

/// The plain line editor (`--plain`), with a small allowance (5 at once, then 1 per
/// second) so that typing outruns it: 12 lines typed quickly are paced with a few
/// `** sending` lines (not one per message) and arrive in order; a mute is said, a line typed meanwhile is refused and given back at the
/// prompt; a deleted message is noted (printed lines cannot be taken back).
#[tokio::test]
async fn pacing_and_moderation_in_the_plain_editor() {
    use chat_client::command::Moderation;
    let server = test_support::run_server_with(test_support::StackOptions {
        moderation: moderation_worker::Config {
            rate: chat_protocol::body::Rate {
                burst: 5,
                per_second: 1.0,
            },
            ..Default::default()
        },
        ..Default::default()
    });
    let _presence = presence(&server).await;
    let general = room("general");
    let admin = server.client().await;
    let grant = serde_json::json!({"user": "alice", "role": "moderator"}).to_string();
    let reply = admin
        .request("chat.admin.role", grant.into())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&reply.payload).contains("\"ok\":true"));
    let (alice, mut alice_events) = joined(&server, "alice", &general, 0).await;
    let tmux = Tmux::new();
    tmux.start_with(&server, "bob", 100, 40, "--plain").await;
    tmux.wait("bob", "the prompt", |s| s.contains("[general] bob>"))
        .await;

    // The line editor drops what is typed while it is not reading (before its next
    // prompt), so each line is seen in the editor before Enter, and the next waits for
    // the empty prompt that follows once the line is handled.
    let last = |s: &str| {
        s.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    for i in 1..=12 {
        let typed = format!("[general] bob> line {i}");
        tmux.keys("bob", &[&format!("line {i}")], true);
        tmux.wait("bob", "the line in the editor", |s| last(s) == typed)
            .await;
        tmux.keys("bob", &["Enter"], false);
        tmux.wait("bob", "the prompt again", |s| last(s) == "[general] bob>")
            .await;
    }
    let texts: Vec<(u64, String)> = messages(&mut alice_events, &general, 12)
        .await
        .into_iter()
        .map(|(seq, text, _)| (seq, text))
        .collect();
    let in_order: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    let expected: Vec<String> = (1..=12).map(|i| format!("line {i}")).collect();
    assert_eq!(in_order, expected);
    let screen = tmux
        .wait("bob", "the pacing said in a few lines", |s| {
            s.contains("** sending ") && s.contains("** sent ") && s.contains("bob: line 12")
        })
        .await;
    let progress = screen.lines().filter(|l| l.contains("** sent")).count()
        + screen.lines().filter(|l| l.contains("** sending")).count();
    assert!(
        progress < 10,
        "a few progress lines, not one per message: {screen}"
    );

    let mute = Moderation::Mute {
        user: chat_protocol::UserName::new("bob").unwrap(),
        seconds: Some(600),
        reason: Some("slow down".into()),
    };
    alice.moderate(&general, &mute).await.unwrap();
    tmux.wait("bob", "the mute", |s| {
        s.contains("** you are muted until") && s.contains("* bob was muted by alice until")
    })
    .await;
    tmux.type_line("bob", "let me speak");
    tmux.wait("bob", "the line refused and given back", |s| {
        s.contains("error: not sent: you are muted until")
            && last(s) == "[general] bob> let me speak"
    })
    .await;
    let (seq, _) = texts[0].clone();
    alice
        .moderate(&general, &Moderation::Delete { seq })
        .await
        .unwrap();
    tmux.wait("bob", "the deletion noted", |s| {
        s.contains(&format!(
            "* alice deleted a message from bob [#{seq} above is deleted]"
        ))
    })
    .await;
}
