// The cart at today's prices and stock, and checkout with a payment test token.
import { CartDocument, ChangeCartLineDocument, PlaceOrderDocument, RemoveCartLineDocument } from "@shopmesh/sdk";
import type { CartFieldsFragment, GraphqlResult } from "@shopmesh/sdk";
import { useEffect, useState } from "preact/hooks";

import { go } from "./nav";
import { graphql, type Person } from "./session";
import { explain, inputAttributes, money, ruleOf } from "./words";

/** The built-in payment processor's test tokens (see the payments service), as the page offers them. */
const TEST_TOKENS: ReadonlyArray<{ token: string; outcome: string }> = [
  { token: "tok_visa", outcome: "the payment succeeds" },
  { token: "tok_declined", outcome: "the card is declined" },
  { token: "tok_insufficient_funds", outcome: "declined for insufficient funds" },
  { token: "tok_flaky_2", outcome: "fails twice, then succeeds (retried)" },
  { token: "tok_timeout", outcome: "the processor never answers; the order expires" },
];

type Line = CartFieldsFragment["lines"][number];

function totals(lines: readonly Line[]): string {
  const sums = new Map<string, number>();
  for (const line of lines) {
    const price = line.product?.price;
    if (price) sums.set(price.currency, (sums.get(price.currency) ?? 0) + price.amountMinor * line.quantity);
  }
  return [...sums].map(([currency, amountMinor]) => money({ amountMinor, currency })).join(" + ") || "—";
}

/** `#/cart`: change quantities, remove lines, check out. */
export function CartPage({ person }: { person: Person | null }) {
  const [cart, setCart] = useState<CartFieldsFragment | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [token, setToken] = useState("tok_visa");
  // One key per purchase: a retry after a lost answer buys once.
  const [purchaseKey, setPurchaseKey] = useState(() => crypto.randomUUID());
  const [busy, setBusy] = useState(false);

  const show = (r: GraphqlResult<{ cart?: CartFieldsFragment; setCartLine?: CartFieldsFragment; removeCartLine?: CartFieldsFragment }>) => {
    if (!r.ok) return setError(explain(r.errors));
    setError(null);
    setCart(r.data.cart ?? r.data.setCartLine ?? r.data.removeCartLine ?? null);
  };
  useEffect(() => {
    if (person) void graphql.request(CartDocument, {}).then(show);
  }, [person?.id]);

  if (!person)
    return (
      <section>
        <h1>Your cart</h1>
        <p>
          <a href="#/login?next=%23%2Fcart">Log in</a> or <a href="#/signup?next=%23%2Fcart">sign up</a> to fill a
          cart.
        </p>
      </section>
    );
  const checkout = async () => {
    setBusy(true);
    const result = await graphql.request(PlaceOrderDocument, { paymentToken: token, idempotencyKey: purchaseKey });
    setBusy(false);
    if (!result.ok) return setError(explain(result.errors));
    setPurchaseKey(crypto.randomUUID());
    go(`#/orders/${result.data.checkout.id}`);
  };
  const quantityRule = inputAttributes(ruleOf("CartLineInput", "quantity"));
  return (
    <section>
      <h1>Your cart</h1>
      {error && <p role="alert">{error}</p>}
      {cart === null && !error && <p aria-busy="true">Loading…</p>}
      {cart && cart.lines.length === 0 && (
        <p>
          Your cart is empty. <a href="#/">Find something</a>.
        </p>
      )}
      {cart && cart.lines.length > 0 && (
        <>
          <table>
            <caption class="sr-only">Products in your cart</caption>
            <thead>
              <tr>
                <th scope="col">Product</th>
                <th scope="col">Price</th>
                <th scope="col">Quantity</th>
                <th scope="col">
                  <span class="sr-only">Remove</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {cart.lines.map((line) => (
                <tr key={line.id}>
                  <td>
                    <a href={`#/product/${line.productId}`}>{line.product?.name ?? `Product ${line.productId}`}</a>
                    {line.product && line.product.stock.available < line.quantity && (
                      <span class="warn"> only {line.product.stock.available} left</span>
                    )}
                  </td>
                  <td>{line.product ? money(line.product.price) : "—"}</td>
                  <td>
                    <input
                      type="number"
                      aria-label={`Quantity of ${line.product?.name ?? line.productId}`}
                      {...quantityRule}
                      value={line.quantity}
                      onChange={(e) => {
                        const quantity = Number(e.currentTarget.value);
                        if (Number.isInteger(quantity) && e.currentTarget.checkValidity())
                          void graphql.request(ChangeCartLineDocument, { productId: line.productId, quantity }).then(show);
                      }}
                    />
                  </td>
                  <td>
                    <button
                      type="button"
                      class="link"
                      onClick={() => void graphql.request(RemoveCartLineDocument, { productId: line.productId }).then(show)}
                    >
                      Remove <span class="sr-only">{line.product?.name}</span>
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <p class="total">
            Total: <strong data-testid="cart-total">{totals(cart.lines)}</strong>
          </p>
          <form
            class="checkout"
            onSubmit={(e) => {
              e.preventDefault();
              void checkout();
            }}
          >
            <fieldset>
              <legend>Pay with a test token</legend>
              <p class="muted">This shop takes no real cards: each token below makes the payment end one way.</p>
              {TEST_TOKENS.map((t) => (
                <label class="choice" key={t.token}>
                  <input
                    type="radio"
                    name="token"
                    value={t.token}
                    checked={token === t.token}
                    onChange={() => setToken(t.token)}
                  />
                  <code>{t.token}</code>: {t.outcome}
                </label>
              ))}
            </fieldset>
            <button type="submit" disabled={busy}>
              {busy ? "Placing the order…" : "Place order"}
            </button>
          </form>
        </>
      )}
    </section>
  );
}
