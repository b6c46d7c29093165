// The shop admin: for staff accounts. The page only hides itself from others; the services
// refuse a shopper's token on every admin operation whatever the page shows.
import { go } from "./nav";
import type { Person } from "./session";

/** `#/admin`. */
export function AdminPage({ person }: { person: Person | null }) {
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
  return (
    <section>
      <h1>Admin</h1>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          const id = new FormData(e.currentTarget).get("order");
          if (typeof id === "string" && id.trim() !== "") go(`#/orders/${id.trim()}`);
        }}
      >
        <label for="order">Open order</label>
        <input id="order" name="order" inputMode="numeric" required />
        <button type="submit">Open</button>
      </form>
      <p class="muted">An order's page offers staff "Mark shipped" once the order is confirmed.</p>
    </section>
  );
}
