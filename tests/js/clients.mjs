// The stock JavaScript clients against a running Easel: Apollo Client 3 (normalised cache,
// automatic persisted queries over GET), graphql-ws 6 and urql 6. Run by
// tests/integration/js_clients.rs with EASEL_URL, EASEL_TOKEN, EASEL_USER_ID and
// EASEL_GIVER_TOKEN; prints one line per check and exits 1 at the first failure.
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";
import { Client as UrqlClient, cacheExchange, fetchExchange } from "@urql/core";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const base = process.env.EASEL_URL;
const token = process.env.EASEL_TOKEN;
const userId = process.env.EASEL_USER_ID;
const giver = process.env.EASEL_GIVER_TOKEN;
const uri = new URL("graphql", base).toString();
const authorization = `Bearer ${token}`;

function check(condition, what, detail) {
  if (!condition) {
    console.error(`FAILED ${what}: ${JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

// Apollo logs cache problems ("Missing field ...") through console.warn/error.
const warnings = [];
for (const level of ["warn", "error"]) {
  const original = console[level];
  console[level] = (...args) => {
    warnings.push(args.map(String).join(" "));
    original(...args);
  };
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

function apollo(requests) {
  const recordingFetch = (input, init) => {
    requests.push({ method: init?.method ?? "GET", url: String(input), body: init?.body });
    return fetch(input, init);
  };
  const http = new HttpLink({ uri, fetch: recordingFetch, headers: { authorization } });
  return new ApolloClient({
    link: createPersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(http),
    cache: new InMemoryCache(),
  });
}

const MINE = gql`
  query Mine {
    me { id credits { id balance } }
    character(id: "x") { id name }
    paymentPlans { id name }
  }
`;

// 1. Apollo Client: a failed nullable field is null in place, the cache takes the result
//    without "Missing field" warnings, and entities are normalised by id.
const firstRequests = [];
const first = apollo(firstRequests);
const result = await first.query({ query: MINE, errorPolicy: "all" });
check(result.data?.me?.id === userId, "apollo: data next to a field error", result);
check(result.data?.character === null, "apollo: the failed field is null", result.data);
check(
  result.errors?.[0]?.extensions?.code === "BAD_USER_INPUT",
  "apollo: the error keeps its code",
  result.errors,
);
check(
  !warnings.some((w) => w.includes("Missing field")),
  "apollo: no Missing field warnings",
  warnings,
);
const cached = first.cache.extract();
check(
  cached[`CreditAccount:${userId}`]?.balance !== undefined,
  "apollo: CreditAccount is normalised by id",
  Object.keys(cached),
);

// 2. Automatic persisted queries: the first client's hash was unknown (GET, then POST with
//    the query); a second client's request is one GET with the hash alone.
check(
  firstRequests.length === 2 &&
    firstRequests[0].method === "GET" &&
    !new URL(firstRequests[0].url).searchParams.has("query") &&
    firstRequests[1].method === "POST",
  "apollo: unknown hash, then the query",
  firstRequests.map((r) => r.method),
);
const secondRequests = [];
const second = apollo(secondRequests);
const again = await second.query({ query: MINE, errorPolicy: "all" });
check(
  secondRequests.length === 1 &&
    secondRequests[0].method === "GET" &&
    !new URL(secondRequests[0].url).searchParams.has("query") &&
    again.data?.me?.id === userId,
  "apollo: the hash alone over GET",
  secondRequests,
);

// 3. urql: the same shape through its own exchange.
const urql = new UrqlClient({
  url: uri,
  exchanges: [cacheExchange, fetchExchange],
  fetchOptions: { headers: { authorization } },
});
const urqlResult = await urql
  .query(`{ me { id } character(id: "x") { id } }`, {})
  .toPromise();
check(
  urqlResult.data?.me?.id === userId &&
    urqlResult.data?.character === null &&
    urqlResult.error?.graphQLErrors?.[0]?.extensions?.code === "BAD_USER_INPUT",
  "urql: data and error with its code",
  urqlResult,
);

// 4. graphql-ws: the balance subscription with the token in connection_init; a refused
//    subscription reaches the sink as an error; dispose closes cleanly.
const closes = [];
const ws = createClient({
  url: uri.replace(/^http/, "ws"),
  webSocketImpl: WebSocket,
  connectionParams: { authorization },
  on: { closed: (event) => closes.push(event.code) },
});
const invalid = await new Promise((resolve) => {
  ws.subscribe(
    { query: "subscription { noSuchField }" },
    {
      next: (value) => resolve({ next: value }),
      error: (errors) => resolve({ errors }),
      complete: () => resolve({ complete: true }),
    },
  );
});
check(
  Array.isArray(invalid.errors) && invalid.errors[0]?.extensions?.code === "BAD_USER_INPUT",
  "graphql-ws: a validation error reaches the sink as errors",
  invalid,
);
const event = new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("no balance event in 10 s")), 10000);
  const stop = ws.subscribe(
    { query: "subscription { creditBalanceChanged { id balance } }" },
    {
      next: (value) => {
        clearTimeout(timer);
        stop();
        resolve(value);
      },
      error: reject,
      complete: () => {},
    },
  );
});
// The subscription is registered once its message is handled; then give one credit.
await new Promise((r) => setTimeout(r, 300));
const gift = await fetch(uri, {
  method: "POST",
  headers: { "content-type": "application/json", authorization: `Bearer ${giver}` },
  body: JSON.stringify({
    query: "mutation($to: ID!) { giftCredits(input: { toUserId: $to, amount: 1 }) { id } }",
    variables: { to: userId },
  }),
}).then((r) => r.json());
check(!gift.errors, "graphql-ws: a gift to trigger an event", gift);
const pushed = await event;
check(
  pushed.data?.creditBalanceChanged?.id === userId,
  "graphql-ws: the balance event, keyed like the query's",
  pushed,
);
await ws.dispose();
await new Promise((r) => setTimeout(r, 100));
check(closes.length === 1 && closes[0] === 1000, "graphql-ws: dispose closes with 1000", closes);
process.exit(0);
