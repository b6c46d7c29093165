// The shop admin, for staff accounts: orders by status (ship, cancel), products (create,
// edit, take off sale), stock adjustments with reasons, CSV import with its per-row report, and
// the notifications' dead-letter queue with redrive.
// The page only hides itself from shoppers; the services refuse a shopper's token on every
// admin operation whatever the page shows.
import {
  AdjustStockDocument,
  AdminCancelOrderDocument,
  AdminOrdersDocument,
  AdminProductBySkuDocument,
  AdminProductDocument,
  AdminShipOrderDocument,
  CreateProductDocument,
  DeadLettersDocument,
  ImportProductsDocument,
  RedriveDeadLettersDocument,
  ProductsDocument,
  UpdateProductDocument,
  canMove,
  lifecycles,
} from "@shopmesh/sdk";
import type {
  AdminOrdersQuery,
  AdminProductFieldsFragment,
  ImportProductsMutation,
  OrderStatus,
  RedriveDeadLettersMutation,
  ProductInput,
  ProductsQuery,
} from "@shopmesh/sdk";
import { useEffect, useState } from "preact/hooks";

import { go } from "./nav";
import { graphql, type Person } from "./session";
import { breaks, explain, fromMinor, inputAttributes, money, ruleOf, statusWords, toMinor, when } from "./words";

/** Every status of the orders contract's lifecycle, in the order it declares them. */
const STATUSES: OrderStatus[] = [
  ...new Set([lifecycles.OrderStatus.initial, ...lifecycles.OrderStatus.transitions.flatMap((t) => [t.from, t.to])]),
].map((s) => s.toUpperCase() as OrderStatus);

function Tabs({ at }: { at: string }) {
  const tabs = [
    ["orders", "Orders"],
    ["products", "Products"],
    ["import", "Import CSV"],
    ["dead-letters", "Dead letters"],
  ];
  return (
    <nav class="tabs" aria-label="Admin">
      {tabs.map(([id, label]) => (
        <a key={id} href={`#/admin/${id}`} aria-current={at === id ? "page" : undefined}>
          {label}
        </a>
      ))}
    </nav>
  );
}

/** `#/admin/...`. */
export function AdminPage({ person, path }: { person: Person | null; path: string[] }) {
  if (!person)
    return (
      <p>
        <a href="#/login?next=%23%2Fadmin">Log in</a> with a staff account.
      </p>
    );
  if (!person.admin)
    return (
      <section>
        <h1>Admin</h1>
        <p role="alert">This page is for shop staff; your account is a shopper's.</p>
      </section>
    );
  const [section = "orders", id] = path;
  return (
    <section>
      <h1>Admin</h1>
      <Tabs at={section} />
      {section === "orders" && <OrdersAdmin />}
      {section === "products" && (id ? <ProductForm id={id === "new" ? null : id} /> : <ProductsAdmin />)}
      {section === "import" && <ImportAdmin />}
      {section === "dead-letters" && <DeadLettersAdmin />}
    </section>
  );
}

