//! A flood of the largest requests allowed to the auth worker: at most
//! `concurrency + queue` are taken, the excess is refused at once with 503 "busy, try
//! again", every request is answered, and logins work afterwards.

use chat_protocol::auth;
use chat_runtime::hosting::{code, MAX_REQUEST_BYTES};
use test_support::{flood, padded, run_server_with, StackOptions};

#[tokio::test]
async fn a_registration_flood_is_refused_beyond_the_bound_and_every_request_answered() {
    let options = StackOptions {
        auth: auth_worker::Config {
            concurrency: 1,
            ..StackOptions::default().auth
        },
        ..StackOptions::default()
    };
    let server = run_server_with(options);
    let guest = async_nats::connect(server.url()).await.unwrap();
    // A weak password: refused by the worker (400) without hashing, when taken at all.
    let body = padded(
        r#"{"user":"flooder","password":"short"}"#,
        MAX_REQUEST_BYTES,
    );
    let requests = 600;
    let got = flood(&guest, auth::REGISTER, body, requests).await;
    assert_eq!(got.unanswered, 0, "{got:?}");
    let (bad, busy) = (
        got.refused_with(code::BAD_REQUEST),
        got.refused_with(code::UNAVAILABLE),
    );
    assert_eq!(bad + busy, requests, "{got:?}");
    assert!(bad >= 1, "{got:?}");
    assert!(busy >= 1, "the excess is refused: {got:?}");
    // The worker still registers and logs people in.
    let _alice = server.user_client("alice").await;
}
