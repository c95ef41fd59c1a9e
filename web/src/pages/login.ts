// Sign in with an API token, or with email and password.
import { ApiError, post, request } from "../api";
import { h } from "../dom";
import { navigate } from "../router";
import { setCurrentUser, setToken, signOut } from "../session";
import type { Me } from "../types";

async function finish(token: string, status: HTMLElement): Promise<void> {
  setToken(token);
  try {
    // quiet401: a wrong token is answered here, in words, not by a redirect.
    const me = await request<Me>("GET", "/me", { quiet401: true });
    setCurrentUser(me);
    navigate("#/jobs");
  } catch (err) {
    signOut();
    status.textContent =
      err instanceof ApiError && err.status === 401 ? "That token is not valid (or was revoked)." : (err as Error).message;
  }
}

/** The sign-in page. */
export function renderLogin(): HTMLElement {
  const status = h("div", { class: "field-error", role: "alert", id: "login-error" });
  const tokenInput = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    placeholder: "dst_…",
    required: true,
  });
  const email = h("input", { id: "email", name: "email", type: "email", autocomplete: "username" });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password" });

  const tokenForm = h(
    "form",
    {
      class: "stack",
      onsubmit: (e: Event) => {
        e.preventDefault();
        status.textContent = "";
        const token = tokenInput.value.trim();
        if (!token) {
          status.textContent = "Paste an API token.";
          return;
        }
        void finish(token, status);
      },
    },
    h("label", { for: "token" }, "API token"),
    tokenInput,
    h("div", { class: "hint" }, "Create one with ", h("code", null, "distillery admin token create"), " or ask a team admin."),
    h("button", { class: "btn btn-primary", type: "submit", id: "sign-in-token" }, "Sign in"),
  );

  const passwordForm = h(
    "form",
    {
      class: "stack",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        status.textContent = "";
        try {
          const res = await post<{ token?: string; access_token?: string }>("/auth/login", {
            email: email.value.trim(),
            password: password.value,
          });
          const token = res.token ?? res.access_token;
          if (!token) throw new Error("The server did not return a token.");
          await finish(token, status);
        } catch (err) {
          status.textContent =
            err instanceof ApiError && (err.status === 401 || err.status === 400)
              ? "Email or password is wrong."
              : (err as Error).message;
        }
      },
    },
    h("label", { for: "email" }, "Email"),
    email,
    h("label", { for: "password" }, "Password"),
    password,
    h("button", { class: "btn", type: "submit", id: "sign-in-password" }, "Sign in with password"),
  );

  return h(
    "main",
    { id: "main", class: "login" },
    h(
      "div",
      { class: "login-card card" },
      h("div", { class: "brand big" }, h("span", { class: "logo", "aria-hidden": "true" }), "Distillery"),
      h("p", { class: "subtitle" }, "Hierarchical knowledge distillation for small-object detection."),
      tokenForm,
      h("details", { class: "alt-login" }, h("summary", null, "Use email and password instead"), passwordForm),
      status,
    ),
  );
}
