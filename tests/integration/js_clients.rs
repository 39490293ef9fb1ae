//! The stock JavaScript clients apps use (Apollo Client 3 with automatic persisted queries,
//! graphql-ws 6, urql 6), run by Node.js against the real server: `tests/js/clients.mjs`.
//! It installs its pinned packages (`npm ci`) the first time.

use std::path::Path;

use crate::support::{TestApp, user};

#[tokio::test]
async fn stock_javascript_clients() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !dir.join("node_modules").exists() {
        let status = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .await
            .expect("npm (Node.js 18 or newer) runs the stock client checks");
        assert!(status.success(), "npm ci in tests/js");
    }
    let app = TestApp::spawn().await;
    let (token, id) = user(&app, 9201).await;
    let (giver, _) = user(&app, 9202).await;
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new("node")
            .arg("clients.mjs")
            .current_dir(&dir)
            .env("EASEL_URL", app.url("/"))
            .env("EASEL_TOKEN", &token)
            .env("EASEL_USER_ID", &id)
            .env("EASEL_GIVER_TOKEN", &giver)
            .output(),
    )
    .await
    .expect("the clients finish within a minute")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("ok graphql-ws: dispose closes with 1000"),
        "{stdout}"
    );
}
