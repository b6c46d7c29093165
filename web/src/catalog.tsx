// Browsing: products one page at a time with search, and a product's page.
import { CartDocument, ChangeCartLineDocument, StorefrontProductDocument, ProductsDocument } from "@shopmesh/sdk";
import type { StorefrontProductQuery, ProductsQuery } from "@shopmesh/sdk";
import { useEffect, useState } from "preact/hooks";

import { go, usePerson } from "./nav";
import { graphql } from "./session";
import { explain, inputAttributes, money, ruleOf } from "./words";

const PAGE_SIZE = 12;

function Availability({ available }: { available: number }) {
  return available > 0 ? (
    <span class="ok">In stock ({available})</span>
  ) : (
    <span class="warn">Out of stock</span>
  );
}

/** `#/products?q=…&after=…`: a page of products on sale, searched by name or SKU. */
export function ProductsPage({ query }: { query: URLSearchParams }) {
  const search = query.get("q") ?? "";
  const after = query.get("after");
  const [page, setPage] = useState<ProductsQuery["products"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setPage(null);
    void graphql
      .request(ProductsDocument, { first: PAGE_SIZE, after, query: search === "" ? null : search })
      .then((r) => (r.ok ? (setPage(r.data.products), setError(null)) : setError(explain(r.errors))));
  }, [search, after]);
  const link = (q: string, cursor: string | null) => {
    const params = new URLSearchParams();
    if (q !== "") params.set("q", q);
    if (cursor !== null) params.set("after", cursor);
    return `#/products?${params}`;
  };
  return (
    <section>
      <h1>Products</h1>
      <form
        role="search"
        class="search"
        onSubmit={(e) => {
          e.preventDefault();
          const q = new FormData(e.currentTarget).get("q");
          go(link(typeof q === "string" ? q.trim() : "", null));
        }}
      >
        <label for="q">Search by name or SKU</label>
        <input id="q" name="q" type="search" defaultValue={search} />
        <button type="submit">Search</button>
      </form>
      {error && <p role="alert">{error}</p>}
      {page === null && error === null && <p aria-busy="true">Loading…</p>}
      {page && page.nodes.length === 0 && <p>No products match “{search}”.</p>}
      {page && (
        <ul class="grid">
          {page.nodes.map((p) => (
            <li class="card" key={p.id}>
              <a href={`#/product/${p.id}`}>{p.name}</a>
              <span class="muted">{p.sku}</span>
              <strong>{money(p.price)}</strong>
              <Availability available={p.stock.available} />
            </li>
          ))}
        </ul>
      )}
      <nav class="pages" aria-label="Pages">
        {after !== null && <a href={link(search, null)}>First page</a>}
        {page?.pageInfo.hasNextPage && <a href={link(search, page.pageInfo.endCursor)}>Next page</a>}
      </nav>
    </section>
  );
}

/** `#/product/ID`: price, availability, and a quantity to put in the cart. */
export function ProductPage({ id }: { id: string }) {
  const person = usePerson();
  const [product, setProduct] = useState<StorefrontProductQuery["product"] | undefined>(undefined);
  const [message, setMessage] = useState<{ text: string; alert: boolean } | null>(null);
  const [quantity, setQuantity] = useState(1);
  useEffect(() => {
    void graphql.request(StorefrontProductDocument, { id }).then((r) => {
      if (r.ok) setProduct(r.data.product);
      else setMessage({ text: explain(r.errors), alert: true });
    });
  }, [id]);
  if (product === null) return <p role="alert">There is no such product.</p>;
  if (product === undefined) return message ? <p role="alert">{message.text}</p> : <p aria-busy="true">Loading…</p>;
  const add = async () => {
    if (!person) return go(`#/login?next=${encodeURIComponent(`#/product/${id}`)}`);
    // The cart holds a quantity per product; adding puts this many more on top of it.
    const cart = await graphql.request(CartDocument, {});
    const held = cart.ok ? (cart.data.cart.lines.find((l) => l.productId === id)?.quantity ?? 0) : 0;
    const result = await graphql.request(ChangeCartLineDocument, { productId: id, quantity: held + quantity });
    setMessage(
      result.ok
        ? { text: `Added ${quantity} to your cart.`, alert: false }
        : { text: explain(result.errors), alert: true },
    );
  };
  const onSale = product.active && product.stock.available > 0;
  return (
    <article class="product">
      <h1>{product.name}</h1>
      <p class="muted">SKU {product.sku}</p>
      <p class="price">{money(product.price)}</p>
      <p>{product.active ? <Availability available={product.stock.available} /> : <span class="warn">No longer on sale</span>}</p>
      <p>{product.description}</p>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void add();
        }}
      >
        <label for="quantity">Quantity</label>
        <input
          id="quantity"
          type="number"
          {...inputAttributes(ruleOf("CartLineInput", "quantity"))}
          value={quantity}
          onInput={(e) => setQuantity(Number(e.currentTarget.value))}
        />
        <button type="submit" disabled={!onSale}>
          Add to cart
        </button>
      </form>
      {message && (
        <p role={message.alert ? "alert" : "status"}>
          {message.text} {!message.alert && <a href="#/cart">Go to the cart</a>}
        </p>
      )}
    </article>
  );
}
