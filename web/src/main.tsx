// The shop's web app: the storefront for shoppers and the admin for staff, routed by the
// URL's fragment (`#/product/7`) so the gateway serves one page at `/`.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";

import "./style.css";
import { AdminPage } from "./admin";
import { CartPage } from "./cart";
import { LogInPage, SignUpPage } from "./account";
import { OrderPage, OrdersPage } from "./orders";
import { ProductPage, ProductsPage } from "./catalog";
import { go, usePerson } from "./nav";
import { logOut, resume, type Person } from "./session";

/** Where the app is: the fragment's path segments and its query. */
export interface Route {
  path: string[];
  query: URLSearchParams;
}

function routeOf(hash: string): Route {
  const [path = "", query = ""] = hash.replace(/^#\/?/, "").split("?");
  return { path: path.split("/").filter((s) => s !== ""), query: new URLSearchParams(query) };
}

function page(route: Route, person: Person | null) {
  const [first, id] = route.path;
  switch (first) {
    case undefined:
    case "products":
      return <ProductsPage query={route.query} />;
    case "product":
      return id ? <ProductPage id={id} /> : <ProductsPage query={route.query} />;
    case "cart":
      return <CartPage person={person} />;
    case "orders":
      return id ? <OrderPage id={id} person={person} /> : <OrdersPage person={person} />;
    case "login":
      return <LogInPage next={route.query.get("next")} />;
    case "signup":
      return <SignUpPage next={route.query.get("next")} />;
    case "admin":
      return <AdminPage person={person} path={route.path.slice(1)} />;
    default:
      return (
        <section>
          <h1>Page not found</h1>
          <p>
            <a href="#/">Back to the shop</a>
          </p>
        </section>
      );
  }
}

function App({ ready }: { ready: boolean }) {
  const [route, setRoute] = useState(routeOf(location.hash));
  const person = usePerson();
  useEffect(() => {
    const moved = () => {
      setRoute(routeOf(location.hash));
      document.getElementById("main")?.focus();
    };
    addEventListener("hashchange", moved);
    return () => removeEventListener("hashchange", moved);
  }, []);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById("main")?.focus())}>
        Skip to content
      </a>
      <header class="bar">
        <a class="brand" href="#/">
          shopmesh
        </a>
        <nav aria-label="Shop">
          <a href="#/">Products</a>
          <a href="#/cart">Cart</a>
          <a href="#/orders">My orders</a>
          {person?.admin && <a href="#/admin">Admin</a>}
        </nav>
        <div class="who">
          {person ? (
            <>
              <span>{person.name}</span>
              <button type="button" class="link" onClick={() => void logOut().then(() => go("#/"))}>
                Log out
              </button>
            </>
          ) : (
            <>
              <a href="#/login">Log in</a>
              <a href="#/signup">Sign up</a>
            </>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {ready ? page(route, person) : <p aria-busy="true">Loading…</p>}
      </main>
      <footer>
        <a href="/dev">Developer tools</a> (GraphiQL, Swagger UI, metrics)
      </footer>
    </>
  );
}

const root = document.getElementById("app");
if (root) {
  render(<App ready={false} />, root);
  void resume().finally(() => render(<App ready={true} />, root));
}
