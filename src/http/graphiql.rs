//! The GraphiQL 4 playground at `/` and `/graphiql`, with subscriptions over `/graphql/ws`.
//! Its scripts load from `EASEL_GRAPHIQL_ASSETS_URL` (unpkg by default), so a closed network
//! can serve them from a mirror of the npm packages `react@18`, `react-dom@18`, `graphiql@4`
//! laid out as unpkg does (`<base>/graphiql@4/graphiql.min.js`). The script tags carry no
//! `crossorigin` attribute, so a plain static file server without CORS headers works.

use axum::{extract::State, response::Html};

use super::HttpState;

const TEMPLATE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="robots" content="noindex">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Easel GraphiQL</title>
  <style>body { margin: 0; height: 100%; overflow: hidden; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="{ASSETS}/graphiql@4/graphiql.min.css">
  <script src="{ASSETS}/react@18/umd/react.production.min.js"></script>
  <script src="{ASSETS}/react-dom@18/umd/react-dom.production.min.js"></script>
  <script src="{ASSETS}/graphiql@4/graphiql.min.js"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL from {ASSETS} ...</div>
  <script>
    const url = (path, ws) => {
      const u = new URL(path, window.location.href);
      if (ws) u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
      return u.toString();
    };
    // Subscriptions authenticate with the Authorization header typed in GraphiQL's Headers
    // tab: GraphiQL's fetcher (@graphiql/toolkit) opens a subscription's websocket with the
    // request's headers as the connection_init payload ({ ...wsConnectionParams, ...headers }),
    // and the server reads its `authorization` key, so header names are lower-cased here
    // (HTTP header names are case-insensitive: the HTTP requests are unchanged).
    const lowerCased = (headers) => {
      const entries = typeof Headers !== 'undefined' && headers instanceof Headers
        ? Array.from(headers.entries())
        : Object.entries(headers || {});
      return Object.fromEntries(entries.map(([k, v]) => [String(k).toLowerCase(), v]));
    };
    const toolkitFetcher = GraphiQL.createFetcher({
      url: url('/graphql'),
      subscriptionUrl: url('/graphql/ws', true),
    });
    const fetcher = (params, opts) =>
      toolkitFetcher(params, { ...(opts || {}), headers: lowerCased(opts && opts.headers) });
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {
        fetcher,
        defaultEditorToolsVisibility: true,
        defaultQuery: '# Welcome to Easel. Try:\n{\n  me { id username }\n}\n',
      })
    );
  </script>
</body>
</html>
"#;

pub async fn page(State(state): State<HttpState>) -> Html<String> {
    Html(render(&state.app.config.graphiql_assets_url))
}

fn render(assets: &str) -> String {
    let escaped = assets
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    TEMPLATE.replace("{ASSETS}", &escaped)
}

#[cfg(test)]
mod tests {
    #[test]
    fn assets_come_from_the_configured_base() {
        let html = super::render("http://mirror.local/npm");
        assert!(html.contains(r#"src="http://mirror.local/npm/graphiql@4/graphiql.min.js""#));
        assert!(!html.contains("unpkg"));
        assert!(html.contains("subscriptionUrl: url('/graphql/ws', true)"));
        assert!(!html.contains("localStorage"));
        let hostile = super::render(r#"x"><script>alert(1)</script>"#);
        assert!(!hostile.contains("<script>alert"));
    }
}
