// A shopper's orders, and one order's page whose status follows the order live.
import {
  CancelOrderDocument,
  MyOrdersDocument,
  OrderPageDocument,
  ShipOrderDocument,
  WatchOrdersDocument,
  canMove,
  lifecycles,
} from "@shopmesh/sdk";
import type { MyOrdersQuery, OrderFieldsFragment } from "@shopmesh/sdk";
import { useEffect, useState } from "preact/hooks";

import { graphql, onSessionChange, subscriptions, type Person } from "./session";
import { explain, money, statusWords, when } from "./words";

const PAGE_SIZE = 20;

/** Statuses an order never leaves. */
function isFinal(status: string): boolean {
  return !lifecycles.OrderStatus.transitions.some((t) => t.from === status.toLowerCase());
}

function Status({ status }: { status: string }) {
  return <span class={`status status-${status.toLowerCase()}`}>{statusWords(status)}</span>;
}

function LogInFirst({ what }: { what: string }) {
  return (
    <p>
      <a href={`#/login?next=${encodeURIComponent(location.hash)}`}>Log in</a> to see {what}.
    </p>
  );
}

/** `#/orders`: the signed-in person's orders, newest first. */
export function OrdersPage({ person }: { person: Person | null }) {
  const [pages, setPages] = useState<MyOrdersQuery["ordersByUser"][]>([]);
  const [error, setError] = useState<string | null>(null);
  const more = (after: string | null) => {
    if (!person) return;
    void graphql.request(MyOrdersDocument, { userId: person.id, first: PAGE_SIZE, after }).then((r) => {
      if (r.ok) setPages((held) => [...(after === null ? [] : held), r.data.ordersByUser]);
      else setError(explain(r.errors));
    });
  };
  useEffect(() => more(null), [person?.id]);
  if (!person) return <LogInFirst what="your orders" />;
  const orders = pages.flatMap((p) => p.nodes);
  const last = pages[pages.length - 1];
  return (
    <section>
      <h1>My orders</h1>
      {error && <p role="alert">{error}</p>}
      {last && orders.length === 0 && <p>No orders yet.</p>}
      <ul class="orders">
        {orders.map((o) => (
          <li key={o.id}>
            <a href={`#/orders/${o.id}`}>Order {o.id}</a> <Status status={o.status} /> <span>{when(o.createdAt)}</span>{" "}
            <span>{o.total ? money(o.total) : ""}</span>
          </li>
        ))}
      </ul>
      {last?.pageInfo.hasNextPage && (
        <button type="button" onClick={() => more(last.pageInfo.endCursor)}>
          Show older orders
        </button>
      )}
    </section>
  );
}

/** `#/orders/ID`: lines, total, timeline; the status changes as the order does, without reloading. */
export function OrderPage({ id, person }: { id: string; person: Person | null }) {
  const [order, setOrder] = useState<OrderFieldsFragment | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState(false);

  const load = async (): Promise<OrderFieldsFragment | null> => {
    const r = await graphql.request(OrderPageDocument, { id });
    if (!r.ok) return (setError(explain(r.errors)), null);
    const read = r.data.order;
    if (read === null) return (setError("There is no such order, or it is not yours to see."), null);
    // The order and its timeline are read separately; the timeline, which only grows, may
    // already hold a newer status than the order did when it was read.
    const latest = read.timeline[read.timeline.length - 1];
    const order = latest && latest.version > read.version ? { ...read, status: latest.to, version: latest.version } : read;
    setError(null);
    setOrder(order);
    return order;
  };

  useEffect(() => {
    if (!person) return;
    let stop = () => {};
    let ended = false;
    // Subscribes after the version shown, so nothing between the read and the socket is missed;
    // the socket closes when the session's tokens change, and this resumes from the last version.
    const follow = (after: number) => {
      stop();
      stop = subscriptions().subscribe(
        WatchOrdersDocument,
        { id, after },
        {
          // The change itself, not a re-read: a read right after it may still be answered from
          // a cache that has not heard of it.
          next: ({ orderStatusChanged: c }) =>
            setOrder((o) =>
              o === null || c.version <= o.version
                ? o
                : {
                    ...o,
                    status: c.to,
                    version: c.version,
                    timeline: o.timeline.some((t) => t.version === c.version)
                      ? o.timeline
                      : [
                          ...o.timeline,
                          { id: `${c.orderId}:${c.version}`, version: c.version, from: c.from, to: c.to, cause: c.cause, at: c.at },
                        ],
                  },
            ),
          error: () => setLive(false),
          complete: () => setLive(false),
        },
      );
      setLive(true);
    };
    void load().then((o) => {
      if (o && !ended && !isFinal(o.status)) follow(o.version);
    });
    const unlisten = onSessionChange(() => {
      if (!ended) void load().then((o) => o && !isFinal(o.status) && follow(o.version));
    });
    return () => {
      ended = true;
      stop();
      unlisten();
    };
  }, [id, person?.id]);

  if (!person) return <LogInFirst what="this order" />;
  if (error && !order) return <p role="alert">{error}</p>;
  if (!order) return <p aria-busy="true">Loading…</p>;
  const act = async (action: "cancel" | "ship") => {
    const r =
      action === "cancel"
        ? await graphql.request(CancelOrderDocument, { id }).then((x) => (x.ok ? x.data.cancelOrder : x))
        : await graphql.request(ShipOrderDocument, { id }).then((x) => (x.ok ? x.data.shipOrder : x));
    if ("errors" in r) setError(explain(r.errors));
    else (setError(null), setOrder(r));
  };
  const last = order.timeline[order.timeline.length - 1];
  return (
    <article>
      <h1>Order {order.id}</h1>
      <p aria-live="polite">
        Status:{" "}
        <span data-testid="order-status">
          <Status status={order.status} />
        </span>
        {live && !isFinal(order.status) && <span class="muted"> (updating live)</span>}
      </p>
      {isFinal(order.status) && last && (
        <p class="outcome" data-testid="order-why">
          Why it is {statusWords(order.status)}: {last.cause}
        </p>
      )}
      {error && <p role="alert">{error}</p>}
      <table>
        <caption class="sr-only">What was ordered</caption>
        <thead>
          <tr>
            <th scope="col">Product</th>
            <th scope="col">Quantity</th>
            <th scope="col">Price</th>
          </tr>
        </thead>
        <tbody>
          {order.lines.map((l) => (
            <tr key={l.id}>
              <td>
                <a href={`#/product/${l.productId}`}>{l.product?.name ?? `Product ${l.productId}`}</a>
              </td>
              <td>{l.quantity}</td>
              <td>{l.unitPrice ? money(l.unitPrice) : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="total">Total: {order.total ? money(order.total) : "—"}</p>
      <div class="row">
        {canMove(lifecycles.OrderStatus, order.status, "cancelled") && (
          <button type="button" onClick={() => void act("cancel")}>
            Cancel order
          </button>
        )}
        {person.admin && canMove(lifecycles.OrderStatus, order.status, "shipped") && (
          <button type="button" onClick={() => void act("ship")}>
            Mark shipped
          </button>
        )}
      </div>
      <h2>Timeline</h2>
      <ol class="timeline" data-testid="timeline">
        {order.timeline.map((t) => (
          <li key={t.id}>
            <Status status={t.to} /> <span class="muted">{when(t.at)}</span> — {t.cause}
          </li>
        ))}
      </ol>
      <p class="muted">Placed {when(order.createdAt)}</p>
    </article>
  );
}
