// Who is signed in: the token and the chosen team live in localStorage.
import type { Me } from "./types";

const TOKEN_KEY = "distillery.token";
const TEAM_KEY = "distillery.team";

let me: Me | null = null;

/** The stored API token, or null when signed out. */
export function getToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

/** Stores the API token after a successful sign-in. */
export function setToken(token: string): void {
  localStorage.setItem(TOKEN_KEY, token);
}

/** Forgets the token, the team and the cached user. */
export function signOut(): void {
  localStorage.removeItem(TOKEN_KEY);
  me = null;
}

/** The chosen team id (sent as X-Team-Id), or null for the user's first team. */
export function getTeamId(): number | null {
  const raw = localStorage.getItem(TEAM_KEY);
  return raw ? Number(raw) : null;
}

/** Chooses the team whose rows every page shows. */
export function setTeamId(teamId: number): void {
  localStorage.setItem(TEAM_KEY, String(teamId));
}

/** The signed-in user, once loaded. */
export function currentUser(): Me | null {
  return me;
}

/** Caches the signed-in user and makes sure the chosen team is one of theirs. */
export function setCurrentUser(user: Me): void {
  me = user;
  const team = getTeamId();
  if (user.teams.length && !user.teams.some((t) => t.id === team)) {
    setTeamId(user.teams[0].id);
  }
}
