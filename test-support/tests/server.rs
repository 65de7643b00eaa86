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
