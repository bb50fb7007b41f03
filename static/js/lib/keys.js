// Inspector keyboard: j/k move the selection, / focuses search, Escape leaves the search box (or the detail view).

function typing(target) {
  return target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

export function bindKeys({ next, previous, search, escape }) {
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    if (e.key === "Escape") {
      if (typing(e.target)) e.target.blur();
      escape();
      return;
    }
    if (typing(e.target) || document.querySelector("dialog[open]")) return;
    if (e.key === "j") next();
    else if (e.key === "k") previous();
    else if (e.key === "/") {
      e.preventDefault();
      search();
    } else return;
    e.preventDefault();
  });
}
