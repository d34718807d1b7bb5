//! The server starts on both backends, requires authentication, and answers unknown paths
//! with pulpcore's 404 shape.

mod common;

use common::app::{backends, send, TestApp};

#[tokio::test]
async fn unauthenticated_and_unknown_requests() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let (status, body) = app.get("/pulp/api/v3/no-such-thing/").await;
        assert_eq!(status, 404, "{backend}: {body}");
        assert!(body["detail"].is_string(), "{backend}: {body}");
        let (status, _) = send(
            app.client
                .get(format!("{}/pulp/api/v3/no-such-thing/", app.api))
                .basic_auth("admin", Some("wrong")),
        )
        .await;
        assert_eq!(status, 404, "{backend}: the fallback needs no credentials");
        app.stop().await;
    }
}
