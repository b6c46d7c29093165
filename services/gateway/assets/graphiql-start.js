// Starts GraphiQL against this gateway's /graphql, with the platform's example operations as
// its first tabs. `?query=...&variables=...` opens a tab with that operation (links, tests).
(function () {
  const examples = [
    {
      query: "# Place an order (the user must exist), then read it back with the GetOrder tab.\nmutation CreateOrder($input: CreateOrderInput!) {\n  createOrder(input: $input) {\n    id\n    status\n    createdAt\n    user { name }\n  }\n}\n",
      variables: JSON.stringify({ input: { userId: "1", productId: "101", quantity: 2 } }, null, 2),
    },
    {
      query: "query GetOrder($id: ID!) {\n  order(id: $id) {\n    id\n    quantity\n    status\n    user { id name email }\n    notifications { message status sentAt }\n  }\n}\n",
      variables: JSON.stringify({ id: "1" }, null, 2),
    },
    {
      query: "# Live status of your orders (paste {\"Authorization\": \"Bearer <token>\"} into Headers first),\n# then place or cancel one in another tab.\nsubscription WatchOrders {\n  orderStatusChanged {\n    orderId\n    from\n    to\n    cause\n    at\n  }\n}\n",
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
  const fetcher = GraphiQL.createFetcher({
    url: new URL("/graphql", window.location.href).href,
    subscriptionUrl: socketUrl.href,
  });
  const props = {
    fetcher,
    defaultTabs: examples,
    defaultEditorToolsVisibility: true,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
  };
  if (params.has("query")) {
    props.query = params.get("query");
    props.variables = params.get("variables") || undefined;
  }
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, props));
})();
