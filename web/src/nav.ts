// What every page uses to move on and to know who is signed in.
import { useEffect, useState } from "preact/hooks";

import { currentPerson, onSessionChange, type Person } from "./session";

/** Goes to `to` (a fragment such as `#/cart`). */
export function go(to: string): void {
  location.hash = to;
}

/** The signed-in person, re-rendering on log-in and log-out. */
export function usePerson(): Person | null {
  const [person, setPerson] = useState(currentPerson());
  useEffect(() => onSessionChange(() => setPerson(currentPerson())), []);
  return person;
}