function OrdersAdmin() {
  const [status, setStatus] = useState<OrderStatus | "">("CONFIRMED");
  const [page, setPage] = useState<AdminOrdersQuery["orders"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = (after: string | null = null) =>
    void graphql
      .request(AdminOrdersDocument, { status: status === "" ? null : status, first: 20, after })
      .then((r) => (r.ok ? (setPage(r.data.orders), setError(null)) : setError(explain(r.errors))));
  useEffect(() => load(), [status]);
  const act = async (id: string, to: "shipped" | "cancelled") => {
    const r =
      to === "shipped"
        ? await graphql.request(AdminShipOrderDocument, { id })
        : await graphql.request(AdminCancelOrderDocument, { id });
    if (!r.ok) return setError(explain(r.errors));
    load();
  };
  return (
    <>
      <h2>Orders</h2>
      <p class="row">
        <label for="status">Status</label>
        <select id="status" value={status} onChange={(e) => setStatus(e.currentTarget.value as OrderStatus | "")}>
          <option value="">Any</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {statusWords(s)}
            </option>
          ))}
        </select>
      </p>
      {error && <p role="alert">{error}</p>}
      {page && page.nodes.length === 0 && <p>No orders {status === "" ? "" : `are ${statusWords(status)}`}.</p>}
      {page && page.nodes.length > 0 && (
        <table>
          <caption class="sr-only">Orders</caption>
          <thead>
            <tr>
              <th scope="col">Order</th>
              <th scope="col">Placed</th>
              <th scope="col">Status</th>
              <th scope="col">Total</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {page.nodes.map((o) => (
              <tr key={o.id}>
                <td>
                  <a href={`#/orders/${o.id}`}>Order {o.id}</a> <span class="muted">user {o.userId}</span>
                </td>
                <td>{when(o.createdAt)}</td>
                <td>{statusWords(o.status)}</td>
                <td>{o.total ? money(o.total) : "—"}</td>
                <td>
                  <div class="row">
                  {canMove(lifecycles.OrderStatus, o.status, "shipped") && (
                    <button type="button" onClick={() => void act(o.id, "shipped")}>
                      Ship <span class="sr-only">order {o.id}</span>
                    </button>
                  )}
                  {canMove(lifecycles.OrderStatus, o.status, "cancelled") && (
                    <button type="button" class="secondary" onClick={() => void act(o.id, "cancelled")}>
                      Cancel <span class="sr-only">order {o.id}</span>
                    </button>
                  )}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page?.pageInfo.hasNextPage && (
        <button type="button" onClick={() => load(page.pageInfo.endCursor)}>
          Next page
        </button>
      )}
    </>
  );
}

function ProductsAdmin() {
  const [search, setSearch] = useState("");
  const [page, setPage] = useState<ProductsQuery["products"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    void graphql
      .request(ProductsDocument, { first: 20, query: search === "" ? null : search })
      .then((r) => (r.ok ? setPage(r.data.products) : setError(explain(r.errors))));
  }, [search]);
  return (
    <>
      <h2>Products</h2>
      <p>
        <a href="#/admin/products/new">New product</a>
      </p>
      <form
        class="row"
        role="search"
        onSubmit={async (e) => {
          e.preventDefault();
          const q = String(new FormData(e.currentTarget).get("q") ?? "").trim();
          // A product off sale is not listed; its SKU still finds it.
          const bySku = q === "" ? null : await graphql.request(AdminProductBySkuDocument, { sku: q });
          if (bySku?.ok && bySku.data.productBySku) return go(`#/admin/products/${bySku.data.productBySku.id}`);
          setSearch(q);
        }}
      >
        <label for="admin-q">Name or SKU (a product off sale: its exact SKU)</label>
        <input id="admin-q" name="q" type="search" />
        <button type="submit">Find</button>
      </form>
      {error && <p role="alert">{error}</p>}
      <ul class="orders">
        {page?.nodes.map((p) => (
          <li key={p.id}>
            <a href={`#/admin/products/${p.id}`}>{p.name}</a> <span class="muted">{p.sku}</span> {money(p.price)},{" "}
            {p.stock.available} available
          </li>
        ))}
      </ul>
    </>
  );
}

function text(form: HTMLFormElement, name: string): string {
  const v = new FormData(form).get(name);
  return typeof v === "string" ? v.trim() : "";
}

/** The form's product, or why it breaks the contract's rules. */
function productFrom(form: HTMLFormElement): ProductInput | string {
  const rule = (field: "sku" | "name" | "description") => ruleOf("ProductInput", field);
  const sku = text(form, "sku");
  const name = text(form, "name");
  const description = text(form, "description");
  const wrong =
    breaks("SKU", rule("sku"), sku) ?? breaks("Name", rule("name"), name) ?? breaks("Description", rule("description"), description);
  if (wrong) return wrong;
  const pattern = rule("sku").pattern;
  if (pattern !== undefined && !new RegExp(pattern).test(sku)) return "SKU may hold letters, digits, '.', '_' and '-'.";
  const currency = text(form, "currency").toUpperCase();
  const price = toMinor(text(form, "price"), currency);
  if (price === null) return `Price must be an amount in ${currency}, such as 12.50.`;
  return {
    sku,
    name,
    description,
    price: { amountMinor: price, currency },
    active: new FormData(form).get("active") === "on",
  };
}

function ProductForm({ id }: { id: string | null }) {
  const [product, setProduct] = useState<AdminProductFieldsFragment | null>(null);
  const [message, setMessage] = useState<{ text: string; alert: boolean } | null>(null);
  const [createKey] = useState(() => crypto.randomUUID());
  const [stockKey, setStockKey] = useState(() => crypto.randomUUID());
  useEffect(() => {
    if (id === null) return;
    void graphql.request(AdminProductDocument, { id }).then((r) => {
      if (r.ok && r.data.product) setProduct(r.data.product);
      else setMessage({ text: r.ok ? "There is no such product." : explain(r.errors), alert: true });
    });
  }, [id]);
  if (id !== null && product === null) return message ? <p role="alert">{message.text}</p> : <p aria-busy="true">Loading…</p>;
  const save = async (form: HTMLFormElement) => {
    const input = productFrom(form);
    if (typeof input === "string") return setMessage({ text: input, alert: true });
    const r =
      product === null
        ? await graphql.request(CreateProductDocument, { input, idempotencyKey: createKey }).then((x) => (x.ok ? x.data.createProduct : x))
        : await graphql.request(UpdateProductDocument, { id: product.id, input }).then((x) => (x.ok ? x.data.updateProduct : x));
    if ("errors" in r) return setMessage({ text: explain(r.errors), alert: true });
    setProduct(r);
    setMessage({ text: product === null ? "Product created." : "Product saved.", alert: false });
    if (product === null) go(`#/admin/products/${r.id}`);
  };
  const adjust = async (form: HTMLFormElement) => {
    if (product === null) return;
    const delta = Number(text(form, "delta"));
    const reason = text(form, "reason");
    const wrong =
      breaks("Units", ruleOf("StockAdjustment", "delta"), text(form, "delta")) ??
      breaks("Reason", ruleOf("StockAdjustment", "reason"), reason);
    if (wrong || !Number.isInteger(delta)) return setMessage({ text: wrong ?? "Units must be a whole number.", alert: true });
    const r = await graphql.request(AdjustStockDocument, { productId: product.id, delta, reason, idempotencyKey: stockKey });
    if (!r.ok) return setMessage({ text: explain(r.errors), alert: true });
    setStockKey(crypto.randomUUID());
    setProduct(r.data.adjustStock);
    setMessage({ text: `Stock adjusted by ${delta}: ${r.data.adjustStock.stock.onHand} on hand.`, alert: false });
    form.reset();
  };
  const rule = (field: "sku" | "name" | "description") => inputAttributes(ruleOf("ProductInput", field));
  return (
    <>
      <h2>{product ? `Edit ${product.name}` : "New product"}</h2>
      {message && <p role={message.alert ? "alert" : "status"}>{message.text}</p>}
      <form
        class="narrow"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void save(e.currentTarget);
        }}
      >
        <p class="field">
          <label for="sku">SKU</label>
          <input id="sku" name="sku" {...rule("sku")} defaultValue={product?.sku} />
        </p>
        <p class="field">
          <label for="name">Name</label>
          <input id="name" name="name" {...rule("name")} defaultValue={product?.name} />
        </p>
        <p class="field">
          <label for="description">Description</label>
          <textarea id="description" name="description" maxLength={ruleOf("ProductInput", "description").maxLength} defaultValue={product?.description} />
        </p>
        <p class="row">
          <label for="price">Price</label>
          <input id="price" name="price" inputMode="decimal" required defaultValue={product ? fromMinor(product.price) : ""} />
          <label for="currency">Currency</label>
          <input id="currency" name="currency" required size={4} maxLength={3} defaultValue={product?.price.currency ?? "EUR"} />
        </p>
        <p class="row">
          <input id="active" name="active" type="checkbox" defaultChecked={product?.active ?? true} />
          <label for="active">On sale</label>
        </p>
        <button type="submit">{product ? "Save" : "Create product"}</button>
      </form>
      {product && (
        <>
          <h3>Stock</h3>
          <p data-testid="stock">
            {product.stock.onHand} on hand, {product.stock.reserved} reserved, {product.stock.available} available,{" "}
            {product.stock.sold} sold
          </p>
          <form
            class="row"
            noValidate
            onSubmit={(e) => {
              e.preventDefault();
              void adjust(e.currentTarget);
            }}
          >
            <label for="delta">Units (+ or −)</label>
            <input id="delta" name="delta" type="number" required {...inputAttributes(ruleOf("StockAdjustment", "delta"))} />
            <label for="reason">Reason</label>
            <input id="reason" name="reason" {...inputAttributes(ruleOf("StockAdjustment", "reason"))} />
            <button type="submit">Adjust stock</button>
          </form>
        </>
      )}
    </>
  );
}

