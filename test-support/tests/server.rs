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
