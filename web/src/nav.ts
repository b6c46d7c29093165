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
  useEffect(() => {
    const stop = onSessionChange(() => setPerson(currentPerson()));
    // Effects run after the first paint: a log-in finished before this one subscribed would
    // otherwise never be heard of.
    setPerson(currentPerson());
    return stop;
  }, []);
  return person;
}
