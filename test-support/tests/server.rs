use test_support::run_server;

#[tokio::test]
async fn starts_restarts_and_keeps_the_store() {
    let mut server = run_server();
    let js = server.jetstream().await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "T".into(),
        subjects: vec!["t.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish("t.x", "1".into()).await.unwrap().await.unwrap();
    let port = server.port();
    server.restart();
    assert_eq!(server.port(), port);
    let js = server.jetstream().await;
    let mut stream = js.get_stream("T").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
}

/// `scripts/nats-server-path` refuses a server older than 2.11, saying which version
/// it found and which it needs, and accepts a new enough one.
#[test]
fn the_finder_refuses_a_server_that_is_too_old() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nats-server-path");
    let fake = |version: &str| {
        let path = dir.path().join(format!("nats-server-{version}"));
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho 'nats-server: v{version}'\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let run = |bin: &std::path::Path| {
        std::process::Command::new("bash")
            .arg(&script)
            .env("NATS_SERVER_BIN", bin)
            .output()
            .unwrap()
    };

    let old = run(&fake("2.9.10"));
    assert!(!old.status.success());
    let said = String::from_utf8_lossy(&old.stderr);
    assert!(said.contains("2.9.10") && said.contains("2.11"), "{said}");

    let new = fake("2.12.1");
    let ok = run(&new);
    assert!(ok.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        new.to_str().unwrap()
    );
}

/// A publish above the configuration's `max_payload` (128 KiB) is refused by the
/// server itself, not only by a client that checks it first: a raw connection
/// (async-nats refuses such a publish before sending it) writes the PUB, and the
/// server answers `-ERR 'Maximum Payload Violation'` and closes the connection.
#[test]
fn the_server_refuses_a_payload_above_max_payload() {
    use std::io::{BufRead, BufReader, Write};
    let server = run_server();
    let admin = server.credentials(chat_protocol::auth::static_users::ADMIN);
    let stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("INFO "), "{line}");
    let info: serde_json::Value = serde_json::from_str(&line[5..]).unwrap();
    let max_payload = info["max_payload"].as_u64().unwrap() as usize;
    assert_eq!(max_payload, 128 * 1024);
    let connect = serde_json::json!({
        "user": admin.user, "pass": admin.password, "verbose": false, "pedantic": false,
        "protocol": 1, "headers": true,
    });
    let mut writer = stream;
    // The next line from the server that is not an INFO update.
    let mut next = move || loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if !line.starts_with("INFO ") {
            return line;
        }
    };
    write!(writer, "CONNECT {connect}\r\nPING\r\n").unwrap();
    assert_eq!(next().trim_end(), "PONG", "logged in");
    // The largest allowed goes through; one byte more is refused.
    write!(writer, "PUB t.ok {max_payload}\r\n").unwrap();
    writer.write_all(&vec![b'x'; max_payload]).unwrap();
    write!(writer, "\r\nPING\r\n").unwrap();
    assert_eq!(
        next().trim_end(),
        "PONG",
        "the largest allowed payload is accepted"
    );
    let too_big = max_payload + 1;
    write!(writer, "PUB t.big {too_big}\r\n").unwrap();
    let _ = writer.write_all(&vec![b'x'; too_big]);
    let _ = write!(writer, "\r\n");
    let line = next();
    assert!(
        line.contains("Maximum Payload Violation"),
        "the server refuses it: {line}"
    );
}
