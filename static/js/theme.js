// Light/dark theme: follows prefers-color-scheme until the user picks one with the toggle (kept in localStorage).
const KEY = "hookscope.theme";
const root = document.documentElement;

function stored() {
  try {
    const v = localStorage.getItem(KEY);
    return v === "light" || v === "dark" ? v : null;
  } catch {
    return null;
  }
}

export function currentTheme() {
  const explicit = root.dataset.theme;
  if (explicit) return explicit;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function setTheme(theme) {
  root.dataset.theme = theme;
  try {
    localStorage.setItem(KEY, theme);
  } catch {
    // Private mode without storage: the choice lasts for this page only.
  }
  label();
}

function label() {
  const button = document.getElementById("theme-toggle");
  if (!button) return;
  const dark = currentTheme() === "dark";
  button.textContent = dark ? "Light" : "Dark";
  button.setAttribute("aria-pressed", String(dark));
}

const initial = stored();
if (initial) root.dataset.theme = initial;

function wire() {
  const button = document.getElementById("theme-toggle");
  if (!button) return;
  label();
  button.addEventListener("click", () => setTheme(currentTheme() === "dark" ? "light" : "dark"));
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
else wire();