function ImportAdmin() {
  const [report, setReport] = useState<ImportProductsMutation["importProducts"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <>
      <h2>Import products from CSV</h2>
      <p class="muted">
        Columns: <code>sku,name,description,price_minor,currency,active,image_url</code>. All rows or none: one bad
        row and nothing is written.
      </p>
      <form
        noValidate
        onSubmit={async (e) => {
          e.preventDefault();
          const form = e.currentTarget;
          const file = (form.elements.namedItem("file") as HTMLInputElement | null)?.files?.[0];
          const csv = file ? await file.text() : text(form, "csv");
          const wrong = breaks("The CSV", ruleOf("ProductImport", "csv"), csv);
          if (wrong) return setError(wrong);
          setBusy(true);
          const r = await graphql.request(ImportProductsDocument, { csv, idempotencyKey: crypto.randomUUID() });
          setBusy(false);
          if (!r.ok) return (setReport(null), setError(explain(r.errors)));
          setError(null);
          setReport(r.data.importProducts);
        }}
      >
        <p class="field">
          <label for="file">CSV file</label>
          <input id="file" name="file" type="file" accept=".csv,text/csv" />
        </p>
        <p class="field">
          <label for="csv">or paste it</label>
          <textarea id="csv" name="csv" rows={6} />
        </p>
        <button type="submit" disabled={busy}>
          Import
        </button>
      </form>
      {error && <p role="alert">{error}</p>}
      {report && report.rejected.length === 0 && (
        <p role="status">
          Imported {report.imported}: {report.created} created, {report.updated} updated.
        </p>
      )}
      {report && report.rejected.length > 0 && (
        <>
          <p role="alert">Nothing was imported: {report.rejected.length} row(s) were rejected.</p>
          <table data-testid="rejected">
            <caption class="sr-only">Rejected rows</caption>
            <thead>
              <tr>
                <th scope="col">Row</th>
                <th scope="col">SKU</th>
                <th scope="col">Why</th>
              </tr>
            </thead>
            <tbody>
              {report.rejected.map((r) => (
                <tr key={r.row}>
                  <td>{r.row}</td>
                  <td>{r.sku ?? "—"}</td>
                  <td>{r.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </>
  );
}

function DeadLettersAdmin() {
  const [count, setCount] = useState<number | null>(null);
  const [report, setReport] = useState<RedriveDeadLettersMutation["redriveDeadLetters"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () =>
    void graphql
      .request(DeadLettersDocument, {})
      .then((r) => (r.ok ? (setCount(r.data.deadLetters.count), setError(null)) : setError(explain(r.errors))));
  useEffect(load, []);
  return (
    <>
      <h2>Dead letters</h2>
      <p class="muted">
        Order events the notifications service gave up on after its retries. Once the cause is fixed, move them back
        to be handled again; events that cannot be read stay here.
      </p>
      {error && <p role="alert">{error}</p>}
      {count !== null && <p data-testid="dead-letters">{count} waiting</p>}
      <form
        class="row"
        onSubmit={async (e) => {
          e.preventDefault();
          const reason = text(e.currentTarget, "reason");
          const r = await graphql.request(RedriveDeadLettersDocument, { reason: reason === "" ? null : reason });
          if (!r.ok) return setError(explain(r.errors));
          setReport(r.data.redriveDeadLetters);
          load();
        }}
      >
        <label for="reason">Only those whose reason contains (optional)</label>
        <input id="reason" name="reason" />
        <button type="submit">Redrive</button>
      </form>
      {report && (
        <p role="status">
          Moved back: {report.moved}. Left here: {report.kept}.
        </p>
      )}
    </>
  );
}
