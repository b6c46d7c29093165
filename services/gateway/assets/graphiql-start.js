// Starts GraphiQL against this gateway's /graphql, with the platform's example operations as
// its first tabs, log-in first. `?query=...&variables=...` opens a tab with that operation
// (links, tests). Once a log-in answers, its access token goes with every request of every tab
// (unless the headers editor names another) and is shown in the headers editor.
(function () {
  const examples = [
    {
      query: "# Start here: log in as a demo user (alice, bob and admin@example.com share the\n# password shopmesh-demo). The access token then goes with every tab's\n# requests (this tab's Headers show it); a header you write there wins.\nmutation LogIn($email: String!, $password: String!) {\n  login(email: $email, password: $password) {\n    accessToken\n    refreshToken\n    expiresIn\n  }\n}\n",
      variables: JSON.stringify({ email: "alice@example.com", password: "shopmesh-demo" }, null, 2),
    },
    {
      query: "query Me {\n  me {\n    id\n    name\n    email\n  }\n}\n",
    },
    {
      query: "# Place an order (the user must exist), then read it back with the GetOrder tab.\nmutation CreateOrder($input: CreateOrderInput!) {\n  createOrder(input: $input) {\n    id\n    status\n    createdAt\n    user { name }\n  }\n}\n",
      variables: JSON.stringify({ input: { userId: "1", productId: "101", quantity: 2 } }, null, 2),
    },
    {
      query: "query GetOrder($id: ID!) {\n  order(id: $id) {\n    id\n    quantity\n    status\n    user { id name email }\n    notifications { message status sentAt }\n  }\n}\n",
      variables: JSON.stringify({ id: "1" }, null, 2),
    },
    {
      query: "# Live status of your orders (run LogIn first), then place or cancel one in another tab.\nsubscription WatchOrders {\n  orderStatusChanged {\n    orderId\n    from\n    to\n    cause\n    at\n  }\n}\n",
    },
    {
      query: "query UserName($id: ID!) {\n  userName(id: $id)\n}\n",
      variables: JSON.stringify({ id: "1" }, null, 2),
    },
    {
      query: "query Orders($userId: ID!) {\n  ordersByUser(userId: $userId, first: 5) {\n    nodes { id productId quantity user { name } }\n    pageInfo { hasNextPage endCursor }\n  }\n}\n",
      variables: JSON.stringify({ userId: "1" }, null, 2),
    },
  ];
  const params = new URLSearchParams(window.location.search);
  // Subscriptions run over a WebSocket at the same path; GraphiQL sends the headers editor's
  // JSON (e.g. {"Authorization": "Bearer ..."}) as the connection_init payload.
  const socketUrl = new URL("/graphql", window.location.href);
  socketUrl.protocol = socketUrl.protocol === "https:" ? "wss:" : "ws:";
  const base = GraphiQL.createFetcher({
    url: new URL("/graphql", window.location.href).href,
    subscriptionUrl: socketUrl.href,
  });
  let token = null;
  const render = () => root.render(React.createElement(GraphiQL, props));
  // A header the editor names wins over the log-in's token.
  const withToken = (headers) => {
    const named = Object.keys(headers || {}).some((h) => h.toLowerCase() === "authorization");
    return token && !named ? { ...headers, Authorization: `Bearer ${token}` } : headers;
  };
  const noteToken = (result) => {
    const login = result && result.data && result.data.login;
    if (login && typeof login.accessToken === "string") {
      token = login.accessToken;
      props.headers = JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2);
      props.defaultHeaders = props.headers;
      render();
    }
  };
  async function* tap(parts) {
    for await (const part of parts) {
      noteToken(part);
      yield part;
    }
  }
  // GraphiQL's fetcher answers with a promise of a result or of an async iterable of them
  // (incremental delivery); a subscription's stream is passed on untouched, so that closing
  // it reaches the socket at once.
  const fetcher = (params, opts) => {
    const answer = base(params, { ...opts, headers: withToken(opts && opts.headers) });
    if (/^\s*subscription\b/m.test(params.query || "")) return answer;
    return Promise.resolve(answer).then((result) => {
      if (result && result[Symbol.asyncIterator]) return tap(result);
      noteToken(result);
      return result;
    });
  };
  const props = {
    fetcher,
    defaultTabs: examples,
    defaultEditorToolsVisibility: true,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    // GraphiQL 3.9 opens its first tab without that tab's variables; the first example is
    // given as the opening operation so that it runs as shown.
    query: examples[0].query,
    variables: examples[0].variables,
  };
  if (params.has("query")) {
    props.query = params.get("query");
    props.variables = params.get("variables") || undefined;
  }
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  render();
})();
